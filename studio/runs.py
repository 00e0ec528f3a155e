"""The app's side of runs: submit them to the process's executor, poll them, show them live, stop them.

A session keeps only the *ids* of its runs (per kind: the Attribute page's one run, the Compare and
Learn pages' groups). The runs themselves live in the executor and the SQLite store, so a page switch,
a closed tab or another session never stops or restarts one. Every page calls :func:`monitor`; the
first poll that sees a group finished makes its results current, from whatever page is open.
"""

from __future__ import annotations

import gc
import html
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import streamlit as st

from attribot_core import AttributionResult, InputError
from attribot_core.examples import known_for
from attribot_core.runs import LocalExecutor, ModelCache, RunRecord, RunRequest, RunStore, check_request
from attribot_core.runs.execute import PREVIEW_LEVELS
from attribot_core.viz import DEFAULT_SCALE, heatmap_html, markdown_literal

from . import state, tables
from .config import load_config

__all__ = ["dataset_steps", "executor", "first_news", "follow", "group", "link", "live_panel", "live_result",
           "monitor", "open_run", "prepare", "session_run", "show_link", "start", "stop", "store", "sync_url"]

POLL_S = 0.5
KIND_TITLES = {"attribute": "Attribute", "compare": "Compare methods", "learn": "Learn"}


@st.cache_resource(show_spinner=False)
def executor() -> LocalExecutor:
    """One executor per server process (its worker runs every session's runs, one at a time).

    Runs a previous server process left queued or running are marked interrupted: their work is gone.

    It also freezes the objects alive now (the imported libraries: ~470k, mostly functions) out of the
    garbage collector: Streamlit collects after every script run, and walking them took 0.27 s
    holding the GIL, twice a second while a page polls a run, which starved the worker thread
    (a 0.23 s forward pass took ~1 s in the served app).

    Runs show the one-pass estimate before their exact scores where the model has estimator weights,
    unless the deployment turns it off (``ATTRIBOT_ESTIMATE_FIRST=0``, :mod:`studio.config`).
    """
    gc.freeze()
    store = RunStore()
    store.recover_interrupted()
    return LocalExecutor(store, ModelCache(max_models=4), estimate_first=load_config().estimate_first)


def store() -> RunStore:
    return executor().store


def prepare(request: RunRequest) -> None:
    """Let the idle run worker compute ahead the prompt of the inputs on screen (``LocalExecutor.prepare``),
    so a Run of them starts its answer after one step (the context alone, before a question is typed);
    off with ``ATTRIBOT_PREFILL=0``."""
    if load_config().prefill:
        executor().prepare(request)


@dataclass(frozen=True)
class Group:
    """The runs one page asked for: label -> run id, and what they were asked for (``key``)."""

    kind: str
    ids: Mapping[str, str]
    key: Any = None
    submitted: float = 0.0


def start(kind: str, requests: Mapping[str, RunRequest], *, key: Any = None, force: bool = False) -> Group | None:
    """Submit ``requests`` (label -> request) as this session's ``kind`` group, replacing an older one.

    Inputs that cannot run (empty question, ...) get their message at once and no run: the engine's one
    rule (``check_request``), the same the API, the CLI and batches apply.
    """
    try:
        for request in requests.values():
            check_request(request)
    except InputError as exc:
        st.session_state["notice"] = ("error", str(exc))
        return None
    if st.session_state.get(f"runs_{kind}") is not None:
        stop(kind, notice=False)
    ex = executor()
    source = "app" if kind == "attribute" else kind  # Learn's and Compare's demo runs say so in History
    ids = {label: ex.submit(req, force=force, source=source).id for label, req in requests.items()}
    g = Group(kind, ids, key, time.time())
    st.session_state[f"runs_{kind}"] = g
    _finish_if_done(g)
    return g


def follow(kind: str, run_id: str) -> None:
    """Make a stored run that is still going this session's ``kind`` run (e.g. opened from History
    in a new tab): the page then shows it live and makes it current when it ends."""
    st.session_state[f"runs_{kind}"] = Group(kind, {"run": run_id}, None, time.time())


