"""Every method checked against exact leave-one-out on a tiny random model (fp32, in-process).

Tolerances: cached vs naive LOO within 1e-3 nats per span (observed ~1e-5: only matrix shapes differ);
identities that run the very same computations (hierarchical with k = all, proxy = target, pruning with
m = all) within 1e-4 nats.
"""

import math
import re

import pytest
import torch

from attribot_core import ContextTooLong, InputError, Response, attribute, generate_response, segment
from attribot_core.prompt import DEFAULT_TEMPLATE, fill_template

TOL = 1e-3


def direct_log_prob(lm, context, question, response_ids):
    """An independent reference: render the chat template, one plain forward pass, no cache."""
    message = fill_template(DEFAULT_TEMPLATE, context, question)
    prompt = list(lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": message}], tokenize=True, add_generation_prompt=True
    )["input_ids"])
    ids = torch.tensor([prompt + response_ids])
    with torch.no_grad():
        logits = lm.model(ids).logits[0].float()
    lp = torch.log_softmax(logits[len(prompt) - 1 : -1], -1)
    return float(lp.gather(1, torch.tensor(response_ids)[:, None]).sum())


@pytest.fixture(scope="module")
def response(tiny_lm):
    ids = tiny_lm.tokenizer("Charles Babbage worked with her.", add_special_tokens=False)["input_ids"]
    eot = tiny_lm.tokenizer.convert_tokens_to_ids("<|im_end|>")
    return Response("Charles Babbage worked with her.", tuple(ids + [eot]), tiny_lm.tokenizer_id)


def scores(result, level="sentence"):
    return result.scores(level)


def test_loo_is_log_p_full_minus_log_p_without_the_span(tiny_lm, context, question, response):
    result = attribute(context, question, model=tiny_lm, method="loo", response=response)
    ids = list(response.token_ids)
    doc = segment(context)
    full = direct_log_prob(tiny_lm, context, question, ids)
    assert result.log_prob_full == pytest.approx(full, abs=TOL)
    for s in (0, 3, len(doc.sentences) - 1):
        expected = full - direct_log_prob(tiny_lm, doc.without([s]), question, ids)
        assert result.sentences[s].score == pytest.approx(expected, abs=TOL)
    expected_p = full - direct_log_prob(tiny_lm, doc.without_paragraphs([1]), question, ids)
    assert result.paragraphs[1].score == pytest.approx(expected_p, abs=TOL)


def test_cached_loo_equals_naive_loo(tiny_lm, context, question, response):
    naive = attribute(context, question, model=tiny_lm, method="loo-naive", response=response)
    cached = attribute(context, question, model=tiny_lm, method="loo", response=response)
    for level in ("sentence", "paragraph"):
        for a, b in zip(scores(naive, level), scores(cached, level), strict=True):
            assert a == pytest.approx(b, abs=TOL)
    assert cached.total_forward_passes == naive.total_forward_passes
    assert cached.extra["tokens_reused"] > 0 and naive.extra["tokens_reused"] == 0
    assert cached.extra["tokens_computed"] < naive.extra["tokens_computed"] / 1.5


@pytest.mark.parametrize("method", ["loo", "hierarchical", "tree"])
@pytest.mark.parametrize("keys", ["generation", "prefill in chunks of 8", "prefill of another question"])
def test_exact_loo_from_the_keys_generation_or_a_prefill_left_equals_its_own_base_pass(
        tiny_lm, context, question, method, keys):
    """The base pass starts from the prompt's keys at hand and computes the rest: the same scores, within
    float rounding (1e-5 nats, or 1e-6 of the tiny random model's scores of tens of nats), and the shared
    tokens are not computed again."""
    from attribot_core.generate import prefill

    kept = []
    response = generate_response(tiny_lm, context, question, max_new_tokens=6, on_pass=kept.append)
    if keys != "generation":
        asked = question if keys.startswith("prefill in") else "Who else was there?"
        kept = [prefill(tiny_lm, context, asked, chunk=8, max_chunk=8)]
    own = attribute(context, question, model=tiny_lm, method=method, response=response)
    started = attribute(context, question, model=tiny_lm, method=method, response=response, kept_pass=kept[0])
    assert started.log_prob_full == pytest.approx(own.log_prob_full, rel=1e-6, abs=1e-5)
    for level in ("sentence", "paragraph"):
        assert [s is None for s in scores(started, level)] == [s is None for s in scores(own, level)]
        for a, b in zip(scores(own, level), scores(started, level), strict=True):
            assert a is None or a == pytest.approx(b, rel=1e-6, abs=1e-5)
    assert started.total_forward_passes == own.total_forward_passes
    assert started.extra["tokens_computed"] < own.extra["tokens_computed"]
    assert started.extra["tokens_reused"] > own.extra["tokens_reused"]


