"""Learn: leave-one-out attribution and each AttriBoT trick, on a live small example, for a classroom."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from attribot_core import AttributionResult
from attribot_core.examples import EXAMPLES, known_for
from attribot_core.runs import RunRequest
from attribot_core.viz import compare_cost_figure, heatmap_html, markdown_literal, method_order
from studio import runs, state, ui
from studio.config import load_config

state.init()  # idempotent; app.py calls it too (a page also works when run on its own)

config = load_config()
ss = st.session_state
EXAMPLE = min(EXAMPLES, key=lambda e: len(e.context))  # small, so the live run takes seconds
NONE = "(no proxy: skip tricks 3 and 4)"

st.title("Learn: how AttriBoT makes leave-one-out fast")
ui.show_notice()
st.markdown(
    "A language model read a text and answered a question. **Which sentences did the answer come from?** "
    "The most direct test is to *delete* a sentence and see whether the model still gives the same answer. "
    "That is **leave-one-out (LOO)** attribution. It is exact, but it needs one run of the model per "
    "sentence. AttriBoT keeps (almost) the same answer with far less work, using a few tricks. "
    "Below, each step runs live on a small example."
)
with st.expander("The example", expanded=True):
    ui.text_block("Question:", EXAMPLE.question)
    ui.text_block("Context:", EXAMPLE.context)

target = ui.model_picker("Model", "in_learn_model", config, default=config.default_model)
proxy_options = [NONE, *[m for m in config.models if m != target]]
proxy = state.widget(st.selectbox, "Proxy model for tricks 3 and 4 (a smaller model)", "in_learn_proxy", NONE,
                     options=proxy_options)
proxy = None if proxy == NONE else proxy
QWEN_COMMAND = "make models-qwen"  # the larger optional model (the 1.5B)
if len(proxy_options) == 1:  # nothing but the target is offered: say how to get tricks 3 and 4
    ui.message("info", f"Tricks 3 and 4 need a second, smaller model as the proxy, and only {target} is offered "
                       "here. Set-up (make app) installs two: Qwen2.5-Coder 0.5B (the default) and SmolLM2-135M "
                       "(the proxy). If this server lists its models (ATTRIBOT_MODELS), add smollm2-135m there and "
                       "restart the app. Tricks 1 and 2 run below with what is offered.")

def _request(method: str, **params) -> RunRequest:
    return RunRequest.for_method(EXAMPLE.context, EXAMPLE.question, target, method, params, proxy_model=proxy)


plan = [
    ("loo-naive", _request("loo-naive", paragraphs=True)),
    ("loo", _request("loo", paragraphs=True)),
    ("hierarchical", _request("hierarchical", keep_paragraphs=1)),
]
if proxy:
    plan += [
        ("proxy", _request("proxy", paragraphs=True)),
        ("pruning", _request("pruning", keep_sentences=2)),
    ]
key = tuple(req for _, req in plan)

if st.button("Run the live example", type="primary", key="learn_run", width="stretch"):
    runs.start("learn", dict(plan), key=key, force=True)  # timed side by side, now
    st.rerun()
runs.live_panel("learn")


def _max_diff(a: AttributionResult, b: AttributionResult) -> float:
    pairs = [(x, y) for x, y in zip(a.scores(), b.scores(), strict=True) if x is not None and y is not None]
    return max((abs(x - y) for x, y in pairs), default=float("nan"))


def _lesson(results: dict[str, AttributionResult], proxy: str | None) -> None:
    """Each step of the lesson, with the numbers of the live runs."""
    naive, loo, hier = results["loo-naive"], results["loo"], results["hierarchical"]
    n_s, n_p = len(loo.sentences), len(loo.paragraphs)

    # -- step 1 ------------------------------------------------------------------------------------------
    st.header("1 · Leave one out")
    top = loo.top_k(1)[0]
    without = loo.log_prob_full - top.score
    st.markdown(
        f"The model answered with **{loo.response_tokens} tokens**. Their total log-probability given the whole "
        f"context is **{loo.log_prob_full:.2f} nats** (a probability of {math.exp(loo.log_prob_full):.2g}). "
        "Now delete one sentence and ask again how likely *the same answer* is:"
    )
    ui.text_block("Deleted sentence:", top.text)
    st.markdown(
        f"Without it, log p(answer) = **{without:.2f} nats**. The sentence's score is the drop: "
        f"{loo.log_prob_full:.2f} − ({without:.2f}) = **{top.score:+.2f} nats**. Positive means the sentence "
        "*supports* the answer; negative means the answer is more likely without it."
    )
    st.html(heatmap_html(loo, "sentence", known=known_for(loo)))
    st.markdown(
        f"Doing this for all **{n_s} sentences** (and the **{n_p} paragraphs**) plus the full context takes "
        f"**{naive.total_forward_passes} forward passes**. Done naively, each pass reads the whole prompt again: "
        f"**{naive.extra.get('tokens_computed', 0):,} tokens** computed, in {naive.timings['attribute_s']:.2f} s."
    )

    # -- trick 1 -----------------------------------------------------------------------------------------
    st.header("2 · Trick 1: don't recompute what did not change")
    reused = loo.extra.get("tokens_reused", 0)
    computed = loo.extra.get("tokens_computed", 0)
    st.markdown(
        "Deleting sentence 5 leaves sentences 1–4 untouched, and a transformer's work on a prefix does not "
        "depend on what comes after it. So the model's keys and values for that prefix (its *KV cache*) from "
        "the full pass are reused, and only the part after the deleted sentence is recomputed. "
        f"Same **{loo.total_forward_passes} passes**, but only **{computed:,} tokens** computed "
        f"(**{reused:,} reused**) instead of {naive.extra.get('tokens_computed', 0):,}: "
        f"{loo.timings['attribute_s']:.2f} s instead of {naive.timings['attribute_s']:.2f} s. "
        f"The scores are the same: the largest difference is **{_max_diff(loo, naive):.1e} nats** "
        "(floating-point rounding). This trick is exact."
    )

    # -- trick 2 -----------------------------------------------------------------------------------------
    st.header("3 · Trick 2: paragraphs first (hierarchical)")
    kept = hier.extra.get("kept_paragraphs", [])
    not_scored = sum(s is None for s in hier.scores())
    st.markdown(
        f"Score the **{n_p} paragraphs** first (one pass each), keep the best "
        f"**{len(kept)}** (paragraph {', '.join(str(p + 1) for p in kept)}), and score sentences only inside "
        f"it. That took **{hier.total_forward_passes} passes** instead of {loo.total_forward_passes}; "
        f"**{not_scored} sentences** were never scored (hatched below). They are *not scored*, not zero. "
        "It is an approximation: it assumes the important sentences sit in important paragraphs. Here the top "
        f"sentence is {'the same' if hier.top_k(1) and hier.top_k(1)[0].index == top.index else 'different'}."
    )
    st.html(heatmap_html(hier, "sentence", known=known_for(hier)))

    # -- tricks 3 and 4 ----------------------------------------------------------------------------------
    st.header("4 · Trick 3: a smaller proxy model · Trick 4: prune, then let the big model check")
    if proxy:
        px, pr = results["proxy"], results["pruning"]
        st.markdown(
            f"A smaller model ({markdown_literal(px.proxy_model or '')}) computes LOO on the big model's answer: "
            f"{px.total_forward_passes} passes, {px.timings['attribute_s']:.2f} s, and its scores differ from the "
            f"target's by up to {_max_diff(px, loo):.2f} nats. **Pruning** lets the proxy rank every sentence and "
            f"the target rescore only its top {len(pr.extra.get('kept_sentences', []))}: "
            f"{pr.forward_passes.get(pr.model, 0)} target passes instead of {loo.total_forward_passes}."
        )
    else:
        st.markdown(
            "A proxy model is a smaller model of the same family: its LOO scores track the big model's, at a "
            "fraction of the cost per pass. With **pruning**, the proxy ranks every sentence and the big model "
            "rescores only the top few exactly. Choose a proxy model above (and a bigger target) to run this "
            f"step live; more models install with `{QWEN_COMMAND}`."
        )

    # -- summary -----------------------------------------------------------------------------------------
    st.header("What each trick saved")
    rows = []
    for name in method_order(results):
        r = results[name]
        rows.append({
            "method": name,
            "forward passes": r.total_forward_passes,
            "tokens computed": r.extra.get("tokens_computed"),
            "tokens reused": r.extra.get("tokens_reused"),
            "seconds": round(r.timings["attribute_s"], 3),
            "max |score − exact| (nats)": None if math.isnan(_max_diff(r, loo)) else round(_max_diff(r, loo), 4),
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.plotly_chart(compare_cost_figure(results, "loo-naive"), key="learn_cost", width="stretch")


stored = ss.get("learn")
if stored and stored[0] == key:
    _lesson(stored[1], proxy)
else:
    st.info("Press **Run the live example** (it takes a few seconds on the default model).")