def open_run(record: RunRecord) -> str:
    """Open a stored run on every page; returns what happened, in a sentence for the user.

    A finished run becomes the current result and fills the inputs; one still going in this app's
    executor is followed live (it becomes current when it ends); either way its inputs are filled in,
    ready to tweak and re-run.
    """
    if record.result is not None:
        state.set_current(record.result, record.request, run_id=record.id, fill=True)
        return "Opened the stored run; its inputs are filled in (Inputs, above), ready to tweak and re-run."
    state.fill_inputs(record.request)
    if record.active and record.source == "app":
        follow("attribute", record.id)
        state.put(state.INPUTS_OPEN, False)  # its progress, not the inputs, in view
        return ("This run is still going: its progress is shown on the Attribute page, and it becomes the current "
                "result when it ends.")
    return "This run has no result; its inputs are filled in (Inputs, above), ready to run again."


URL_RUN = "run"  # the query parameter naming the session's run: ?run=<id>


def sync_url() -> None:
    """Keep ``?run=<id>`` in the URL naming this session's run: the one in progress, else the current result's.

    On a session's first script run (a reload, or a link opened in another tab) the URL wins: the run it
    names is opened, and followed live if it is still going. From then on the session's state wins and
    the URL follows it (page switches drop query parameters; this puts it back). The page itself is the
    URL's path, which Streamlit keeps.
    """
    ss = st.session_state
    if not ss.get("url_read"):
        ss["url_read"] = True
        run_id = st.query_params.get(URL_RUN)
        if run_id and run_id != ss.get("current_run"):
            record = store().get(run_id)
            if record is None:
                ss["notice"] = ("warning", f"The link names run {run_id}, which is not in the run database "
                                           "(deleted, or made on another server).")
            else:
                ss["notice"] = ("info", open_run(record))
    run_id = session_run()
    if run_id:
        if st.query_params.get(URL_RUN) != run_id:
            st.query_params[URL_RUN] = run_id
    elif URL_RUN in st.query_params:
        del st.query_params[URL_RUN]


def _open_neighbour(run_id: str) -> None:
    """Button callback: open the Dataset row ``run_id`` here, and select it in the Dataset table too."""
    record = store().get(run_id)
    if record is None:
        st.session_state["notice"] = ("warning", "That row is no longer in the run database.")
        return
    open_run(record)
    st.session_state["ds_opened"] = record.id
    state.select("ds_table", [record.id])
    st.session_state["notice"] = ("info", f"Opened row '{record.row_id}' of batch '{record.batch}'.")


def dataset_steps(key: str) -> None:
    """"Previous / next row" buttons when the current result is a row of the Dataset table, in the table's
    shown order (its sort and filters), so error analysis goes row after row without the table."""
    order = tuple(st.session_state.get("ds_order") or ())
    current = st.session_state.get("current_run")
    if not current or current not in order:
        return
    i = order.index(current)
    a, mid, b = st.columns([1, 2, 1])
    previous, following = tables.neighbour(order, current, -1), tables.neighbour(order, current, 1)
    a.button("◀ Previous row", key=f"{key}_prev", width="stretch", disabled=previous is None,
             on_click=_open_neighbour, args=(previous,))
    mid.caption(f"Dataset row {i + 1} of {len(order)}, in the Dataset page's order")
    b.button("Next row ▶", key=f"{key}_next", width="stretch", disabled=following is None,
             on_click=_open_neighbour, args=(following,))


def session_run() -> str | None:
    """The run this session is about: its Attribute run in progress, else the current result's run."""
    g = group("attribute")
    return next(iter(g.ids.values())) if g is not None else st.session_state.get("current_run")


def show_link() -> None:
    """The session's run as an address to copy (Streamlit's code block has a copy button)."""
    run_id = session_run()
    if run_id:
        st.caption("Link to this run (it reopens the run after a reload, or in another tab or browser):")
        st.code(link(run_id), language=None)


