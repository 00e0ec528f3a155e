"""Session state: the inputs, the current result and the run in progress, kept across reruns and pages.

Widgets whose value should survive a page switch use keys starting with ``in_``: Streamlit forgets the
state of a widget that is not drawn in a run, so :func:`init` keeps a copy and restores what was dropped.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import streamlit as st

from attribot_core import AttributionResult
from attribot_core.examples import get_example

from .engine import RunCaches, RunRequest, shared_caches

__all__ = [
    "caches",
    "current",
    "init",
    "load_example",
    "pending",
    "read_upload",
    "set_current",
    "start_run",
    "stop_run",
]

PERSISTENT_PREFIX = "in_"
MAX_UPLOAD_BYTES = 1_000_000

_DEFAULTS: dict[str, Any] = {
    "in_context": "",
    "in_question": "",
    "in_response": "",
    "in_method": "loo",
    "in_level": "Sentences",
    "in_intensity": 1.0,
    "in_top_k": 5,
    "in_max_new_tokens": 64,
    "result": None,  # the AttributionResult every page shows
    "request": None,  # the RunRequest that produced it
    "pending": None,  # (run id, RunRequest) of the run to do or in progress
    "notice": None,  # (kind, message) shown once on the next run
}


def init() -> None:
    ss = st.session_state
    # Restore the inputs Streamlit dropped because their page was not drawn in the last run, from a copy
    # taken at the start of every run. Only missing keys are set: re-setting a drawn widget's value
    # every run would overwrite what the user is typing when another rerun finishes.
    kept = dict(ss.get("_kept", {}))
    for key, value in kept.items():
        if key not in ss:
            ss[key] = value
    for key, value in _DEFAULTS.items():
        if key not in ss:
            ss[key] = value
    for key in list(ss.keys()):
        if isinstance(key, str) and key.startswith(PERSISTENT_PREFIX):
            kept[key] = ss[key]
    ss["_kept"] = kept


def caches() -> RunCaches:
    return shared_caches()


def current() -> tuple[AttributionResult | None, RunRequest | None]:
    return st.session_state.get("result"), st.session_state.get("request")


def set_current(result: AttributionResult, request: RunRequest | None = None) -> None:
    st.session_state["result"] = result
    st.session_state["request"] = request or RunRequest.from_result(result)


def load_example(key: str) -> None:
    """Button callback: put a built-in example into the inputs (the response is left to generate)."""
    example = get_example(key)
    ss = st.session_state
    ss["in_context"] = example.context
    ss["in_question"] = example.question
    ss["in_response"] = ""
    ss["upload_error"] = None


def read_upload() -> None:
    """Uploader callback: the file's text becomes the context, or a message says why it cannot."""
    ss = st.session_state
    ss["upload_error"] = None
    file = ss.get("upload")
    if file is None:
        return
    data = file.getvalue()
    if len(data) > MAX_UPLOAD_BYTES:
        ss["upload_error"] = f"'{file.name}' is {len(data) // 1000} kB; the limit is {MAX_UPLOAD_BYTES // 1000} kB."
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        ss["upload_error"] = (f"Could not read '{file.name}' as UTF-8 text. Upload a plain .txt or .md file, "
                              "or paste the text.")
        return
    if not text.strip():
        ss["upload_error"] = f"'{file.name}' is empty."
        return
    ss["in_context"] = text.replace("\r\n", "\n")


# -- the run in progress ---------------------------------------------------------------------------
def start_run(request: RunRequest | list[RunRequest], kind: str = "attribute") -> None:
    """Ask for a run; it happens on this script run and again after an interruption until done or stopped."""
    ss = st.session_state
    ss["pending"] = (uuid.uuid4().hex, kind, request)
    ss["cancel_event"] = threading.Event()


def pending(kind: str = "attribute") -> tuple[str, Any] | None:
    """The (run id, request) waiting to run on this page, if any."""
    p = st.session_state.get("pending")
    if p is None or p[1] != kind:
        return None
    return p[0], p[2]


def finish_run(run_id: str) -> bool:
    """Mark run ``run_id`` finished; False if it was stopped or replaced meanwhile (do not store it)."""
    p = st.session_state.get("pending")
    if p is None or p[0] != run_id:
        return False
    st.session_state["pending"] = None
    return True


def stop_run() -> None:
    """Stop button callback: cancel the run between two forward passes and forget it."""
    ss = st.session_state
    event = ss.get("cancel_event")
    if event is not None:
        event.set()
    if ss.get("pending") is not None:
        ss["pending"] = None
        ss["notice"] = ("info", "Stopped. Nothing was stored; the previous result, if any, is still shown.")


def cancel_event() -> threading.Event | None:
    return st.session_state.get("cancel_event")
