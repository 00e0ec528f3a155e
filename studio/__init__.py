"""UI glue for the Streamlit app (may import streamlit; the engine in ``attribot_core`` never does).

``config`` reads which models to offer, ``engine`` runs the engine (cached models, one model lock,
result cache, cancellation), ``state`` keeps inputs and results in the session, ``ui`` holds blocks
the pages share.
"""