def link(run_id: str) -> str:
    """The address that reopens run ``run_id`` (in any tab or browser that reaches this server).

    Called on the Attribute page, the default page, whose URL is the app's root: its path plus the query.
    """
    parts = urlsplit(st.context.url or "/")
    root = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + "/", "", ""))
    return f"{root}?{URL_RUN}={run_id}"


def group(kind: str) -> Group | None:
    return st.session_state.get(f"runs_{kind}")


def records(g: Group) -> dict[str, RunRecord]:
    s = store()
    out = {}
    for label, run_id in g.ids.items():
        record = s.get(run_id)
        if record is not None:
            out[label] = record
    return out


def stop(kind: str, *, notice: bool = True) -> None:
    """Stop button callback: cancel every unfinished run of the group (stored as cancelled)."""
    g = group(kind)
    if g is None:
        return
    ex = executor()
    for run_id in g.ids.values():
        ex.cancel(run_id)
    st.session_state[f"runs_{kind}"] = None
    if notice:
        st.session_state["notice"] = ("info", "Stopped. The run is kept in History as cancelled; the previous "
                                          "result, if any, is still shown.")


def _finish_if_done(g: Group) -> bool:
    """When every run of ``g`` has ended, make the results current (or say why not); True if it ended."""
    recs = records(g)
    if any(r.active for r in recs.values()) or len(recs) < len(g.ids):
        return False
    ss = st.session_state
    if ss.get(f"runs_{g.kind}") != g:
        return True  # already handled by another poll of this session
    ss[f"runs_{g.kind}"] = None
    failed = [r for r in recs.values() if r.status != "done"]
    if failed:
        r = failed[0]
        kind = "info" if r.status == "cancelled" else "error"
        ss["notice"] = (kind, r.error or f"The run ended as {r.status}.")
        return True
    results: dict[str, AttributionResult] = {label: r.result for label, r in recs.items()}
    if g.kind == "attribute":
        (label, record), = recs.items()
        state.set_current(results[label], record.request, run_id=record.id,
                          summary=summary(record, cached=(record.finished or 0) < g.submitted))
    else:
        ss[g.kind] = (g.key, results)
    return True


def summary(record: RunRecord, *, cached: bool) -> str:
    """One line on how a finished run went (or that it was the stored result of identical inputs)."""
    result = record.result
    if cached:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.finished or record.created))
        return f"{result.method}: the stored result of identical inputs (run {when}; see History)"
    t = result.timings
    parts = [f"generation {t['generate_s']:.1f} s"] if "generate_s" in t else []
    parts.append(f"attribution {t.get('attribute_s', 0):.1f} s")
    took = (record.finished or 0) - (record.started or record.created)
    return (f"{result.method}: done in {took:.1f} s · {result.total_forward_passes} forward passes "
            f"({', '.join(parts)})")


def _progress_text(record: RunRecord, position: int | None) -> tuple[float, str]:
    if record.status == "queued":
        ahead = position if position is not None else "some"
        return 0.0, f"Queued: waiting behind {ahead} other run(s) on this server …"
    if record.total <= 0:
        return 0.0, record.phase or "Starting …"
    text = f"{record.phase} forward pass {record.done} / {record.total}"
    elapsed = time.time() - (record.started or time.time())
    text += f" · {elapsed:.0f} s so far"
    if record.eta_s is not None:
        text += f" · about {record.eta_s:.0f} s left"
    return min(1.0, record.done / record.total), text


def _milestones(record: RunRecord) -> tuple[bool, bool, bool]:
    """What a run has to show so far: generated text, its previews (which: a new one is news), an exact score."""
    return (bool(record.partial_response), tuple(level for level in PREVIEW_LEVELS if level in record.partial),
            any(level not in PREVIEW_LEVELS for level in record.partial))


