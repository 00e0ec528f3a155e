"""History: every stored run (from the app, the CLI or a batch), searchable; open, annotate, compare, delete."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from attribot_core import METHODS
from attribot_core.examples import known_for
from attribot_core.metrics import compare_rows
from attribot_core.runs import RunRecord
from attribot_core.viz import agreement_table, compare_scatter_figure, heatmap_html, markdown_literal
from studio import runs, state, tables, ui

TABLE = "hist_table"

state.init()  # idempotent; app.py calls it too (a page also works when run on its own)

ss = st.session_state
st.title("History")
st.caption("Every run kept in the run database, newest first: runs of this app (any session, before any "
           "restart), of `attribot attribute` and of `attribot batch`. Select one to open it, two on the same "
           "context to compare them.")
ui.show_notice()
store = runs.store()
facets = store.facets()

# -- filters: owned inputs, so a trip to another page keeps them ------------------------------------
c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
text = state.widget(c1.text_input, "Search question, context, note or tags", "in_hist_text", "")
models = state.widget(c2.multiselect, "Model", "in_hist_models", [], options=facets["model"])
methods = state.widget(c3.multiselect, "Method", "in_hist_methods", [], options=facets["method"])
statuses = state.widget(c4.multiselect, "Status", "in_hist_status", [],
                        options=["done", "running", "queued", "failed", "cancelled"])
d1, d2, _ = st.columns([2, 2, 5])
since = state.widget(d1.date_input, "From", "in_hist_since", None)
until = state.widget(d2.date_input, "To (inclusive)", "in_hist_until", None)
after, before = tables.day_bounds(since, until)

demos = state.widget(st.toggle, "Include the Learn and Compare pages' demonstration runs", "in_hist_demos", False)
found = tables.user_runs(store.list(text=text, models=models, methods=methods, statuses=statuses, since=after,
                                    until=before, limit=500), include_demos=demos)
st.caption(markdown_literal(f"{len(found)} run(s) shown of {store.count()} stored in {store.path}.") if found else
           "No stored run matches." if store.count() else "No runs stored yet: press Run on the Attribute page.")
deleted = ss.get("hist_deleted")
ss["hist_deleted"] = None
if not found:
    if deleted:
        ui.message("info", deleted)
    st.stop()

ids = [r.id for r in found]
chosen = state.selection(TABLE, ids)  # by run id: a sort, a filter or a deleted row never moves it
event = st.dataframe(pd.DataFrame([tables.history_row(r) for r in found]), hide_index=True, width="stretch",
                     key=TABLE, on_select="rerun", selection_mode="multi-row",
                     column_config={"question": st.column_config.TextColumn(width="medium"),
                                    "top sentence": st.column_config.TextColumn(width="large"),
                                    "top score": st.column_config.NumberColumn(format="%.3f")})
if deleted:  # where the Delete button was: the user's eyes are here
    ui.message("info", deleted)
picked = [r for r in found if r.id in chosen]
if not picked:
    st.info("Select a row to open, annotate or delete it; select two runs on the same context to compare them.")
    st.stop()


# -- one run ------------------------------------------------------------------------------------------
def _ask_delete(run_ids: tuple[str, ...]) -> None:
    ss["hist_confirm"] = run_ids


def _cancel_delete() -> None:
    ss["hist_confirm"] = None


def _delete(run_ids: tuple[str, ...], what: str) -> None:
    """Delete exactly the runs the user confirmed (by id), then clear the selection so that no later press
    can act on a row that moved into its place."""
    for run_id in run_ids:
        store.delete(run_id)
        if ss.get("current_run") == run_id:
            ss["current_run"] = None  # its result stays on screen, but no link can reopen it
    state.select(TABLE, [])
    ss["hist_confirm"] = None
    ss["hist_deleted"] = f"Deleted {what}. Select another run to open, annotate or delete it."


def _annotate(record: RunRecord) -> None:
    store.annotate(record.id, note=ss.get(f"note_{record.id}", ""),
                   tags=ss.get(f"tags_{record.id}", "").split(","))
    st.toast("Saved the note and tags; they show in the table's note and tags columns.")


if ss.get("hist_confirm") is not None and ss["hist_confirm"] != (picked[0].id,):
    ss["hist_confirm"] = None  # the selection changed: a confirmation only ever covers what was asked about

if len(picked) == 1:
    record = picked[0]
    st.subheader("Selected run")
    ui.text_block("Run:", tables.describe_run(record))
    ui.text_block("Question:", record.request.question)
    ui.text_block("Response:", record.result.response if record.result else record.request.response or "(generated)")
    if record.error:
        ui.text_block("Ended:", f"{record.status}: {record.error}")
    a, b, c = st.columns(3)
    if a.button("Open in Attribute", type="primary", key="hist_open", width="stretch"):
        ss["notice"] = ("info", runs.open_run(record))  # not a callback: the notice must reach the Attribute page
        st.switch_page("pages/attribute.py")
    b.button("Delete this run", key="hist_delete", width="stretch", on_click=_ask_delete, args=((record.id,),),
             disabled=ss.get("hist_confirm") is not None)
    with c.popover("Note and tags", width="stretch"):
        ss.setdefault(f"note_{record.id}", record.note)
        ss.setdefault(f"tags_{record.id}", ", ".join(record.tags))
        st.text_area("Note", key=f"note_{record.id}")
        st.text_input("Tags (comma-separated)", key=f"tags_{record.id}")
        st.button("Save", key="hist_save_note", on_click=_annotate, args=(record,))
    if ss.get("hist_confirm") == (record.id,):
        what = f"the run {tables.describe_run(record)}"
        ui.message("warning", f"Delete {what}? It is removed from the run database; this cannot be undone.")
        y, n, _ = st.columns([1, 1, 2])
        y.button("Yes, delete it", key="hist_delete_yes", type="primary", width="stretch", on_click=_delete,
                 args=((record.id,), what))
        n.button("Cancel", key="hist_delete_no", width="stretch", on_click=_cancel_delete)
    if record.result is not None:
        st.html(heatmap_html(record.result, "sentence", known=known_for(record.result)))
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
# The reference is exact leave-one-out only when one run is exact; otherwise the two are just compared.
exact = [n for n in names if METHODS.get(labels[n].method) is not None and METHODS[labels[n].method].exact]
reference = exact[0] if exact else names[0]
if exact:
    ui.text_block("Reference:", f"{reference} (exact leave-one-out)")
else:
    ui.message("info", f"Neither run is exact leave-one-out (loo or loo-naive), so neither is a ground truth: "
                       f"the figures compare {names[1]} with {names[0]}, not with exact scores.")
k = int(state.widget(st.number_input, "k for top-k overlap", "in_hist_k", 3, min_value=1, max_value=20))
rows = compare_rows(labels, labels[reference], k=k)
st.dataframe(agreement_table(rows, k=k, speedup_over=reference), hide_index=True, width="stretch")
st.plotly_chart(compare_scatter_figure(labels, reference, rows, reference_is_exact=bool(exact)), key="hist_scatter",
                width="stretch")
left, right = st.columns(2)
for col, name in zip((left, right), names, strict=True):
    with col:
        ui.text_block("Run:", name)
        st.html(heatmap_html(labels[name], "sentence", known=known_for(labels[name])))
