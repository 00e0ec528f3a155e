"""First-order LOO is the derivative it claims to be: the change of log p(response) as every later token's
attention to a span is scaled down, measured by finite differences on the tiny models in float64."""

from __future__ import annotations

import copy
import dataclasses
import types

import numpy as np
import pytest
import torch

from attribot_core.first_order import ROWS, first_order_effects
from attribot_core.kv import KeptPass
from attribot_core.metrics import spearman
from tests.conftest import sentence_inputs


def _log_p_with_span_scaled(lm, prompt, owners, response, span: int, eps: float, mask, first_row: int = 0) -> float:
    """log p(response) (attributed tokens) when, in every layer, every row outside the span (later sentences,
    question, template, response) from ``first_row`` on weighs the span's keys by (1 - eps) before the
    softmax renormalises: an additive mask log(1 - eps) on those (row, key) pairs (rows before the span
    never see it)."""
    ids = prompt + response[:-1]
    n = len(ids)
    additive = torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)  # causal
    additive = torch.where(torch.isinf(additive), additive, torch.zeros_like(additive))
    rows = torch.tensor([i for i in range(first_row, n) if i >= len(owners) or owners[i] != span])
    keys = torch.tensor([i for i, o in enumerate(owners) if o == span])
    additive[rows[:, None], keys[None, :]] += float(np.log1p(-eps))
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids]), attention_mask=additive[None, None],
                          use_cache=False).logits[0, -len(response):]
    lp = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(response)[:, None])[:, 0]
    return float(lp[torch.tensor(mask)].sum())


def _rms_norm_in_float64(self, x):
    """The architectures' RMSNorm, without its cast to float32 (which would drown a finite difference)."""
    return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))


@pytest.fixture(params=["tiny_lm", "tiny_qwen_lm"])
def lm64(request):
    """The tiny model computing in float64 throughout (a copy: the session's model is shared); SDPA attention,
    which keeps float64 (the eager path's softmax is float32) and takes the 4D additive mask."""
    lm = request.getfixturevalue(request.param)
    model = copy.deepcopy(lm.model).double()
    model.set_attn_implementation("sdpa")
    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm"):
            module.forward = types.MethodType(_rms_norm_in_float64, module)
    return dataclasses.replace(lm, model=model, dtype=torch.float64)


@pytest.mark.parametrize("attributed", ["all", "part"])
def test_each_span_effect_is_the_derivative_of_log_p_as_its_attention_is_taken_away(lm64, context, question,
                                                                                     attributed):
    doc, prompt, owners, response = sentence_inputs(lm64, context, question)
    mask = [True] * len(response) if attributed == "all" else [i % 2 == 0 for i in range(len(response))]
    effects = first_order_effects(lm64, prompt, response, owners, len(doc.sentences), mask).total()
    eps = 1e-4
    for span in range(len(doc.sentences)):
        # LOO ~ f(0) - f(1), linearised: -f'(0), by central differences
        derivative = (_log_p_with_span_scaled(lm64, prompt, owners, response, span, -eps, mask)
                      - _log_p_with_span_scaled(lm64, prompt, owners, response, span, eps, mask)) / (2 * eps)
        assert effects[span] == pytest.approx(derivative, rel=1e-4, abs=1e-7)
    assert np.abs(effects).max() > 1e-3  # the spans do move the response: the comparison is not of zeros


def test_per_head_effects_add_up_to_the_total_and_log_probs_are_the_models(tiny_lm, context, question):
    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    effects = first_order_effects(tiny_lm, prompt, response, owners, len(doc.sentences), [True] * len(response))
    assert effects.per_head.shape == (len(doc.sentences), 2 * 4)
    np.testing.assert_allclose(effects.per_head.sum(axis=1), effects.total())
    with torch.no_grad():
        logits = tiny_lm.model(input_ids=torch.tensor([prompt + response[:-1]])).logits[0, -len(response):]
    expected = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(response)[:, None])[:, 0].numpy()
    np.testing.assert_allclose(effects.token_log_probs, expected, atol=1e-5)


@pytest.mark.parametrize("rows", ROWS)
def test_starting_at_a_layer_keeps_exactly_the_effects_through_that_layer_and_above(lm64, context, question, rows):
    doc, prompt, owners, response = sentence_inputs(lm64, context, question)
    args = (lm64, prompt, response, owners, len(doc.sentences), [True] * len(response))
    full = first_order_effects(*args, rows=rows).per_head
    upper = first_order_effects(*args, first_layer=1, rows=rows).per_head  # the tiny models have 2 layers of 4 heads
    np.testing.assert_allclose(upper[:, 4:], full[:, 4:], rtol=1e-6, atol=1e-9)  # a layer's gradient: from above
    assert not upper[:, :4].any() and full[:, :4].any()
    with pytest.raises(ValueError, match="layers 0 .. 1"):
        first_order_effects(*args, first_layer=2)


