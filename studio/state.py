"""Session state: the inputs and the current result, kept across reruns and pages (runs: studio/runs.py).

The app owns every input: ``st.session_state["inputs"]`` (a plain dict, never a widget key, so Streamlit
never drops it) is the source of truth. A widget is drawn through :func:`widget`, which seeds the
widget's key from the owned value when Streamlit dropped it (its page was not drawn in the last run) or
when code changed the owned value (an example, a file, :func:`fill_inputs`), and writes every change
back. Widget keys (``in_...``) stay as they were, so tests and callbacks address widgets as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import streamlit as st

from attribot_core import METHODS, AttributionResult
from attribot_core.examples import get_example
from attribot_core.prompt import DEFAULT_PASSAGE_TEMPLATE
from attribot_core.runs import RunRequest

from . import tables
from .config import CUSTOM, load_config

__all__ = [
    "AGREEMENT_OPEN",
    "INPUTS_OPEN",
    "current",
    "fill_inputs",
    "get",
    "init",
    "inputs",
    "selection",
    "load_example",
    "param_key",
    "move_passage",
    "passage_rows",
    "put",
    "read_passage_upload",
    "read_upload",
    "select",
    "set_passages",
    "set_current",
    "widget",
    "write_back",
]

MAX_UPLOAD_BYTES = 1_000_000
INPUTS_OPEN = "inputs_open"  # the Attribute page's inputs expander (owned like an input)
AGREEMENT_OPEN = "agreement_open"  # the Dataset page's Agreement expander: open after a page switch if it was

INPUT_DEFAULTS: dict[str, Any] = {
    "in_context": "",
    "in_question": "",
    "in_response": "",
    "in_method": "loo",
    "in_level": "Sentences",
    "in_intensity": 1.0,
    "in_scale": "sqrt",
    "in_top_k": 5,
    "in_max_new_tokens": 64,
}

# -- passages: the context as a list of retrieved passages (the Attribute page's "Passages" mode) ------
ONE_TEXT, PASSAGES = "One text", "Passages"
CONTEXT_MODES = [ONE_TEXT, PASSAGES]
PASSAGE_COLUMNS = ["id", "title", "text"]
INPUT_DEFAULTS.update({
    "in_context_mode": ONE_TEXT,  # which of the two context inputs Run uses
    "in_passages": [],  # owned passages: [{"id", "title", "text"}], in order (the editor's current rows)
    "in_passages_version": 0,  # +1 when code replaces the passages: the editor starts afresh from them
    "in_passage_template": DEFAULT_PASSAGE_TEMPLATE,
})


# Every session-state key the app itself reads or writes (widget keys are named where their widget is
# drawn; the values a user chose are kept in the owned inputs above, which outlive their widgets).
_DEFAULTS: dict[str, Any] = {
    "result": None,  # the AttributionResult every page shows
    "request": None,  # the RunRequest that produced it
    "current_run": None,  # the stored run id of that result (None: opened from a file); it goes in the URL
    "result_serial": 0,  # +1 whenever the current result changes (pages reset views on a new result)
    "run_summary": None,  # one line on how the current result's run went (Attribute page)
    "notice": None,  # (kind, message) to show on the next run (:func:`take_notice`)
    "notice_shown": None,  # the notice the last full run showed (:func:`redraw` keeps it on screen)
    "url_read": False,  # the URL's ?run= was read (on a session's first script run only; then state wins)
    "upload_error": None,  # why the uploaded context file was refused
    "passage_upload_error": None,  # why the uploaded passages file was refused
    "result_file_error": None,  # why the sidebar's result file was refused
    "runs_attribute": None,  # this session's run groups in progress (studio/runs.py)
    "runs_compare": None,
    "runs_learn": None,
    "live_drawn": None,  # {run id: what this session's live panel last drew of it} (studio/runs.py)
    "compare": None,  # (what was asked, {label: result}) of the Compare and Learn pages' last group
    "learn": None,
    "ds_opened": None,  # the Dataset row last opened (selecting a new one opens it)
    "ds_order": (),  # the run ids of the Dataset table, in its shown order ("open next / previous")
    "hist_confirm": None,  # the run ids a Delete press asks to confirm
    "hist_deleted": None,  # what the last delete removed, said where its button was
    "_drill_opened_for": None,  # the result_serial Drill-down last opened on its top paragraph
    "_drill_clicked": None,  # the last clicked point of Drill-down's overview (a new click wins)
}
TABLE_SELECTION = "{table}_selected"  # owned input: the run ids selected in a table (Dataset, History)


def init() -> None:
    ss = st.session_state
    owned = ss.setdefault("inputs", {})
    for key, value in INPUT_DEFAULTS.items():
        owned.setdefault(key, value)
    for key, value in _DEFAULTS.items():
        if key not in ss:
            ss[key] = value


# -- notices: one message after an action, kept while the page redraws itself -------------------------
def take_notice() -> tuple[str, str] | None:
    """The notice to show on this run ("Stopped batch ...", "Opened ..."), taken so the user's next action
    no longer shows it."""
    ss = st.session_state
    notice = ss.get("notice")
    ss["notice"], ss["notice_shown"] = None, notice
    return notice


def redraw() -> NoReturn:
    """Draw the whole page again because something changed in the background (a poll saw a run end or a
    batch row finish).

    Unlike the user's action, this keeps the notice on screen: ``st.rerun`` discards the run that showed
    it, so without this a Stop pressed just as a row finished would say nothing at all.
    """
    ss = st.session_state
    if ss.get("notice") is None:
        ss["notice"] = ss.get("notice_shown")
    st.rerun()


# -- owned inputs ----------------------------------------------------------------------------------
def inputs() -> dict[str, Any]:
    """The owned inputs (widget key -> value); survives page switches, unlike widget state."""
    return st.session_state.setdefault("inputs", dict(INPUT_DEFAULTS))


def get(key: str, default: Any = None) -> Any:
    return inputs().get(key, default)


def put(key: str, value: Any) -> None:
    """Set an input from code (e.g. a callback); its widget shows it the next time it is drawn."""
    inputs()[key] = value


def write_back(key: str) -> None:
    """Widget callback: the widget's new value becomes the owned value."""
    if key in st.session_state:
        inputs()[key] = st.session_state[key]


