"""UI glue for the Streamlit app (may import streamlit; the engine in ``attribot_core`` never does).

``config`` reads which models to offer, ``state`` declares the session's keys and keeps inputs and
results, ``runs`` submits, polls, shows and stops runs through the engine's run queue, ``ui`` holds the
blocks pages share (pickers, exports, facts, escaped text), ``tokens`` the token view, ``agreement``
the Dataset page's agreement view and ``upload`` its Upload and run (a file to a batch in the worker).
"""