@pytest.mark.parametrize("rows", ROWS)
def test_a_bfloat16_pass_gives_the_same_effects_up_to_its_rounding(tiny_lm, context, question, rows):
    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    args = (tiny_lm, prompt, response, owners, len(doc.sentences), [True] * len(response))
    exact = first_order_effects(*args, rows=rows).total()
    rounded = first_order_effects(*args, bf16=True, rows=rows).total()
    # the tiny random model's rounding: within 15 % of the largest effect (measured: 11 %), ranked alike
    assert 0 < np.abs(rounded - exact).max() < 0.15 * np.abs(exact).max()
    assert spearman(rounded, exact) > 0.9


def _after_the_context(owners) -> int:
    """The first row after the context: the question's, the template's and the response's rows start there."""
    return max(i for i, o in enumerate(owners) if o >= 0) + 1


def test_the_rows_after_the_context_give_the_derivative_as_only_they_lose_the_span(lm64, context, question):
    doc, prompt, owners, response = sentence_inputs(lm64, context, question)
    mask = [True] * len(response)
    effects = first_order_effects(lm64, prompt, response, owners, len(doc.sentences), mask,
                                  rows="question and response").total()
    full = first_order_effects(lm64, prompt, response, owners, len(doc.sentences), mask).total()
    cut, eps = _after_the_context(owners), 1e-4
    for span in range(len(doc.sentences)):
        derivative = (_log_p_with_span_scaled(lm64, prompt, owners, response, span, -eps, mask, cut)
                      - _log_p_with_span_scaled(lm64, prompt, owners, response, span, eps, mask, cut)) / (2 * eps)
        assert effects[span] == pytest.approx(derivative, rel=1e-4, abs=1e-7)
    assert np.abs(effects).max() > 1e-3
    assert not np.allclose(effects, full)  # the later sentences' rows are left out: a different sum


def test_the_rows_after_the_context_run_the_context_once_without_autograd(tiny_lm, context, question):
    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    calls = []
    first = tiny_lm.model.model.layers[0].self_attn.q_proj
    handle = first.register_forward_hook(lambda _m, args, _out: calls.append((args[0].shape[1],
                                                                              torch.is_grad_enabled())))
    try:
        effects = first_order_effects(tiny_lm, prompt, response, owners, len(doc.sentences),
                                      [True] * len(response), rows="question and response")
    finally:
        handle.remove()
    cut = _after_the_context(owners)
    assert calls == [(cut, False), (len(prompt) + len(response) - 1 - cut, True)]
    with torch.no_grad():  # the log-probs are still the whole prompt's
        logits = tiny_lm.model(input_ids=torch.tensor([prompt + response[:-1]])).logits[0, -len(response):]
    expected = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(response)[:, None])[:, 0].numpy()
    np.testing.assert_allclose(effects.token_log_probs, expected, atol=1e-5)


def test_rows_must_be_one_of_the_named_sets(tiny_lm, context, question):
    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    assert ROWS == ("all", "question and response")
    with pytest.raises(ValueError, match="one of all, question and response"):
        first_order_effects(tiny_lm, prompt, response, owners, len(doc.sentences), [True] * len(response),
                            rows="response")


@pytest.mark.parametrize("kept_tokens", ["whole prompt", "part of the context"])
def test_keys_at_hand_spare_the_contexts_pass_and_change_no_effect(tiny_lm, context, question, kept_tokens):
    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    ids = prompt + response[:-1]
    cut = _after_the_context(owners)
    kept_ids = ids if kept_tokens == "whole prompt" else ids[: cut // 2]
    with torch.no_grad():
        cache = tiny_lm.model(input_ids=torch.tensor([kept_ids]), use_cache=True).past_key_values
    args = (tiny_lm, prompt, response, owners, len(doc.sentences), [True] * len(response))
    alone = first_order_effects(*args, rows="question and response")
    calls = []
    first = tiny_lm.model.model.layers[0].self_attn.q_proj
    handle = first.register_forward_hook(lambda _m, a, _out: calls.append(a[0].shape[1]))
    try:
        after = first_order_effects(*args, rows="question and response",
                                    after=KeptPass(tiny_lm.model_id, tuple(kept_ids), cache))
    finally:
        handle.remove()
    np.testing.assert_allclose(after.per_head, alone.per_head, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(after.token_log_probs, alone.token_log_probs, atol=1e-5)
    if kept_tokens == "whole prompt":
        assert after.reused == cut and calls == [len(ids) - cut]  # only the rows after the context ran
    else:
        assert after.reused == cut // 2 and calls == [cut - cut // 2, len(ids) - cut]
    assert len(cache.layers[0].keys[0, 0]) == len(kept_ids)  # the kept keys are read, never written
