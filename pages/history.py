"""History: every stored run (from the app, the CLI or a batch), searchable; open, annotate, compare, delete."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from attribot_core.examples import known_for
from attribot_core.metrics import compare_rows
from attribot_core.runs import RunRecord
from attribot_core.viz import agreement_table, compare_scatter_figure, heatmap_html, markdown_literal
from studio import runs, state, ui

state.init()  # idempotent; app.py calls it too (a page also works when run on its own)

ss = st.session_state
st.title("History")
st.caption("Every run kept in the run database, newest first: runs of this app (any session, before any "
           "restart), of `attribot attribute` and of `attribot batch`. Select one to open it, two on the same "
           "context to compare them.")
ui.show_notice()
store = runs.store()
facets = store.facets()

# -- filters ----------------------------------------------------------------------------------------
c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
text = c1.text_input("Search question, context, note or tags", key="in_hist_text")
models = c2.multiselect("Model", facets["model"], key="in_hist_models")
methods = c3.multiselect("Method", facets["method"], key="in_hist_methods")
statuses = c4.multiselect("Status", ["done", "running", "queued", "failed", "cancelled"], key="in_hist_status")
d1, d2, _ = st.columns([2, 2, 5])
since = d1.date_input("From", value=None, key="in_hist_since")
until = d2.date_input("To (inclusive)", value=None, key="in_hist_until")


def _stamp(day: dt.date | None, extra_days: int = 0) -> float | None:
    if day is None:
        return None
    return dt.datetime.combine(day + dt.timedelta(days=extra_days), dt.time()).timestamp()


found = store.list(text=text, models=models, methods=methods, statuses=statuses, since=_stamp(since),
                   until=_stamp(until, 1), limit=500)
st.caption(markdown_literal(f"{len(found)} run(s) shown of {store.count()} stored in {store.path}.") if found else
           "No stored run matches." if store.count() else "No runs stored yet: press Run on the Attribute page.")
if not found:
    st.stop()


def _top(record: RunRecord) -> tuple[str, float | None]:
    result = record.result
    top = result.top_k(1) if result is not None else []
    return (top[0].text, top[0].score) if top else ("", None)


rows = []
for r in found:
    top_text, top_score = _top(r)
    rows.append({
        "when": dt.datetime.fromtimestamp(r.created).strftime("%Y-%m-%d %H:%M:%S"),
        "status": r.status + (f" {r.done}/{r.total}" if r.active and r.total else ""), "method": r.request.method,
        "model": r.request.model, "question": r.request.question, "top sentence": top_text,
        "top score": top_score, "source": r.source + (f" · {r.batch}" if r.batch else ""),
        "note": r.note, "tags": ", ".join(r.tags),
    })
event = st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="hist_table",
                     on_select="rerun", selection_mode="multi-row",
                     column_config={"question": st.column_config.TextColumn(width="medium"),
                                    "top sentence": st.column_config.TextColumn(width="large"),
                                    "top score": st.column_config.NumberColumn(format="%.3f")})
picked = [found[i] for i in (event.selection.rows if event is not None else []) if i < len(found)]
if not picked:
    st.info("Select a row to open, annotate or delete it; select two runs on the same context to compare them.")
    st.stop()


# -- one run ------------------------------------------------------------------------------------------
def _open(record: RunRecord) -> None:
    """The run becomes the current result on every page and fills the Attribute inputs."""
    state.fill_inputs(record.request)
    if record.result is not None:
        state.set_current(record.result, record.request)
        ss["current_run"] = record.id
        ss["notice"] = ("info", "Opened the stored run; its inputs are filled in (Inputs, above), ready to "
                                "tweak and re-run.")
    elif record.active and record.source == "app":
        runs.follow("attribute", record.id)
        ss["notice"] = ("info", "This run is still going: its progress is shown below, and it becomes the "
                                "current result when it ends.")
    else:
        ss["notice"] = ("info", "This run has no result; its inputs are filled in (Inputs, above), ready to run "
                                "again.")


def _delete(record: RunRecord) -> None:
    store.delete(record.id)
    ss["notice"] = ("info", "Deleted the run.")  # a callback: shown at the top of this page


def _annotate(record: RunRecord) -> None:
    store.annotate(record.id, note=ss.get(f"note_{record.id}", ""),
                   tags=ss.get(f"tags_{record.id}", "").split(","))


if len(picked) == 1:
    record = picked[0]
    st.subheader("Selected run")
    ui.text_block("Question:", record.request.question)
    ui.text_block("Response:", record.result.response if record.result else record.request.response or "(generated)")
    if record.error:
        ui.text_block("Ended:", f"{record.status}: {record.error}")
    if record.result is not None:
        st.html(heatmap_html(record.result, "sentence", known=known_for(record.result)))
    a, b, c = st.columns(3)
    if a.button("Open in Attribute", type="primary", key="hist_open", width="stretch"):
        _open(record)  # not a callback: its notice must survive until the Attribute page shows it
        st.switch_page("pages/attribute.py")
    b.button("Delete this run", key="hist_delete", width="stretch", on_click=_delete, args=(record,))
    with c.popover("Note and tags", width="stretch"):
        ss.setdefault(f"note_{record.id}", record.note)
        ss.setdefault(f"tags_{record.id}", ", ".join(record.tags))
        st.text_area("Note", key=f"note_{record.id}")
        st.text_input("Tags (comma-separated)", key=f"tags_{record.id}")
        st.button("Save", key="hist_save_note", on_click=_annotate, args=(record,))
    st.stop()

# -- two runs side by side --------------------------------------------------------------------------
if len(picked) > 2:
    st.warning("Select at most two runs to compare.")
    st.stop()
first, second = picked
if first.result is None or second.result is None:
    st.warning("Both runs need a result to be compared (one of them did not finish).")
    st.stop()
if first.result.context != second.result.context:
    st.warning("These two runs are on different contexts; pick two runs on the same context to compare.")
    st.stop()
labels = {}
for r in (first, second):
    label = f"{r.request.method} · {dt.datetime.fromtimestamp(r.created):%H:%M:%S}"
    labels[label if label not in labels else label + " (2)"] = r.result
names = list(labels)
st.subheader("Two runs side by side")
k = int(st.number_input("k for top-k overlap", 1, 20, 3, key="in_hist_k"))
rows = compare_rows(labels, labels[names[0]], k=k)
st.dataframe(agreement_table(rows, k=k, speedup_over=names[0]), hide_index=True, width="stretch")
st.plotly_chart(compare_scatter_figure(labels, names[0], rows), key="hist_scatter", width="stretch")
left, right = st.columns(2)
for col, name in zip((left, right), names, strict=True):
    with col:
        ui.text_block("Run:", name)
        st.html(heatmap_html(labels[name], "sentence", known=known_for(labels[name])))