def test_a_model_in_another_dtype_runs_its_own_base_pass(tiny_lm, context, question, monkeypatch):
    """Keys are taken only in the dtypes of KEPT_KEYS_DTYPES (half precision rounds a split far more
    coarsely): here float32 taken off that list."""
    from attribot_core import scoring

    kept = []
    response = generate_response(tiny_lm, context, question, max_new_tokens=4, on_pass=kept.append)
    own = attribute(context, question, model=tiny_lm, method="loo", response=response)
    monkeypatch.setattr(scoring, "KEPT_KEYS_DTYPES", ("torch.float16", "torch.bfloat16"))
    offered = attribute(context, question, model=tiny_lm, method="loo", response=response, kept_pass=kept[0])
    assert offered.extra["tokens_computed"] == own.extra["tokens_computed"]
    assert scores(offered) == scores(own)


def test_hierarchical_with_all_paragraphs_is_sentence_loo(tiny_lm, context, question, response):
    n = len(segment(context).paragraphs)
    loo = attribute(context, question, model=tiny_lm, method="loo", response=response)
    hier = attribute(context, question, model=tiny_lm, method="hierarchical", response=response, keep_paragraphs=n)
    assert scores(hier) == pytest.approx(scores(loo), abs=1e-4)
    assert scores(hier, "paragraph") == pytest.approx(scores(loo, "paragraph"), abs=1e-4)


def test_hierarchical_skips_pruned_paragraphs(tiny_lm, context, question, response):
    hier = attribute(context, question, model=tiny_lm, method="hierarchical", response=response, keep_paragraphs=1)
    par = scores(hier, "paragraph")
    best = max(range(len(par)), key=par.__getitem__)
    assert hier.extra["kept_paragraphs"] == [best]
    for s in hier.sentences:
        assert (s.score is not None) == (s.paragraph == best)
    # scores are relative to the pruned context (only the kept paragraph)
    doc = segment(context)
    ids = list(response.token_ids)
    pruned = doc.without_paragraphs([p for p in range(len(par)) if p != best])
    inside = [s.index for s in doc.sentences if s.parent == best]
    kept_lp = direct_log_prob(tiny_lm, pruned, question, ids)
    drop = doc.without([s.index for s in doc.sentences if s.parent != best] + [inside[0]])
    expected = kept_lp - direct_log_prob(tiny_lm, drop, question, ids)
    assert hier.sentences[inside[0]].score == pytest.approx(expected, abs=TOL)
    n_par, n_inside = len(doc.paragraphs), len(inside)
    assert hier.total_forward_passes == 1 + n_par + 1 + n_inside


def test_proxy_equal_to_target_is_loo(tiny_lm, context, question, response):
    loo = attribute(context, question, model=tiny_lm, method="loo", response=response)
    prox = attribute(context, question, model=tiny_lm, method="proxy", proxy_model=tiny_lm, response=response)
    assert scores(prox) == pytest.approx(scores(loo), abs=1e-4)
    assert prox.log_prob_full is None  # the target never runs, so its full-context log p is not known
    assert prox.extra["proxy_log_prob_full"] == pytest.approx(loo.log_prob_full, abs=1e-4)


def test_pruning_with_all_sentences_is_loo(tiny_lm, context, question, response):
    n = len(segment(context).sentences)
    loo = attribute(context, question, model=tiny_lm, method="loo", response=response)
    pr = attribute(context, question, model=tiny_lm, method="pruning", proxy_model=tiny_lm,
                   response=response, keep_sentences=n)
    assert scores(pr) == pytest.approx(scores(loo), abs=1e-4)
    assert pr.extra["log_prob_pruned"] == pytest.approx(loo.log_prob_full, abs=1e-4)


