"""Session state: the inputs, the current result and the run in progress, kept across reruns and pages.

Widgets whose value should survive a page switch use keys starting with ``in_``: Streamlit forgets the
state of a widget that is not drawn in a run, so :func:`init` keeps a copy and restores what was dropped.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from attribot_core import AttributionResult
from attribot_core.examples import get_example
from attribot_core.runs import RunRequest

__all__ = ["current", "fill_inputs", "init", "load_example", "read_upload", "set_current"]

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


def fill_inputs(request: RunRequest) -> None:
    """Put a request's values into the Attribute page's inputs, so a stored run can be tweaked and re-run."""
    from attribot_core import METHODS

    from .config import CUSTOM, load_config

    ss = st.session_state
    config = load_config()
    ss["in_context"], ss["in_question"], ss["in_response"] = request.context, request.question, request.response
    ss["in_method"] = request.method if request.method in METHODS else "loo"
    ss["in_max_new_tokens"] = int(request.max_new_tokens)
    for key, model in (("in_model", request.model), ("in_proxy", request.proxy_model)):
        if not model:
            continue
        if model in config.models or not config.allow_custom:
            ss[key] = model
        else:
            ss[key], ss[f"{key}_custom"] = CUSTOM, model
    for name, value in request.params:
        key = f"in_param_{request.method}_{name}"
        if METHODS.get(request.method) is not None and METHODS[request.method].params.get(name, 0) is None:
            ss[f"{key}_on"] = value is not None
            if value is not None:
                ss[key] = value
        else:
            ss[key] = value
    for key in list(ss.keys()):
        if isinstance(key, str) and key.startswith(PERSISTENT_PREFIX):
            ss.setdefault("_kept", {})[key] = ss[key]