def _valid(value: Any, options: list[Any] | None) -> bool:
    if options is None:
        return True
    if isinstance(value, list):
        return all(v in options for v in value)
    return value in options


def seed(key: str, default: Any = None, options: list[Any] | None = None) -> Any:
    """Make widget key ``key`` show the owned value (``default`` when unset or not among ``options``)."""
    owned = inputs()
    value = owned.get(key, default)
    if not _valid(value, options):
        value = default if _valid(default, options) else (options[0] if options else default)
    owned[key] = value
    ss = st.session_state
    if key not in ss or ss[key] != value:  # dropped by Streamlit, or changed by code
        ss[key] = value
    return value


def widget(draw: Callable[..., Any], label: str, key: str, default: Any = None, **kwargs: Any) -> Any:
    """Draw ``draw(label, key=key, ...)`` (a Streamlit input) showing the owned value, and keep it owned.

    ``options`` (selectbox, radio, multiselect) is checked: an owned value no longer offered falls back
    to ``default``. Returns the widget's value.
    """
    options = kwargs.get("options")
    seed(key, default, list(options) if options is not None else None)
    value = draw(label, key=key, on_change=write_back, args=(key,), **kwargs)
    inputs()[key] = value
    return value


def param_key(method: str, name: str, prefix: str = "in_param") -> str:
    """The owned key of a method parameter (``_on`` is appended for an optional one's checkbox)."""
    return f"{prefix}_{method}_{name}"


def fill_inputs(request: RunRequest) -> None:
    """Put a request's values into the owned inputs (context, question, response, model, method, its
    parameters, proxy, max new tokens): opening a saved result, or a past run, makes it editable and
    re-runnable. A model that is not among the configured ones goes into the free-text box when custom
    models are allowed."""
    config = load_config()
    put("in_context_mode", PASSAGES if request.passages else ONE_TEXT)
    if request.passages:
        set_passages([{"id": p.id, "title": p.title, "text": p.text} for p in request.passages])
        put("in_passage_template", request.passage_template or DEFAULT_PASSAGE_TEMPLATE)
    put("in_context", request.context)
    put("in_question", request.question)
    put("in_response", request.response)
    put("in_max_new_tokens", int(request.max_new_tokens))
    if request.method in METHODS:
        put("in_method", request.method)
        for name, value in request.params:
            default = METHODS[request.method].params.get(name)
            key = param_key(request.method, name)
            if default is None:
                put(f"{key}_on", value is not None)
                if value is not None:
                    put(key, int(value))
            else:
                put(key, value)
    for key, spec in (("in_model", request.model), ("in_proxy", request.proxy_model)):
        if not spec:
            continue
        if spec in config.models or not config.allow_custom:
            put(key, spec)  # a model this deployment does not offer falls back to the default when drawn
        else:
            put(key, CUSTOM)
            put(f"{key}_custom", spec)


# -- the current result ----------------------------------------------------------------------------
def current() -> tuple[AttributionResult | None, RunRequest | None]:
    return st.session_state.get("result"), st.session_state.get("request")


def set_current(result: AttributionResult, request: RunRequest | None = None, *, run_id: str | None = None,
                fill: bool = False, summary: str | None = None) -> None:
    """Make ``result`` the one every page shows: the one way a result becomes current (a finished run, a run
    opened from History or Dataset or a link, a result file).

    ``run_id`` is its stored run (None for a file), which the URL then names so a reload reopens it;
    ``fill`` also puts its request into the inputs (to tweak and re-run); ``summary`` is the one line on
    how its run went. The Attribute page's inputs fold away (the next time it draws), so the new result
    sits right below the Run button.
    """
    ss = st.session_state
    request = request or RunRequest.from_result(result)
    ss["result"] = result
    ss["request"] = request
    ss["current_run"] = run_id
    ss["run_summary"] = summary
    ss["result_serial"] = ss.get("result_serial", 0) + 1
    if fill:
        fill_inputs(request)
    put(INPUTS_OPEN, False)