def test_pruning_marks_who_scored_each_sentence(tiny_lm, tiny_lm_b, context, question, response):
    pr = attribute(context, question, model=tiny_lm, method="pruning", proxy_model=tiny_lm_b,
                   response=response, keep_sentences=2)
    by_target = [s for s in pr.sentences if s.scored_by == tiny_lm.model_id]
    by_proxy = [s for s in pr.sentences if s.scored_by == tiny_lm_b.model_id]
    assert len(by_target) == 2 and len(by_proxy) == len(pr.sentences) - 2
    assert sorted(s.index for s in by_target) == sorted(pr.extra["kept_sentences"])
    assert all(s.score is not None for s in pr.sentences)
    assert set(pr.forward_passes) == {tiny_lm.model_id, tiny_lm_b.model_id}
    # the target sees only the pruned context: once whole, once without each kept sentence
    assert pr.forward_passes[tiny_lm.model_id] == 1 + 2 and pr.log_prob_full is None


def test_full_stack_prunes_paragraphs_then_sentences(tiny_lm, tiny_lm_b, context, question, response):
    pr = attribute(context, question, model=tiny_lm, method="pruning", proxy_model=tiny_lm_b,
                   response=response, keep_sentences=2, keep_paragraphs=1)
    assert sum(s.scored_by == tiny_lm.model_id for s in pr.sentences) == 2
    assert any(s.score is None for s in pr.sentences)  # sentences of paragraphs the proxy pruned


def test_cross_tokenizer_proxy_scores_the_response_text(tiny_lm, tiny_lm_b, context, question, response):
    assert tiny_lm.tokenizer_id != tiny_lm_b.tokenizer_id
    prox = attribute(context, question, model=tiny_lm, method="proxy", proxy_model=tiny_lm_b, response=response)
    direct = attribute(context, question, model=tiny_lm_b, method="loo", response=response.text)
    assert scores(prox) == pytest.approx(scores(direct), abs=1e-4)
    assert all(s.scored_by == tiny_lm_b.model_id for s in prox.sentences)


def test_response_span_sums_only_the_overlapping_tokens(tiny_lm, context, question, response):
    text = response.text
    part = attribute(context, question, model=tiny_lm, method="loo", response=response, response_span=(0, 7))
    whole = attribute(context, question, model=tiny_lm, method="loo", response=response)
    assert 0 < part.response_tokens < whole.response_tokens
    assert part.response_span == (0, 7)
    rest = attribute(context, question, model=tiny_lm, method="loo", response=response,
                     response_span=(7, len(text)))
    # tokens split exactly at 7 here, so the two parts add up to the whole
    assert part.response_tokens + rest.response_tokens == whole.response_tokens
    for a, b, c in zip(scores(part), scores(rest), scores(whole), strict=True):
        assert a + b == pytest.approx(c, abs=TOL)


def test_external_text_response_is_encoded_with_end_of_turn(tiny_lm, context, question):
    r = attribute(context, question, model=tiny_lm, method="loo", response="An answer from elsewhere.")
    ids = tiny_lm.tokenizer("An answer from elsewhere.", add_special_tokens=False)["input_ids"]
    assert r.response_tokens == len(ids) + 1
    assert r.log_prob_full == pytest.approx(
        direct_log_prob(tiny_lm, context, question, ids + [tiny_lm.tokenizer.eos_token_id]), abs=TOL)


def test_generated_response_is_scored_on_its_own_ids(tiny_lm, context, question):
    r = attribute(context, question, model=tiny_lm, method="loo", max_new_tokens=6)
    assert r.timings["generate_s"] > 0 and r.response_tokens >= 1
    assert all(math.isfinite(s.score) for s in r.sentences)


def test_too_long_prompt_fails_before_any_work(tiny_lm, question):
    long_context = "The engine was built. " * 600
    with pytest.raises(ContextTooLong, match="window"):
        attribute(long_context, question, model=tiny_lm, method="loo", response="Yes.")
    with pytest.raises(ContextTooLong):
        attribute(long_context, question, model=tiny_lm, method="loo")  # before generating


