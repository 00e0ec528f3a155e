"""The first-order method: what a run of it gives through the public API (the math: tests/test_first_order.py)."""

from __future__ import annotations

import numpy as np
import pytest

from attribot_core import attribute, segment
from attribot_core.first_order import first_order_effects
from attribot_core.methods import get_method
from attribot_core.methods.baselines import sentence_token_map
from attribot_core.prompt import PromptBuilder, Response
from attribot_core.scoring import LocalScorer
from tests.conftest import sentence_inputs

RESPONSE = "She worked with Charles Babbage."


def test_a_run_scores_every_sentence_with_its_first_order_loo_in_one_forward_pass(tiny_lm, context, question):
    r = attribute(context, question, model=tiny_lm, method="first-order", response=RESPONSE, precision="model")
    doc = segment(context)
    builder = PromptBuilder(tiny_lm.tokenizer, tiny_lm.tokenizer_id)
    prompt, owners = sentence_token_map(builder, doc, question)
    response = builder.response_ids(Response(RESPONSE))
    expected = first_order_effects(tiny_lm, prompt, response, owners, len(doc.sentences), [True] * len(response))
    np.testing.assert_allclose(r.scores(), expected.total(), rtol=1e-5, atol=1e-6)
    assert r.total_forward_passes == 1
    assert r.extra["backward_passes"] == 1
    assert r.log_prob_full == pytest.approx(LocalScorer(tiny_lm, question, Response(RESPONSE)).log_prob(context),
                                            abs=1e-3)


def test_a_paragraphs_first_order_loo_is_the_sum_of_its_sentences(tiny_lm, context, question):
    r = attribute(context, question, model=tiny_lm, method="first-order", response=RESPONSE)
    doc = segment(context)
    for p, score in zip(doc.paragraphs, r.scores("paragraph"), strict=True):
        assert score == pytest.approx(sum(r.scores()[s.index] for s in doc.sentences_of(p.index)), abs=1e-9)


def test_a_part_of_the_response_is_attributed_by_a_run_of_its_own(tiny_lm, context, question):
    whole = attribute(context, question, model=tiny_lm, method="first-order", response=RESPONSE)
    part = attribute(context, question, model=tiny_lm, method="first-order", response=RESPONSE,
                     response_span=(0, 10))
    assert part.scores() != whole.scores()  # the gradient is of that part's log-probs only
    assert "re-run" in whole.why_no_parts()  # one backward pass gives no per-token values to sum instead


def test_it_needs_no_weights_and_is_offered_for_any_local_model():
    spec = get_method("first-order")
    assert spec.params == {"precision": "auto", "layers": "all", "rows": "all"}
    assert not spec.needs_proxy and not spec.exact
    assert spec.planned_passes(3, 10) == 3  # a forward and a backward pass take about three passes' time
    assert spec.planned_passes(3, 10, {"layers": "upper half"}) == 2  # a backward pass half as deep
    assert spec.planned_passes(3, 10, {"rows": "question and response"}) == 1  # the context: a forward pass only


def test_precision_auto_runs_the_pass_in_bfloat16_where_the_cpu_has_it_and_says_so(tiny_lm, context, question,
                                                                                  monkeypatch):
    ask = dict(model=tiny_lm, method="first-order", response=RESPONSE)
    plain = attribute(context, question, **ask, precision="model")
    monkeypatch.setattr("attribot_core.features.bf16_is_faster", lambda lm: True)
    fast = attribute(context, question, **ask)
    assert plain.extra["estimate_matmuls"] == "float32" and plain.log_prob_full is not None
    assert fast.extra["estimate_matmuls"] == "bfloat16"
    assert fast.log_prob_full is None  # a rounded pass's log-probs are not the ones exact LOO stands on
    assert 0 < np.abs(np.subtract(fast.scores(), plain.scores())).max() < 0.15 * np.abs(plain.scores()).max()
    assert attribute(context, question, **ask, precision="model").scores() == plain.scores()


def test_the_upper_half_sums_the_effects_of_the_upper_layers_only(tiny_lm, context, question):
    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question, RESPONSE)
    full = first_order_effects(tiny_lm, prompt, response, owners, len(doc.sentences), [True] * len(response))
    layers = tiny_lm.model.config.num_hidden_layers
    heads = full.per_head.shape[1] // layers
    upper = full.per_head[:, (layers // 2) * heads:].sum(axis=1)
    r = attribute(context, question, model=tiny_lm, method="first-order", response=RESPONSE, precision="model",
                  layers="upper half")
    np.testing.assert_allclose(r.scores(), upper, rtol=1e-5, atol=1e-6)
    assert not np.allclose(r.scores(), full.total(), atol=1e-3)  # the lower half's share is left out


def test_pruning_ranked_by_first_order_rescores_its_top_m_exactly(tiny_lm, context, question):
    ranked = attribute(context, question, model=tiny_lm, method="first-order", response=RESPONSE).scores()

    def pruned(m: int):
        return attribute(context, question, model=tiny_lm, proxy_model=tiny_lm, method="pruning", response=RESPONSE,
                         keep_sentences=m, proxy_stage="first-order")

    r = pruned(2)
    top = sorted(np.argsort(ranked)[-2:].tolist())
    assert sorted(r.extra["kept_sentences"]) == top
    exact = attribute(context, question, model=tiny_lm, method="loo", response=RESPONSE).scores()
    assert r.scores() != ranked  # the kept two were rescored ...
    np.testing.assert_allclose(pruned(len(ranked)).scores(), exact, atol=1e-4)  # ... and with all kept: exact LOO


def test_the_rows_after_the_context_are_a_run_option_with_the_base_log_prob(tiny_lm, context, question):
    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question, RESPONSE)
    expected = first_order_effects(tiny_lm, prompt, response, owners, len(doc.sentences), [True] * len(response),
                                   rows="question and response")
    r = attribute(context, question, model=tiny_lm, method="first-order", response=RESPONSE, precision="model",
                  rows="question and response")
    np.testing.assert_allclose(r.scores(), expected.total(), rtol=1e-5, atol=1e-6)
    assert r.total_forward_passes == 1
    assert r.log_prob_full == pytest.approx(LocalScorer(tiny_lm, question, Response(RESPONSE)).log_prob(context),
                                            abs=1e-3)
    with pytest.raises(ValueError, match="rows"):
        attribute(context, question, model=tiny_lm, method="first-order", response=RESPONSE, rows="context")


def test_after_the_base_pass_the_rows_after_the_context_start_from_its_keys(tiny_lm, context, question):
    from attribot_core.methods.first_order import first_order

    doc = segment(context)
    alone = first_order(doc, LocalScorer(tiny_lm, question, Response(RESPONSE)), precision="model",
                        rows="question and response")
    scorer = LocalScorer(tiny_lm, question, Response(RESPONSE))
    scorer.log_prob(doc.text)  # exact LOO's base pass
    computed = scorer.stats.tokens_computed
    after = first_order(doc, scorer, precision="model", rows="question and response")
    np.testing.assert_allclose(after.sentence_scores, alone.sentence_scores, rtol=1e-4, atol=1e-6)
    _, prompt, owners, response = sentence_inputs(tiny_lm, context, question, RESPONSE)
    after_context = len(prompt) + len(response) - 1 - (max(i for i, o in enumerate(owners) if o >= 0) + 1)
    assert scorer.stats.tokens_computed - computed == after_context  # the rows after the context only
