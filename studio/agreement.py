"""The Dataset page's Agreement view: how closely batches track a reference batch on the same rows.

The figures come from :mod:`attribot_core.agreement` (the same as ``attribot compare``); this module only
picks the batches, lays out the table (and the faithfulness measures' table where the rows carry them),
the per-row scatter and the rows that disagree most, and opens one such row's two results side by side.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from attribot_core.agreement import (
    ADD_MEASURES,
    METRICS,
    BatchAgreement,
    BatchRow,
    compare,
    load_batch,
    measures_hint,
    most_disagreeing,
)
from attribot_core.api import InputError
from attribot_core.metrics import FAITHFULNESS
from attribot_core.runs import RunStore
from attribot_core.viz import heatmap_html, markdown_literal
from attribot_core.viz.agreement import agreement_measure_rows, agreement_scatter_figure, agreement_table_rows

from . import state, ui

__all__ = ["render"]

WORST_ROWS = 5
OPEN = "ag_open"  # (batch, row id) shown side by side with the reference


def _default_reference(batches: list[dict[str, Any]]) -> str:
    """The newest batch of exact ``loo`` (the usual reference), else the newest batch."""
    loo = [b["name"] for b in batches if (b.get("settings") or {}).get("method") == "loo"]
    return (loo or [b["name"] for b in batches])[0]


def _side_by_side(reference: str, ref_rows: dict[str, BatchRow], batch: str, rows: dict[str, BatchRow],
                  row_id: str) -> None:
    ref, other = ref_rows.get(row_id), rows.get(row_id)
    if ref is None or other is None or ref.result is None or other.result is None:
        return
    st.markdown("**Side by side**")
    ui.text_block("Row:", f"{row_id} · question: {ref.question}")
    left, right = st.columns(2)
    for column, name, row in ((left, reference, ref), (right, batch, other)):
        with column:
            ui.text_block("Batch:", f"{name} · {row.result.method}", small=True)
            ui.text_block("Response:", row.result.response, small=True)
            st.html(heatmap_html(row.result, "sentence", legend=False))


def _measures(agreements: list[BatchAgreement]) -> None:
    """The faithfulness measures of each batch and of the reference on the same rows, and, for a batch
    whose rows lack them on either side, how to add them."""
    measured = agreement_measure_rows(agreements)
    if measured:
        st.markdown("**Faithfulness measures**: does removing what a method ranks highest change the response?")
        st.caption("Top-k log-prob drop: log p(response | context) minus log p(response | context without the k "
                   "sentences ranked highest), in nats. LDS: Spearman, over random half-masks of the context, of "
                   "the actual log-prob and the sum of the kept sentences' scores. Higher is better for both; exact "
                   "LOO is no ceiling for the drop, so the reference's own values (same rows) stand beside each "
                   "batch's. Mean over rows [95 % bootstrap interval].")
        st.dataframe(pd.DataFrame(measured), hide_index=True, width="stretch", key="ag_measures")
    if not any(a.measured_rows or a.reference_measured_rows for a in agreements):
        st.caption("No faithfulness measures (top-k log-prob drop, LDS) in these batches: they cost extra forward "
                   f"passes and are opt-in. {ADD_MEASURES}")
        return
    for a in agreements:
        hint = measures_hint(a)
        if hint:
            ui.message("info", hint)


def render(store: RunStore, batches: list[dict[str, Any]]) -> None:
    """Draw the view for the batches of ``store`` (``store.batches()``, newest first)."""
    names = [b["name"] for b in batches]
    if len(names) < 2:
        st.info("Agreement needs two batches over the same rows, e.g. `attribot batch data.jsonl --method loo "
                "--name exact` and `attribot batch data.jsonl --method hierarchical --name fast` (same database).")
        return
    ss = st.session_state
    c1, c2, c3 = st.columns([2, 4, 2])
    reference = state.widget(c1.selectbox, "Reference batch", "in_ag_reference", _default_reference(batches),
                             options=names, help="Usually a batch of exact leave-one-out (`loo`).")
    others = [n for n in names if n != reference]
    chosen = state.widget(c2.multiselect, "Batches to check against it (matched by row id)", "in_ag_batches",
                          others, options=others)
    metric = state.widget(c3.selectbox, "Metric per row", "in_ag_metric", "spearman", options=list(FAITHFULNESS),
                          format_func=METRICS.get)
    if not chosen:
        st.info("Pick batches to compare with the reference.")
        return
    ref_rows = load_batch(store, reference)
    loaded: dict[str, dict[str, BatchRow]] = {}
    agreements: list[BatchAgreement] = []
    for name in chosen:
        loaded[name] = load_batch(store, name)
        try:
            agreements.append(compare(ref_rows, loaded[name], batch=name, reference_name=reference))
        except InputError as exc:
            ui.message("warning", str(exc))
    if not agreements:
        return

    st.caption("Mean over rows [95 % bootstrap interval, 2000 resamples]; the same figures as "
               "`attribot compare`. Speed-up: the reference's mean attribution seconds over the batch's.")
    st.dataframe(pd.DataFrame(agreement_table_rows(agreements)), hide_index=True, width="stretch", key="ag_table")
    for a in agreements:
        if a.not_compared:
            named = ", ".join(f"{rid} ({why})" for rid, why in a.not_compared.items())
            ui.text_block(f"{a.batch}: {len(a.not_compared)} row(s) not compared:", named, small=True)
    _measures(agreements)
    st.plotly_chart(agreement_scatter_figure(agreements, metric), key="ag_scatter", width="stretch")

    st.markdown(f"**Rows that disagree most** (lowest {METRICS[metric]}): open one to see both results.")
    for i, a in enumerate(agreements):
        worst = most_disagreeing(a, WORST_ROWS, metric)
        if not worst:
            continue
        ui.text_block("Batch:", a.batch, small=True)
        cols = st.columns(len(worst))
        for j, (col, row) in enumerate(zip(cols, worst, strict=True)):
            label = f"{markdown_literal(row.row_id)} · {row.values[metric]:.2f}"
            if col.button(label, key=f"ag_open_{i}_{j}", width="stretch"):
                ss[OPEN] = (a.batch, row.row_id)
    opened = ss.get(OPEN)
    if opened and opened[0] in loaded:
        _side_by_side(reference, ref_rows, opened[0], loaded[opened[0]], opened[1])