def test_empty_context_is_an_input_error(tiny_lm):
    with pytest.raises(InputError, match="empty"):
        attribute("  \n ", "q?", model=tiny_lm, response="a")


def test_one_sentence_context_scores_that_sentence(tiny_lm, question):
    r = attribute("Babbage built it.", question, model=tiny_lm, method="hierarchical", response="Babbage.")
    assert len(r.sentences) == 1 and r.sentences[0].score is not None
    assert r.sentences[0].score == pytest.approx(r.paragraphs[0].score, abs=1e-4)


def test_unknown_method_and_parameter_are_rejected(tiny_lm, context, question):
    with pytest.raises(ValueError, match="Unknown method"):
        attribute(context, question, model=tiny_lm, method="magic", response="a")
    with pytest.raises(InputError, match="keep_sentences"):
        attribute(context, question, model=tiny_lm, method="loo", response="a", keep_sentences=3)
    with pytest.raises(InputError, match="proxy"):
        attribute(context, question, model=tiny_lm, method="proxy", response="a")


@pytest.mark.slow
def test_cached_loo_equals_naive_loo_on_smollm2(smollm2_lm, context, question):
    response = generate_response(smollm2_lm, context, question, max_new_tokens=24)
    cached = attribute(context, question, model=smollm2_lm, method="loo", response=response)
    naive = attribute(context, question, model=smollm2_lm, method="loo-naive", response=response)
    for level in ("sentence", "paragraph"):
        for a, b in zip(scores(naive, level), scores(cached, level), strict=True):
            assert a == pytest.approx(b, abs=TOL)


@pytest.mark.slow
def test_exact_loo_from_a_chunked_prefill_equals_its_own_base_pass_on_smollm2(smollm2_lm, context, question):
    from attribot_core.generate import prefill

    response = generate_response(smollm2_lm, context, question, max_new_tokens=24)
    kept = prefill(smollm2_lm, context, question, chunk=64, max_chunk=128)
    own = attribute(context, question, model=smollm2_lm, method="loo", response=response)
    started = attribute(context, question, model=smollm2_lm, method="loo", response=response, kept_pass=kept)
    assert started.extra["tokens_computed"] < own.extra["tokens_computed"]
    for level in ("sentence", "paragraph"):
        for a, b in zip(scores(own, level), scores(started, level), strict=True):
            assert a == pytest.approx(b, abs=1e-4)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"question": "   "}, "The question is empty"),
    ({"question": "\u200b\u200b"}, "The question is empty"),
    ({"context": "\u200b\u200c\n\n\u200d"}, "The context is empty"),
    ({"method": "hierarchical", "keep_paragraphs": 0}, "keep_paragraphs must be a whole number ≥ 1"),
    ({"method": "hierarchical", "keep_paragraphs": -2}, "keep_paragraphs must be a whole number ≥ 1"),
    ({"method": "hierarchical", "keep_paragraphs": "2"}, "keep_paragraphs must be a whole number"),
    ({"method": "hierarchical", "keep_paragraphs": True}, "keep_paragraphs must be a whole number"),
    ({"method": "pruning", "keep_sentences": 0, "proxy_model": "x"}, "keep_sentences must be a whole number ≥ 1"),
    ({"method": "loo", "paragraphs": "yes"}, "paragraphs must be true or false"),
    ({"method": "surrogate", "keep_prob": 1.5}, "keep_prob must be a probability"),
    ({"max_new_tokens": 0}, "max_new_tokens must be a whole number ≥ 1"),
    ({"response": "Yes.", "response_span": (3, 99)}, "not a START:END range inside the response"),
    ({"template": "no placeholders"}, "must contain {context} and {question}"),
])
def test_bad_input_is_refused_before_any_model_loads(context, question, kwargs, message):
    args = {"context": context, "question": question, "model": "/no/such/model/would/fail/to/load", **kwargs}
    with pytest.raises(InputError, match=re.escape(message)):
        attribute(args.pop("context"), args.pop("question"), **args)
