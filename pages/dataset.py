"""Dataset: the rows of a batch (``attribot batch``) at a glance, to find the answers that look wrong."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from attribot_core.examples import known_for
from attribot_core.runs import RunRecord
from attribot_core.runs.export import batch_records, export_rows
from attribot_core.viz import gold_rate_figure, heatmap_html, max_score_figure, position_figure
from studio import agreement, runs, state, tables, ui

TABLE = "ds_table"

state.init()  # idempotent; app.py calls it too (a page also works when run on its own)

ss = st.session_state
st.title("Dataset")
st.caption("The rows of a batch made with `attribot batch data.jsonl` (or `attribute_many`): one row per "
           "(context, question, response), with the figures that point at suspicious answers. Sort by a column "
           "(click its header), filter, and select a row to open it in Attribute or Drill-down.")
ui.show_notice()
store = runs.store()
batches = store.batches()
if not batches:
    st.info("No batch stored yet. Make one from the command line, e.g. "
            "`attribot batch data.jsonl --method hierarchical --keep-paragraphs 2` (columns context, question, "
            f"optional response, id, gold), with the same database: {store.path}")
    st.stop()

names = [b["name"] for b in batches]
top = st.columns([4, 1])
chosen = state.widget(top[0].multiselect, "Batch (several: compare their methods)", "in_ds_batches", names[:1],
                      options=names,
                      format_func=lambda n: next(f"{n} · {b['rows']} rows, {b['done'] or 0} done, "
                                                 f"{b['failed'] or 0} failed" for b in batches if b["name"] == n))
top[1].button("Refresh", key="ds_refresh", width="stretch", help="Read the database again (a batch may be running).")
if not chosen:
    st.info("Pick a batch.")
    st.stop()

records: list[RunRecord] = []
rows: list[dict] = []
for name in chosen:
    recs = batch_records(store, name)
    records += recs
    rows += [{"batch": name, **row} for row in export_rows(recs)]

# -- filters and sort: owned inputs, so opening a row elsewhere and coming back keeps them ----------------
labelled = any(r["gold"] for r in rows)
with st.expander("Filters", expanded=True):
    f1, f2, f3, f4 = st.columns([3, 2, 2, 2])
    text = state.widget(f1.text_input, "Search question, response or top sentence", "in_ds_text", "")
    statuses = state.widget(f2.multiselect, "Status", "in_ds_status", [], options=sorted({r["status"] for r in rows}))
    gold_filter = state.widget(f3.selectbox, "Gold", "in_ds_gold", "any", options=list(tables.GOLD_FILTERS),
                               disabled=not labelled,
                               help="Only when the input had gold evidence strings (column 'gold').")
    truncated = state.widget(f4.checkbox, "Truncated responses only", "in_ds_truncated", False)
    s1, s2, _ = st.columns([2, 2, 5])
    sort_by = state.widget(s1.selectbox, "Sort by", "in_ds_sort", "input order", options=list(tables.DATASET_SORTS))
    descending = state.widget(s2.toggle, "Largest first", "in_ds_desc", True)

shown = tables.shown_dataset_rows(rows, sort_by=sort_by, descending=descending, text=text, statuses=statuses,
                                  gold=gold_filter if labelled else "any", truncated_only=truncated)
ss["ds_order"] = tuple(records[i].id for i in shown)  # "open next / previous" on other pages follow this order

done = [r for r in rows if r["status"] == "done"]
graded = [r["gold_hit"] for r in done if r["gold_hit"] is not None]
failed = sum(r["status"] == "failed" for r in rows)
counts = f"{len(shown)} of {len(rows)} rows shown · {len(done)} done, {failed} failed"
if graded:
    counts += f" · top sentence is gold in {sum(graded) / len(graded):.0%} of {len(graded)} labelled rows"
st.caption(counts)

COLUMNS = {  # shown name -> row key; figures first, so they are in view without scrolling
    "batch": "batch", "id": "id", "status": "status", "top score": "top_score", "max |score|": "max_abs_score",
    "top share": "top_share", "top position": "top_position", "top is gold": "gold_hit",
    "log p(response | context)": "log_prob_full", "question": "question", "response": "response",
    "gold": "gold", "top sentence": "top_sentence", "method": "method", "error": "error",
}
table = pd.DataFrame([{name: rows[i][key] for name, key in COLUMNS.items()} for i in shown], columns=list(COLUMNS))
table["gold"] = [" | ".join(g) if g else "" for g in table["gold"]]
table.insert(8, "truncated", [None if rows[i]["response_complete"] is None else not rows[i]["response_complete"]
                              for i in shown])
for position, i in enumerate(shown):  # a row still going says so, rather than showing empty cells
    if records[i].active:
        table.loc[position, "top sentence"] = records[i].status
        table.loc[position, "response"] = rows[i]["response"] or records[i].status
if len(chosen) == 1:
    table = table.drop(columns=["batch"])
if not labelled:
    table = table.drop(columns=["top is gold", "gold"])
nats = st.column_config.NumberColumn(format="%.3f")
picked = state.selection(TABLE, list(ss["ds_order"]))  # by run id: a new sort or filter keeps the row chosen
st.dataframe(
    table, hide_index=True, width="stretch", key=TABLE, on_select="rerun", selection_mode="single-row",
    column_config={
        "question": st.column_config.TextColumn(width="medium"),
        "response": st.column_config.TextColumn(width="medium", help="The response attributed (generated or given)."),
        "gold": st.column_config.TextColumn(width="medium", help="The row's gold evidence strings."),
        "top sentence": st.column_config.TextColumn(width="large", help="The sentence with the highest score."),
        "top score": nats, "max |score|": nats,
        "log p(response | context)": st.column_config.NumberColumn(format="%.2f", help="nats; empty for proxy "
                                                                   "and pruning, which never score the full context"),
        "top share": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent",
                                                     help="The top sentence's share of all positive score."),
        "top position": st.column_config.NumberColumn(format="%.2f", help="0 = first sentence, 1 = last."),
        "truncated": st.column_config.CheckboxColumn(help="The generated response hit the token limit."),
    })


with st.expander("Agreement: how closely batches track a reference batch (e.g. exact loo) on the same rows"):
    agreement.render(store, batches)


def _figures() -> None:
    c1, c2, c3 = st.columns(3)
    c1.plotly_chart(position_figure(done), key="ds_position", width="stretch")
    c2.plotly_chart(max_score_figure(done), key="ds_max_score", width="stretch")
    if labelled:
        c3.plotly_chart(gold_rate_figure(done), key="ds_gold", width="stretch")
    else:
        c3.info("No gold labels in this batch: give rows a 'gold' list of evidence strings to see how often the "
                "top sentence is gold.")


if not picked:
    st.info("Select a row (the box at its left) to open it.")
    _figures()
    st.stop()
record = next(r for r in records if r.id == picked[0])


def _go(record: RunRecord, page: str) -> None:
    ss["notice"] = ("info", f"Opened row '{record.row_id}' of batch '{record.batch}'"
                    + ("." if record.result is not None else "; it has no result, its inputs are ready to run."))
    st.switch_page(page)


if ss.get("ds_opened") != record.id:  # a newly selected row is opened at once
    runs.open_run(record)
    ss["ds_opened"] = record.id
# the selected row, right under the table; the batch's figures below it
st.subheader("Selected row")
ui.text_block("Row:", f"{record.row_id} · batch {record.batch} · {record.status}"
              + (" · now the current result on every page" if record.result is not None else ""))
ui.text_block("Question:", record.request.question)
ui.text_block("Response:", record.result.response if record.result else record.request.response or "(generated)")
if record.error:
    ui.text_block("Error:", record.error)
gold = (record.row or {}).get("gold")
if gold:
    ui.text_block("Gold evidence:", " | ".join(gold))
a, b = st.columns(2)
if a.button("Open in Attribute", type="primary", key="ds_open", width="stretch"):
    _go(record, "pages/attribute.py")
if b.button("Open in Drill-down", key="ds_drill", width="stretch", disabled=record.result is None):
    _go(record, "pages/drilldown.py")
if record.result is not None:
    st.html(heatmap_html(record.result, "sentence", known=known_for(record.result)))
_figures()
