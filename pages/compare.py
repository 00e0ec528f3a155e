"""Compare methods: several methods on the current input, checked against exact LOO."""

from __future__ import annotations

import streamlit as st

from attribot_core import METHODS
from attribot_core.metrics import compare_rows
from attribot_core.runs import RunRequest
from attribot_core.viz import (
    agreement_table,
    compare_cost_figure,
    compare_scatter_figure,
    markdown_literal,
    method_order,
    pareto_figure,
)
from studio import runs, state, ui
from studio.config import load_config

state.init()  # idempotent; app.py calls it too (a page also works when run on its own)

REFERENCE, BASELINE = "loo", "loo-naive"
config = load_config()
ss = st.session_state

st.title("Compare methods")
ui.show_notice()
result, request = state.current()
if result is None or request is None:
    st.info("No input yet: run an attribution on the Attribute page first; its context, question, response "
            "and model are compared here.")
    st.page_link("pages/attribute.py", label="Go to Attribute", icon=":material/edit_note:")
    st.stop()

st.caption(f"Every method explains the same response of {markdown_literal(result.model)}; exact `{REFERENCE}` is the "
           f"reference and `{BASELINE}` (no prefix reuse) the cost baseline.")
ui.text_block("Question:", result.question)
ui.text_block("Response:", result.response)

choices = [m for m in ui.offered_methods(result.model) if m != REFERENCE]
defaults = [m for m in (BASELINE, "hierarchical") if m in choices]
picked = state.widget(st.multiselect, "Methods to compare with exact LOO", "in_cmp_methods", defaults, options=choices)
proxy = None
if any(METHODS[m].needs_proxy for m in picked):
    others = sorted((m for m in config.models if m != result.model), key=ui.model_size)
    proxy = ui.model_picker("Proxy model", "in_cmp_proxy", config, default=others[0] if others else None)
k = int(state.widget(st.number_input, "k for top-k overlap", "in_cmp_k", 3, min_value=1, max_value=20))
retime = state.widget(st.checkbox, "Time every method now, one after the other (ignore stored results)",
                      "in_cmp_retime", True,
                      help="Timings taken at different moments (another load on the machine, a cold model) do not "
                           "compare; the scores would be identical either way.")

base = RunRequest.from_result(result).but(method=REFERENCE, params=ui.params_from_state(REFERENCE),
                                          proxy_model=None)


def _request(method: str) -> RunRequest:
    spec = METHODS[method]
    return base.but(method=method, params=ui.params_from_state(method),
                    proxy_model=proxy if spec.needs_proxy else None)


methods = [REFERENCE, *picked]
clicked = st.button("Run comparison", type="primary", key="cmp_run", width="stretch",
                    help="Runs in the background, one method after the other; you can switch pages meanwhile.")
if clicked:
    runs.start("compare", {m: _request(m) for m in methods}, key=base, force=retime)
    st.rerun()
runs.live_panel("compare")

stored = ss.get("compare")
if stored:
    stored_base, results = stored
    if stored_base != base:
        ui.message("warning", "These results are for an earlier input; run the comparison again for the current one.")
    naive = results.get(BASELINE)
    rows = (compare_rows(results, results[REFERENCE], k=k,
                         baseline_seconds=naive.timings.get("attribute_s") if naive else None)
            if REFERENCE in results else [])  # one computation: the table, the scatter and the Pareto plot
    speedup_over = BASELINE if naive else REFERENCE
    st.subheader("Agreement with exact LOO and cost")
    st.dataframe(agreement_table(rows, k=k, speedup_over=speedup_over), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("pearson", "spearman", f"top-{k} overlap", "seconds",
                                          f"speed-up vs {speedup_over}")})
    left, right = st.columns(2)
    if REFERENCE in results:
        left.plotly_chart(compare_scatter_figure(results, REFERENCE, rows), key="cmp_scatter", width="stretch")
    right.plotly_chart(compare_cost_figure(results, BASELINE), key="cmp_cost", width="stretch")
    if rows:
        metric = state.widget(st.radio, "Pareto plot: faithfulness measure", "in_cmp_pareto_metric", "spearman",
                              options=["spearman", "pearson", "top3", "outlier_recall"], horizontal=True)
        note = f"vs {BASELINE}" if naive else f"vs {REFERENCE} (add {BASELINE} to compare with naive LOO)"
        st.plotly_chart(pareto_figure(rows, metric=metric, title=f"Speed-up {note} against {metric}"),
                        key="cmp_pareto", width="stretch")
    pick = state.widget(st.selectbox, "Export one method's result", "in_cmp_export_pick", REFERENCE,
                        options=method_order(results))
    ui.exports(results[pick], f"exp_cmp_{pick}")