def _first_news(record: RunRecord, within: float = POLL_S, drawn: tuple | None = None) -> RunRecord:
    """``record`` as it is once it has something new to show, waiting here (at most ``within`` s) while the
    run is starting and has no exact score yet: a generating run its first text, then any run its estimate
    (where the model has estimator weights) or, after it, its first exact score. New is measured against
    ``drawn``, the :func:`_milestones` the page last drew of the run (default: ``record``'s own): what was
    stored since then (the estimate, a moment after the answer's last token) is drawn at once, not held
    back while the poll waits for what comes after it.

    Those first moments are what a user waits for most (nothing else is new on the page); polled every
    :data:`POLL_S`, each would reach the screen a quarter of a poll late on average. Waiting for it here,
    in the poll itself (a short store read every 20 ms: no work taken from the worker), draws it as
    soon as it is stored. Only these phases wait (from a run's start, model loading included, to its
    first text, and from the end of its generation to its first exact score), each poll at most one
    interval: a click then (Stop, say) is answered when the wait ends, up to 0.5 s later than before, and
    the progress line moves about once a second instead of twice; later polls draw what they find at once.
    """
    deadline = time.monotonic() + within
    shown = _milestones(record) if drawn is None else drawn

    def waiting(r: RunRecord) -> bool:  # or just submitted to an idle worker, which starts it at once
        starting = r.status == "running" or (r.status == "queued" and time.time() - r.created < 1.0)
        text, _, exact = now = _milestones(r)
        streaming_text = r.total <= 0 and r.request.generates and text
        return starting and not exact and not streaming_text and now == shown

    while waiting(record) and time.monotonic() < deadline:
        time.sleep(0.02)
        record = store().get(record.id) or record
    return record


def first_news(g: Group, within: float = 2 * POLL_S) -> None:
    """Wait, at most ``within`` s, until the runs just submitted have something to show (:func:`_first_news`).

    Called by the Run button's callback, before the page is drawn: that script run, and the browser
    drawing what it sends, would otherwise take the CPU from the model's first pass, which is what the
    user waits for (its first generated text, or the estimate of every sentence). Waiting costs no CPU
    (a store read every 20 ms), so the pass runs alone and the page's first drawing already shows it.
    """
    deadline = time.monotonic() + within
    for record in records(g).values():  # one shared limit, however many runs the group has
        _first_news(record, max(0.0, deadline - time.monotonic()))


def _draw(g: Group, *, heatmap: bool) -> None:
    ex = executor()
    drawn = st.session_state.get("live_drawn") or {}
    recs = {label: _first_news(record, drawn=drawn.get(record.id)) for label, record in records(g).items()}
    st.session_state["live_drawn"] = {record.id: _milestones(record) for record in recs.values() if record.active}
    for label, record in recs.items():
        if not record.active:
            continue
        fraction, text = _progress_text(record, ex.queue_position(record.id))
        prefix = f"{label}: " if len(g.ids) > 1 else ""
        # progress texts are Markdown; they hold model names
        st.progress(fraction, text=markdown_literal(prefix + text))
        if record.partial_response:
            streaming(record.partial_response, generating=record.total <= 0)
        if heatmap and record.partial:
            level = live_level(record)
            if level == "paragraph":
                st.caption("Paragraph scores so far; the sentences of the kept paragraphs are scored next.")
            provisional = live_result(record)
            # the scale the result will be shown in (the user's choice, else the default), from the first score
            scale = state.get("in_scale", DEFAULT_SCALE)
            st.html(heatmap_html(provisional, level, scale=scale, known=known_for(provisional)))
    st.button("Stop", key=f"stop_{g.kind}", on_click=stop, args=(g.kind,), width="stretch",
              help="Cancel between two forward passes (or during generation). The run is kept as cancelled.")