# -- table selections ------------------------------------------------------------------------------
def _rows(widget_state: Any) -> list[int]:
    try:
        return list(widget_state["selection"]["rows"])
    except (KeyError, TypeError):
        return []


def selection(table: str, shown: list[str]) -> list[str]:
    """The run ids selected in dataframe ``table`` (its widget key) that shows the runs ``shown``, in order.

    The selection is owned as run ids (:data:`TABLE_SELECTION`), not as the widget's row positions: a
    sort, a filter, a new or deleted run moves rows, and a position would then point at another run
    (History once deleted an unselected run that way); and Streamlit drops the widget's state when its
    page is not drawn. Call it right before drawing the table: a selection the user changed since the last
    draw is read back as ids; then the widget is given the owned ids' current positions.
    """
    ss = st.session_state
    owned_key = TABLE_SELECTION.format(table=table)
    drawn_key = f"_{table}_drawn"  # (ids, positions) as last drawn
    drawn = ss.get(drawn_key)
    now = _rows(ss.get(table))
    if drawn is not None and table in ss and now != drawn[1]:  # the user changed it since it was drawn
        inputs()[owned_key] = tables.ids_at(drawn[0], now)
    positions = tables.positions_of(shown, inputs().get(owned_key, []))
    if table not in ss or now != positions:
        ss[table] = {"selection": {"rows": positions, "columns": [], "cells": []}}
    ss[drawn_key] = (list(shown), positions)
    return tables.ids_at(shown, positions)


def select(table: str, run_ids: list[str]) -> None:
    """Set ``table``'s selection from code (e.g. clear it after a delete); the table shows it when drawn."""
    inputs()[TABLE_SELECTION.format(table=table)] = list(run_ids)


def load_example(key: str) -> None:
    """Button callback: put a built-in example into the inputs (the response is left to generate)."""
    example = get_example(key)
    put("in_context_mode", ONE_TEXT)
    put("in_context", example.context)
    put("in_question", example.question)
    put("in_response", "")
    put(INPUTS_OPEN, True)
    st.session_state["upload_error"] = None


def _uploaded_text(key: str, error_key: str, hint: str = "") -> str | None:
    """The text of the file in uploader ``key`` (UTF-8, size-limited), or None with the reason in ``error_key``.

    One rule for every uploader of the Attribute page: the same limit, the same decoding, the same words.
    """
    ss = st.session_state
    ss[error_key] = None
    file = ss.get(key)
    if file is None:
        return None
    data = file.getvalue()
    if len(data) > MAX_UPLOAD_BYTES:
        ss[error_key] = f"'{file.name}' is {len(data) // 1000} kB; the limit is {MAX_UPLOAD_BYTES // 1000} kB."
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        ss[error_key] = f"Could not read '{file.name}' as UTF-8 text.{hint}"
        return None
    if not text.strip():
        ss[error_key] = f"'{file.name}' is empty."
        return None
    return text.replace("\r\n", "\n")


def read_upload() -> None:
    """Uploader callback: the file's text becomes the context, or a message says why it cannot."""
    text = _uploaded_text("upload", "upload_error", " Upload a plain .txt or .md file, or paste the text.")
    if text is not None:
        put("in_context", text)


# -- passages (owned: the editor of the Attribute page draws from and writes into them) -------------
def passage_rows() -> list[dict[str, str]]:
    """The owned passages without the editor's empty rows (a row added but never filled)."""
    rows = [{c: str(r.get(c) or "") for c in PASSAGE_COLUMNS} for r in get("in_passages", [])]
    return [r for r in rows if any(v.strip() for v in r.values())]


def set_passages(rows: list[dict[str, str]]) -> None:
    """Replace the passages from code (upload, move, a past run): the editor redraws from them."""
    put("in_passages", [{c: str(r.get(c) or "") for c in PASSAGE_COLUMNS} for r in rows])
    put("in_passages_version", int(get("in_passages_version", 0)) + 1)


def move_passage(index: int, step: int) -> None:
    """Button callback: move passage ``index`` one place up (``step=-1``) or down (``+1``)."""
    rows = passage_rows()
    other = index + step
    if 0 <= index < len(rows) and 0 <= other < len(rows):
        rows[index], rows[other] = rows[other], rows[index]
        set_passages(rows)


def read_passage_upload() -> None:
    """Uploader callback: a JSON list / JSONL of passages replaces the passages, or a message says why not."""
    from attribot_core.api import InputError
    from attribot_core.runs.inputs import passages_from_text

    text = _uploaded_text("passage_upload", "passage_upload_error")
    if text is None:
        return
    try:
        passages = passages_from_text(text, f"'{st.session_state['passage_upload'].name}'")
    except InputError as exc:
        st.session_state["passage_upload_error"] = str(exc)
        return
    set_passages([{"id": p.id, "title": p.title, "text": p.text} for p in passages])
    put("in_context_mode", PASSAGES)
