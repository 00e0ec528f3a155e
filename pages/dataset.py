"""Dataset: upload a dataset and run it as a batch in the server's worker, or open a batch made with
``attribot batch``; its rows at a glance, to find the answers that look wrong."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from attribot_core import METHODS, InputError
from attribot_core.examples import known_for
from attribot_core.runs import RunRecord
from attribot_core.runs.batch import BatchSettings
from attribot_core.runs.export import EXPORT_FORMATS, batch_records, export_rows
from attribot_core.runs.inputs import INPUT_FIELDS
from attribot_core.viz import gold_rate_figure, heatmap_html, markdown_literal, max_score_figure, position_figure
from studio import agreement, runs, state, tables, ui, upload
from studio.config import load_config

TABLE = "ds_table"

state.init()  # idempotent; app.py calls it too (a page also works when run on its own)

ss = st.session_state
st.title("Dataset")
st.caption("The rows of a batch: one row per (context, question, response), with the figures that point at "
           "suspicious answers. Upload a file and run it here, or make a batch with `attribot batch data.jsonl` "
           "(or `attribute_many`). Sort by a column (click its header), filter, and select a row to open it in "
           "Attribute or Drill-down.")
ui.show_notice()
store = runs.store()
batches = store.batches()
FIELD_HELP = {"context": "The text the answer comes from (this or passages is required).",
              "passages": "Retrieved passages instead of a context: a JSON list of {id, title, text} or strings.",
              "question": "Required.",
              "response": "Optional: without it the model generates the response.",
              "id": "Optional: names the row (a rerun skips rows done under the same id).",
              "gold": "Optional: evidence strings (a JSON list, or one string) to grade the top sentence."}


def _upload_and_run() -> None:
    """File -> column mapping -> settings -> preview -> Start. Nothing is stored until Start."""
    st.caption(f"Limits: {upload.limits_text()} Columns: context (or passages), question, and optionally response, "
               "id, gold "
               "(other names are mapped below). The batch runs in the server's background worker: it goes on when "
               "you leave this page or close the tab, and a single Attribute run goes before its remaining rows.")
    file = st.file_uploader("Dataset file", type=list(upload.UPLOAD_TYPES), key="up_file",
                            max_upload_size=upload.MAX_UPLOAD_MB)
    if file is None:
        return
    try:
        up = upload.open_upload(file.name, file.getvalue())
    except InputError as exc:
        ui.message("error", f"Nothing was stored. {exc}")
        return
    if state.get("in_up_seen") != (up.name, len(up.data)):  # a new file: fresh guesses and a fresh name
        state.put("in_up_seen", (up.name, len(up.data)))
        for field, column in upload.guess_mapping(up.columns).items():
            state.put(f"in_up_col_{field}", column)
        state.put("in_up_name", upload.unique_name(up.name, [b["name"] for b in batches]))
    st.markdown("**Columns**: which column of the file holds each field")
    mapping = {}
    for field, col in zip(INPUT_FIELDS, st.columns(len(INPUT_FIELDS)), strict=True):
        mapping[field] = state.widget(col.selectbox, field, f"in_up_col_{field}", "", options=["", *up.columns],
                                      format_func=lambda c: c or "(none)", help=FIELD_HELP[field])
    try:
        rows = upload.read_upload(up, mapping)
    except InputError as exc:
        ui.message("error", f"Nothing was stored. {exc}")
        return

    config = load_config()
    a, b = st.columns(2)
    with a:
        model = ui.model_picker("Model", "in_up_model", config)
        method = state.widget(st.selectbox, "Method", "in_up_method", "loo", options=ui.offered_methods(model),
                              format_func=lambda m: f"{m} · {METHODS[m].title}")
        proxy = None
        if METHODS[method].needs_proxy:
            others = sorted((m for m in config.models if m != model), key=ui.model_size)
            proxy = ui.model_picker("Proxy model", "in_up_proxy", config, default=others[0] if others else None)
        max_new = state.widget(st.number_input, "Max new tokens when generating", "in_up_max_new_tokens", 64,
                               min_value=1, max_value=1024, step=1,
                               help="Used for rows without a response, whose answer the model generates.")
        name = state.widget(st.text_input, "Batch name", "in_up_name", "").strip()
    with b:
        params = ui.method_params(method, key_prefix="in_up_param")
    try:
        settings = BatchSettings(model, method, params, proxy, int(max_new))
    except InputError as exc:
        ui.message("error", str(exc))
        return
    plan = upload.preview(rows, settings, store, name)
    counts = {k: sum(p["plan"] == k for p in plan) for k in ("will run", "will fail", "kept", "skipped")}
    st.caption(markdown_literal(f"Preview of {len(rows)} rows: {counts['will run']} will run, {counts['will fail']} "
                                f"will fail, {counts['kept']} already done in batch '{name}' (kept), "
                                f"{counts['skipped']} skipped (repeated id)."))
    problems = [p for p in plan if p["plan"] != "will run"]
    st.dataframe(pd.DataFrame(problems or plan[:5], columns=["row", "id", "plan", "why", "question", "context"]),
                 hide_index=True, width="stretch", key="up_preview",
                 column_config={"why": st.column_config.TextColumn(width="large")})
    busy = bool(name) and upload.running(name)
    if busy:
        ui.message("info", f"Batch '{name}' is running; stop it below, or choose another name.")
    if st.button("Start the batch", type="primary", key="up_start", disabled=busy or not counts["will run"]):
        try:
            summary = upload.start(name, rows, settings)
        except InputError as exc:
            ui.message("error", str(exc))
            return
        queued = summary.rows - summary.skipped - summary.failed
        ss["notice"] = ("info", f"Batch '{name}' started: {queued} rows queued in the server's worker, "
                                f"{summary.failed} failed at once, {summary.skipped} skipped. It goes on if you "
                                "leave this page.")
        state.put("in_ds_batches", [name])
        st.rerun()


def _batch_panel(name: str) -> None:
    """One batch's progress (rows done / failed, rows per minute, ETA), Stop / Resume, and its downloads."""
    recs = store.list(batch=name, limit=10**9)
    p = upload.progress(recs)
    active = upload.running(name)
    st.progress(min(1.0, (p.done + p.failed) / p.rows) if p.rows else 0.0,
                text=markdown_literal(f"{name}: {p.line}"))
    c1, c2, *downloads = st.columns(2 + len(EXPORT_FORMATS))
    if active:
        c1.button("Stop", key=f"up_stop_{name}", width="stretch", on_click=_stop, args=(name,),
                  help="Queued rows are kept as stopped; Resume runs them later (also after a server restart).")
    elif upload.can_resume(recs):
        c1.button(f"Resume ({upload.can_resume(recs)} rows)", key=f"up_resume_{name}", width="stretch",
                  on_click=_resume, args=(name,), help="Run the stopped, interrupted and failed-while-running rows "
                                                       "again; done rows are kept.")
    c2.caption("Download the batch:")
    mime = {"jsonl": "application/jsonl", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
    for fmt, col in zip(EXPORT_FORMATS, downloads, strict=True):
        col.download_button(fmt.upper(), lambda fmt=fmt: upload.export(store, name, fmt), file_name=f"{name}.{fmt}",
                            mime=mime[fmt], key=f"up_dl_{fmt}_{name}", on_click="ignore", width="stretch")


def _stop(name: str) -> None:
    n = upload.stop(name)
    ss["notice"] = ("info", f"Stopped batch '{name}' ({n} rows not run). Resume runs them.")


def _resume(name: str) -> None:
    n = upload.resume(name)
    ss["notice"] = ("info", f"Resumed batch '{name}': {n} rows queued again.")


with st.expander("Upload and run a batch", expanded=not batches or st.session_state.get("up_file") is not None):
    _upload_and_run()

if not batches:
    st.info("No batch stored yet. Upload a file above, or make one from the command line, e.g. "
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

live = [n for n in chosen if upload.running(n)]
if live and not any(runs.group(k) for k in runs.KIND_TITLES):  # the sidebar polls while a session run goes

    def _finished() -> int:
        return sum((b["done"] or 0) + (b["failed"] or 0) for b in store.batches() if b["name"] in chosen)

    state.put("in_up_drawn", _finished())  # what this full run draws in the table below

    @st.fragment(run_every=1.0)
    def _live_panels() -> None:
        """Redraw the progress every second; when a row has finished since the page was drawn, or the batch
        ended, draw the whole page again (its table gets the new rows)."""
        if state.get("in_up_drawn") != _finished() or not any(upload.running(n) for n in chosen):
            state.redraw()
        for n in chosen:
            _batch_panel(n)

    _live_panels()
else:
    state.put("in_up_drawn", None)
    for n in chosen:
        _batch_panel(n)

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
    text = state.widget(f1.text_input, "Search question, response, top sentence or source", "in_ds_text", "")
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
    "gold": "gold", "top source": "top_source", "top sentence": "top_sentence", "passages": "passages",
    "method": "method", "error": "error",
}  # "top source" and "passages" only for rows whose context was retrieved passages
table = pd.DataFrame([{name: rows[i].get(key) for name, key in COLUMNS.items()} for i in shown], columns=list(COLUMNS))
table["gold"] = [" | ".join(g) if g else "" for g in table["gold"]]
table["passages"] = [tables.passage_names(p) for p in table["passages"]]
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
if not any("passages" in r for r in rows):  # plain-string contexts: the table it always had
    table = table.drop(columns=["top source", "passages"])
nats = st.column_config.NumberColumn(format="%.3f")
picked = state.selection(TABLE, list(ss["ds_order"]))  # by run id: a new sort or filter keeps the row chosen
st.dataframe(
    table, hide_index=True, width="stretch", key=TABLE, on_select="rerun", selection_mode="single-row",
    column_config={
        "question": st.column_config.TextColumn(width="medium"),
        "response": st.column_config.TextColumn(width="medium", help="The response attributed (generated or given)."),
        "gold": st.column_config.TextColumn(width="medium", help="The row's gold evidence strings."),
        "top sentence": st.column_config.TextColumn(width="large", help="The sentence with the highest score."),
        "top source": st.column_config.TextColumn(width="medium", help="The passage holding the top sentence."),
        "passages": st.column_config.ListColumn(width="medium", help="The row's passages (id · title), in the "
                                                                     "order the prompt showed them."),
        "top score": nats, "max |score|": nats,
        "log p(response | context)": st.column_config.NumberColumn(format="%.2f", help="nats; empty for proxy, "
                                                                   "pruning and estimate, which never score the "
                                                                   "response on the full context"),
        "top share": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent",
                                                     help="The top sentence's share of all positive score."),
        "top position": st.column_config.NumberColumn(format="%.2f", help="0 = first sentence, 1 = last."),
        "truncated": st.column_config.CheckboxColumn(help="The generated response hit the token limit."),
    })


state.seed(state.AGREEMENT_OPEN, False)
with st.expander("Agreement: how closely batches track a reference batch (e.g. exact loo) on the same rows",
                 key=state.AGREEMENT_OPEN, on_change=state.write_back, args=(state.AGREEMENT_OPEN,)):
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
top_source = next((r.get("top_source") for r, rec in zip(rows, records, strict=True) if rec.id == record.id), None)
if top_source:
    ui.text_block("Top source:", top_source)
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
