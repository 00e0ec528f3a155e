"""The attention-mass features recomputed from q/k projections equal the eager path's attention weights."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from attribot_core.features import attention_features, bf16_is_faster, model_shape
from attribot_core.prompt import Response
from tests.conftest import sentence_inputs


def _eager_mass(lm, prompt, owners, response, n_spans) -> np.ndarray:
    """The reference: ``output_attentions=True`` on the eager path, summed per span (responses x spans x L*H)."""
    model = lm.model
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([prompt + response[:-1]]), output_attentions=True, use_cache=False)
    finally:
        model.set_attn_implementation(previous)
    rows = [len(prompt) - 1 + t for t in range(len(response))]
    layers, heads = model_shape(model)
    expected = np.zeros((len(response), n_spans, layers * heads))
    for layer, weights in enumerate(out.attentions):
        w = weights[0][:, rows, : len(prompt)].double().numpy()  # (heads, rows, prompt keys)
        for span in range(n_spans):
            on = np.asarray(owners) == span
            expected[:, span, layer * heads:(layer + 1) * heads] = w[:, :, on].sum(axis=2).T
    return expected


@pytest.mark.parametrize("which", ["tiny_lm", "tiny_qwen_lm"])
def test_features_equal_eager_output_attentions(which, request, context, question):
    lm = request.getfixturevalue(which)
    doc, prompt, owners, response = sentence_inputs(lm, context, question)
    feats = attention_features(lm, prompt, response, owners, len(doc.sentences))
    expected = _eager_mass(lm, prompt, owners, response, len(doc.sentences))
    assert feats.per_token.shape == expected.shape == (len(response), len(doc.sentences), 2 * 4)
    assert expected.sum() > 0.1  # the response does look at the context: the comparison is not of zeros
    np.testing.assert_allclose(feats.per_token, expected, atol=1e-5)


def test_features_do_not_switch_the_model_to_eager(tiny_lm, context, question):
    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    before = tiny_lm.model.config._attn_implementation
    attention_features(tiny_lm, prompt, response, owners, len(doc.sentences))
    assert tiny_lm.model.config._attn_implementation == before != "eager"


def test_token_log_probs_are_the_scorers(tiny_lm, context, question):
    from attribot_core.scoring import LocalScorer

    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    feats = attention_features(tiny_lm, prompt, response, owners, len(doc.sentences))
    scorer = LocalScorer(tiny_lm, question, Response("She worked with Charles Babbage."), reuse_prefix=False)
    assert feats.token_log_probs.sum() == pytest.approx(scorer.log_prob(doc.text), abs=1e-4)


def test_summed_features_add_the_masked_tokens(tiny_lm, context, question):
    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    feats = attention_features(tiny_lm, prompt, response, owners, len(doc.sentences))
    mask = [t % 2 == 0 for t in range(len(response))]
    np.testing.assert_allclose(feats.summed(mask), feats.per_token[::2].sum(axis=0))
    assert (feats.summed() <= len(response) + 1e-9).all()  # a row's mass over spans is at most 1


def test_the_scorers_base_pass_can_carry_the_capture_and_gives_the_same_features(tiny_lm, context, question):
    from attribot_core.features import AttentionCapture
    from attribot_core.scoring import LocalScorer

    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    own = attention_features(tiny_lm, prompt, response, owners, len(doc.sentences))
    scorer = LocalScorer(tiny_lm, question, Response("She worked with Charles Babbage."))
    capture = AttentionCapture(tiny_lm, len(prompt), len(response), owners, len(doc.sentences))
    carried = capture.features(scorer.observed_base_pass(doc.text, capture), 0.0)
    np.testing.assert_allclose(carried.per_token, own.per_token, atol=1e-5)
    np.testing.assert_allclose(carried.token_log_probs, own.token_log_probs, atol=1e-4)
    assert scorer.stats.forward_passes == 1
    scorer.log_prob(doc.text)  # the base pass is done: asking for it again runs nothing
    assert scorer.stats.forward_passes == 1
    again = AttentionCapture(tiny_lm, len(prompt), len(response), owners, len(doc.sentences))
    assert scorer.observed_base_pass(doc.text, again) is None  # a used scorer has no fresh pass to carry it


def test_a_base_pass_carrying_the_capture_runs_every_row_even_with_keys_at_hand(tiny_lm, context, question):
    """Keys a prefill left (here of part of the prompt) would spare the base pass its first rows, whose keys
    the capture never saw: a pass that carries it starts at position 0, and gives the features it would
    without them."""
    from attribot_core.features import AttentionCapture
    from attribot_core.generate import prefill
    from attribot_core.scoring import LocalScorer

    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    own = attention_features(tiny_lm, prompt, response, owners, len(doc.sentences))
    part = prefill(tiny_lm, context, question, chunk=8, max_tokens=8)
    scorer = LocalScorer(tiny_lm, question, Response("She worked with Charles Babbage."), kept_pass=part)
    capture = AttentionCapture(tiny_lm, len(prompt), len(response), owners, len(doc.sentences))
    carried = capture.features(scorer.observed_base_pass(doc.text, capture), 0.0)
    np.testing.assert_allclose(carried.per_token, own.per_token, atol=1e-5)
    assert scorer.stats.tokens_reused == 0 and scorer.stats.tokens_computed == len(prompt) + len(response) - 1


def test_a_pass_of_depth_one_records_the_first_layer_and_stops_at_its_key_projection(tiny_lm, context, question):
    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    full = attention_features(tiny_lm, prompt, response, owners, len(doc.sentences))
    layers_run = []
    first = tiny_lm.model.model.layers[0]
    hooks = [layer.register_forward_hook(lambda *_a, i=i: layers_run.append(i))
             for i, layer in enumerate(tiny_lm.model.model.layers)]
    hooks += [module.register_forward_hook(lambda *_a, name=name: layers_run.append(name))
              for name, module in (("v_proj", first.self_attn.v_proj), ("mlp", first.mlp))]
    try:
        shallow = attention_features(tiny_lm, prompt, response, owners, len(doc.sentences), depth=1)
    finally:
        for h in hooks:
            h.remove()
    heads = model_shape(tiny_lm.model)[1]
    assert (shallow.layers, shallow.per_token.shape[2]) == (1, heads)
    np.testing.assert_allclose(shallow.per_token, full.per_token[:, :, :heads], atol=1e-6)
    # layer 0 ended at its key projection: no values, no MLP, no later layer, no logits
    assert layers_run == [] and shallow.token_log_probs is None
    again = attention_features(tiny_lm, prompt, response, owners, len(doc.sentences), depth=1)
    np.testing.assert_allclose(again.per_token, shallow.per_token)  # the model is left as it was


def test_a_depth_the_model_does_not_have_is_refused(tiny_lm, context, question):
    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    with pytest.raises(ValueError, match="has 2 layers"):
        attention_features(tiny_lm, prompt, response, owners, len(doc.sentences), depth=3)


def test_a_shallow_capture_on_the_scorers_base_pass_lets_the_pass_run_to_its_log_probs(tiny_lm, context, question):
    from attribot_core.features import AttentionCapture
    from attribot_core.scoring import LocalScorer

    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    full = attention_features(tiny_lm, prompt, response, owners, len(doc.sentences))
    scorer = LocalScorer(tiny_lm, question, Response("She worked with Charles Babbage."))
    capture = AttentionCapture(tiny_lm, len(prompt), len(response), owners, len(doc.sentences), depth=1)
    carried = capture.features(scorer.observed_base_pass(doc.text, capture), 0.0)
    heads = model_shape(tiny_lm.model)[1]
    np.testing.assert_allclose(carried.per_token, full.per_token[:, :, :heads], atol=1e-5)
    np.testing.assert_allclose(carried.token_log_probs, full.token_log_probs, atol=1e-4)  # exact LOO needs them


def test_a_bf16_pass_gives_the_same_features_a_little_apart_and_no_log_probs(tiny_lm, context, question):
    """What ``precision="auto"`` uses on a CPU with native bfloat16; forced here, so it is tested on every machine."""
    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    exact = attention_features(tiny_lm, prompt, response, owners, len(doc.sentences))
    fast = attention_features(tiny_lm, prompt, response, owners, len(doc.sentences), bf16=True)
    assert fast.token_log_probs is None and exact.token_log_probs is not None
    assert fast.per_token.shape == exact.per_token.shape
    assert 0 < np.abs(fast.per_token - exact.per_token).max() < 0.05  # bfloat16 rounding, not another quantity


@pytest.mark.parametrize("unit", ["_is_amx_tile_supported", "_is_avx512_bf16_supported"])
def test_bf16_is_chosen_only_for_a_float32_model_on_a_cpu_with_native_bfloat16(tiny_lm, monkeypatch, unit):
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    assert not bf16_is_faster(tiny_lm)  # emulated bfloat16 is slower than float32
    monkeypatch.setattr(torch.cpu, unit, lambda: True, raising=False)
    assert bf16_is_faster(tiny_lm)
    half = SimpleNamespace(device=tiny_lm.device, model=SimpleNamespace(dtype=torch.bfloat16))
    assert not bf16_is_faster(half)  # already half precision: nothing to gain


@pytest.mark.parametrize("which", ["tiny_lm", "tiny_qwen_lm"])
def test_a_pass_after_generation_reuses_its_keys_and_gives_the_same_features(which, request, context, question):
    """Generation leaves every prompt token's keys and values: the features then cost the response rows only."""
    from attribot_core.generate import generate_response

    lm = request.getfixturevalue(which)
    kept = []
    generated = generate_response(lm, context, question, max_new_tokens=6, on_pass=kept.append)
    doc, prompt, owners, _ = sentence_inputs(lm, context, question)
    response = list(generated.token_ids)
    full = attention_features(lm, prompt, response, owners, len(doc.sentences))
    after = attention_features(lm, prompt, response, owners, len(doc.sentences), after=kept[0])
    assert (full.reused, after.reused) == (0, len(prompt) - 1)  # all but the row predicting the first token
    np.testing.assert_allclose(after.per_token, full.per_token, atol=1e-5)
    np.testing.assert_allclose(after.token_log_probs, full.token_log_probs, atol=1e-4)
    shallow = attention_features(lm, prompt, response, owners, len(doc.sentences), depth=1, after=kept[0])
    np.testing.assert_allclose(shallow.per_token, full.per_token[:, :, :4], atol=1e-5)


def test_a_kept_pass_over_another_prompt_lends_only_the_tokens_they_share(tiny_lm, context, question):
    from attribot_core.generate import generate_response

    kept = []
    generate_response(tiny_lm, context, "Who else was there?", max_new_tokens=4, on_pass=kept.append)
    doc, prompt, owners, response = sentence_inputs(tiny_lm, context, question)
    full = attention_features(tiny_lm, prompt, response, owners, len(doc.sentences))
    after = attention_features(tiny_lm, prompt, response, owners, len(doc.sentences), after=kept[0])
    assert 0 < after.reused < len(prompt) - 1  # the template and the context, not the question
    np.testing.assert_allclose(after.per_token, full.per_token, atol=1e-5)