def streaming(text: str, *, generating: bool) -> None:
    """The response as generated so far (model output: escaped, shown as text); once generated, the whole
    response stays above the live heatmap, which shows only the context."""
    label = "Response so far:" if generating else "Response:"
    st.html(f'<div class="ab-streaming" data-generating="{str(generating).lower()}" style="margin:0.2rem 0 0.6rem 0">'
            f'<span style="font-weight:600">{label}</span> '
            f'<span class="ab-streaming-text" style="white-space:pre-wrap;unicode-bidi:plaintext" dir="auto">'
            f'{html.escape(text)}</span></div>')


def live_level(record: RunRecord) -> str:
    """The level the live heatmap shows: sentences once any is scored or estimated, else paragraphs.

    ``hierarchical``, ``tree`` and ``pruning`` score paragraphs first; without an estimate, showing them
    makes the first scores appear after one pass instead of after the whole paragraph round. With the
    one-pass estimate every sentence is coloured already, and each switches to exact as it lands.
    """
    sentences = record.partial.get("sentence") or _preview(record)
    return "paragraph" if record.partial.get("paragraph") and not sentences else "sentence"


def _preview(record: RunRecord) -> tuple[str, dict[int, float]] | None:
    """The run's latest preview of every sentence (:data:`PREVIEW_LEVELS`: the last is the closest to exact),
    as ``(level, {sentence index: nats})``, or None before any."""
    return next(((level, record.partial[level]) for level in reversed(PREVIEW_LEVELS) if record.partial.get(level)),
                None)


def live_result(record: RunRecord) -> AttributionResult:
    """The run's scores so far (:meth:`RunRecord.provisional`) with its latest preview of every sentence, when
    the run reported one, in the place a finished result keeps it (``extra["estimate"]``, with ``by``: the
    preview's level): the heatmap draws pending sentences in the preview's colour."""
    provisional = record.provisional()
    preview = _preview(record)
    if preview is None:
        return provisional
    by, scores = preview
    sentences = [scores.get(s.index) for s in provisional.sentences]
    return provisional.with_extra(estimate={"by": by, "sentences": sentences})


def live_panel(kind: str, *, heatmap: bool = True) -> None:
    """The page's view of its running group: progress, ETA, queue position, live heatmap, Stop.

    Draws nothing when no run of ``kind`` is in progress (so Stop only exists while it can stop).
    """
    g = group(kind)
    if g is None:
        return
    if _finish_if_done(g):
        state.redraw()  # it ended since the last poll: draw the page again with its result (or message)

    @st.fragment(run_every=POLL_S)
    def _poll() -> None:
        current = group(kind)
        if current is None or _finish_if_done(current):
            state.redraw()
        _draw(current, heatmap=heatmap)

    _poll()


def monitor(page_title: str | None = None) -> None:
    """In the sidebar of every page: this session's runs in progress, with Stop.

    Only one fragment per page polls: two polling at once interrupt each other's reruns (a new rerun
    request stops the one in progress), so neither would ever finish drawing. A kind whose own page is
    open is shown live there (:func:`live_panel`); the sidebar then only names it and offers Stop.
    """
    active = {k: g for k in KIND_TITLES if (g := group(k)) is not None}
    if not active:
        return
    if any(_finish_if_done(g) for g in active.values()):
        state.redraw()
    elsewhere = {k: g for k, g in active.items() if KIND_TITLES[k] != page_title}

    def draw() -> None:
        for kind, g in active.items():
            if group(kind) is None or _finish_if_done(g):
                state.redraw()
        st.markdown("**Running**")
        for kind, g in active.items():
            if kind not in elsewhere:
                st.caption(f"{KIND_TITLES[kind]}: in progress, shown on this page.")
            else:
                recs = records(g)
                done = sum(not r.active for r in recs.values())
                live = [r for r in recs.values() if r.active]
                fraction, text = _progress_text(live[0], executor().queue_position(live[0].id)) if live else (1, "")
                st.progress(fraction, text=markdown_literal(f"{KIND_TITLES[kind]} ({done}/{len(recs)} runs): {text}"))
            st.button("Stop", key=f"side_stop_{kind}", on_click=stop, args=(kind,))

    (st.fragment(run_every=POLL_S)(draw) if elsewhere else draw)()
