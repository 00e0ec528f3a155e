"""Per-token attribution: kept from the same passes, and a part of the response explained from it exactly.

``for_response_span`` must equal ``attribute(..., response_span=...)`` within 1e-4 nats per span for
loo, hierarchical and proxy (the re-run does the very same forward passes; only fp32 storage of the
per-token deltas differs), on the tiny model here and on the default model in the slow test.
"""

import json
import math

import pytest

from attribot_core import AttributionResult, Response, SpanNeedsRerun, attribute, segment
from attribot_core.methods.base import MethodOutput, loo_round
from attribot_core.result import SpanScore

TOL = 1e-4
RESPONSE_TEXT = "Charles Babbage worked with her on the Engine."


@pytest.fixture(scope="module")
def response(tiny_lm):
    ids = tiny_lm.tokenizer(RESPONSE_TEXT, add_special_tokens=False)["input_ids"]
    eot = tiny_lm.tokenizer.convert_tokens_to_ids("<|im_end|>")
    return Response(RESPONSE_TEXT, tuple(ids + [eot]), tiny_lm.tokenizer_id)


PARTS = [(0, 7), (8, 15), (16, 30), (30, len(RESPONSE_TEXT)), (3, 20)]


def assert_same_scores(from_stored, rerun):
    for level in ("sentence", "paragraph"):
        for a, b in zip(from_stored.scores(level), rerun.scores(level), strict=True):
            assert (a is None) == (b is None)
            if a is not None:
                assert a == pytest.approx(b, abs=TOL)
    if rerun.log_prob_full is None:
        assert from_stored.log_prob_full is None
    else:
        assert from_stored.log_prob_full == pytest.approx(rerun.log_prob_full, abs=TOL)
    assert from_stored.response_tokens == rerun.response_tokens
    assert from_stored.response_span == rerun.response_span


@pytest.mark.parametrize("part", PARTS)
def test_span_from_stored_values_equals_a_loo_rerun(tiny_lm, context, question, response, part):
    full = attribute(context, question, model=tiny_lm, method="loo", response=response)
    rerun = attribute(context, question, model=tiny_lm, method="loo", response=response, response_span=part)
    stored = full.for_response_span(*part)
    assert_same_scores(stored, rerun)
    assert stored.extra["span_exact"] and stored.extra["span_from_stored"]


def test_span_from_stored_values_equals_a_hierarchical_rerun(tiny_lm, context, question, response):
    full = attribute(context, question, model=tiny_lm, method="hierarchical", response=response, keep_paragraphs=2)
    exact_seen = 0
    for part in PARTS:
        rerun = attribute(context, question, model=tiny_lm, method="hierarchical", response=response,
                          response_span=part, keep_paragraphs=2)
        stored = full.for_response_span(*part)
        for a, b in zip(stored.scores("paragraph"), rerun.scores("paragraph"), strict=True):
            assert a == pytest.approx(b, abs=TOL)  # paragraph scores are always exact
        same_kept = sorted(rerun.extra["kept_paragraphs"]) == sorted(full.extra["kept_paragraphs"])
        assert stored.extra["span_exact"] == same_kept
        if same_kept:
            exact_seen += 1
            assert_same_scores(stored, rerun)
        else:
            assert "re-run" in stored.extra["span_note"]
    assert exact_seen >= 1


def test_hierarchical_with_every_paragraph_kept_is_always_exact(tiny_lm, context, question, response):
    n = len(segment(context).paragraphs)
    full = attribute(context, question, model=tiny_lm, method="hierarchical", response=response, keep_paragraphs=n)
    for part in PARTS[:3]:
        rerun = attribute(context, question, model=tiny_lm, method="hierarchical", response=response,
                          response_span=part, keep_paragraphs=n)
        assert_same_scores(full.for_response_span(*part), rerun)


def test_span_from_stored_values_equals_a_proxy_rerun_across_tokenizers(tiny_lm, tiny_lm_b, context, question):
    response = Response(RESPONSE_TEXT)  # text: each model encodes it with its own tokenizer
    full = attribute(context, question, model=tiny_lm, method="proxy", proxy_model=tiny_lm_b, response=response)
    target_axis, proxy_axis = full.per_token.axes[full.model], full.per_token.axes[full.proxy_model]
    assert target_axis.offsets != proxy_axis.offsets  # really another tokenizer
    assert all(v.model == full.proxy_model for v in full.per_token.sentences)  # proxy tokens for proxy spans
    for part in PARTS:
        rerun = attribute(context, question, model=tiny_lm, method="proxy", proxy_model=tiny_lm_b,
                          response=response, response_span=part)
        stored = full.for_response_span(*part)
        assert_same_scores(stored, rerun)
        assert stored.extra["proxy_log_prob_full"] == pytest.approx(rerun.extra["proxy_log_prob_full"], abs=TOL)


def test_per_token_deltas_sum_to_each_span_score(tiny_lm, context, question, response):
    result = attribute(context, question, model=tiny_lm, method="loo", response=response)
    pt = result.per_token
    axis = pt.axes[result.model]
    assert len(axis) == len(response.token_ids)
    assert "".join(axis.labels[:-1]) == RESPONSE_TEXT and axis.labels[-1] == "<|im_end|>"
    assert axis.offsets[-1] == (len(RESPONSE_TEXT), len(RESPONSE_TEXT))  # end of turn: empty, at the end
    for span, values in zip((*result.sentences, *result.paragraphs), (*pt.sentences, *pt.paragraphs), strict=True):
        assert values.model == result.model and len(values.values) == len(axis)
        assert math.fsum(values.values) == pytest.approx(span.score, abs=TOL)
    assert math.fsum(pt.full.values) == pytest.approx(result.log_prob_full, abs=TOL)


def test_pruning_keeps_target_and_proxy_tokens_but_refuses_spans(tiny_lm, tiny_lm_b, context, question):
    result = attribute(context, question, model=tiny_lm, method="pruning", proxy_model=tiny_lm_b,
                       response=RESPONSE_TEXT, keep_sentences=2)
    pt = result.per_token
    for s, values in zip(result.sentences, pt.sentences, strict=True):
        assert values.model == s.scored_by  # target tokens for target scores, proxy tokens for proxy scores
        assert math.fsum(values.values) == pytest.approx(s.score, abs=TOL)
    with pytest.raises(SpanNeedsRerun, match="pruning mixes proxy and target"):
        result.for_response_span(0, 7)


@pytest.mark.parametrize("method", ["surrogate", "attention"])
def test_baselines_keep_no_per_token_values_and_say_so(tiny_lm, context, question, method):
    params = {"n_ablations": 4} if method == "surrogate" else {}
    result = attribute(context, question, model=tiny_lm, method=method, response=RESPONSE_TEXT, **params)
    assert result.per_token is None
    with pytest.raises(SpanNeedsRerun, match="keeps no per-token values"):
        result.for_response_span(0, 7)


def test_several_ranges_sum_the_union_of_their_tokens(tiny_lm, context, question, response):
    result = attribute(context, question, model=tiny_lm, method="loo", response=response)
    a, b = result.for_response_span(0, 7), result.for_response_span(16, 22)
    both = result.for_response_chars([(0, 7), (16, 22)])
    for x, y, z in zip(a.scores(), b.scores(), both.scores(), strict=True):
        assert z == pytest.approx(x + y, abs=TOL)
    assert both.response_span is None and both.extra["response_ranges"] == [[0, 7], [16, 22]]
    end_only = result.for_response_chars([], include_end=True)
    eot = result.per_token.sentences[0].values[-1]
    assert end_only.sentences[0].score == pytest.approx(eot, abs=1e-6)


def test_bad_span_is_a_clear_error(tiny_lm, context, question, response):
    result = attribute(context, question, model=tiny_lm, method="loo", response=response)
    with pytest.raises(ValueError, match="not inside the response"):
        result.for_response_span(5, 5000)
    with pytest.raises(ValueError, match="not inside the response"):
        result.for_response_span(7, 3)


def test_json_round_trip_keeps_per_token_values_exactly(tiny_lm, context, question, response):
    result = attribute(context, question, model=tiny_lm, method="hierarchical", response=response, keep_paragraphs=1)
    again = AttributionResult.from_json(result.to_json())
    assert again == result
    assert again.for_response_span(0, 7) == result.for_response_span(0, 7)
    d = json.loads(result.to_json())
    assert d["schema_version"] == 3 and d["per_token"]["rule"] == "kept-paragraphs"
    assert set(d["per_token"]["sentences"]) == {"values"}  # only the scored sentences, on their scorer's tokens


def test_version_1_files_load_and_say_spans_need_a_rerun(tiny_lm, context, question, response):
    result = attribute(context, question, model=tiny_lm, method="loo", response=response)
    v1 = json.loads(result.to_json())
    v1.pop("per_token")
    v1["schema_version"] = 1
    old = AttributionResult.from_dict(v1)
    assert old.per_token is None and old.scores() == result.scores()
    with pytest.raises(SpanNeedsRerun, match="schema 1"):
        old.for_response_span(0, 7)


def test_per_token_off_gives_the_same_scores_without_vectors(tiny_lm, context, question, response):
    on = attribute(context, question, model=tiny_lm, method="loo", response=response)
    off = attribute(context, question, model=tiny_lm, method="loo", response=response, per_token=False)
    assert off.per_token is None and off.scores() == on.scores()


WORDS = "the lighthouse keeper wrote that the lamp was first lit in March after the storm"


def _big_result(n_sentences=20, n_tokens=60, n_paragraphs=5):
    """A realistic 20-sentence, 60-token result (fake scores and vectors, real types)."""
    import random

    from attribot_core.pertoken import PerToken, TokenAxis, TokenValues

    rng = random.Random(0)
    words = WORDS.split(" ")
    sentences = [" ".join(rng.choice(words) for _ in range(12)).capitalize() + "." for _ in range(n_sentences)]
    per_par = n_sentences // n_paragraphs
    paras = [" ".join(sentences[i * per_par:(i + 1) * per_par]) for i in range(n_paragraphs)]
    context = "\n\n".join(paras)
    response = " ".join(rng.choice(words) for _ in range(n_tokens - 1))
    doc = segment(context)
    assert len(doc.sentences) == n_sentences
    spans_s = tuple(SpanScore(s.index, s.start, s.end, s.text, rng.gauss(0, 1), "m", s.parent) for s in doc.sentences)
    spans_p = tuple(SpanScore(p.index, p.start, p.end, p.text, rng.gauss(0, 1), "m") for p in doc.paragraphs)
    offsets, pos = [], 0
    for w in response.split(" "):
        a = response.index(w, pos)
        offsets.append((pos, a + len(w)))
        pos = a + len(w)
    offsets.append((len(response), len(response)))
    axis = TokenAxis("m", tuple(offsets), response, tuple(response[a:b] or "<|im_end|>" for a, b in offsets))
    vec = lambda: TokenValues.of("m", [rng.gauss(0, 0.3) for _ in offsets])  # noqa: E731
    pt = PerToken({"m": axis}, tuple(vec() for _ in spans_s), tuple(vec() for _ in spans_p), vec(), "sum")
    result = AttributionResult(context, "Who lit the lamp?", response, "loo", "m", {"paragraphs": True}, -20.0,
                               spans_p, spans_s, {"m": 26}, {"total_s": 12.0}, response_tokens=len(offsets),
                               template="Answer:\n{context}\n{question}", per_token=pt)
    assert len(axis) == n_tokens
    return result


def test_v2_json_of_a_20_sentence_60_token_result_is_at_most_twice_v1():
    from dataclasses import replace

    result = _big_result()
    v2 = len(result.to_json())
    v1 = len(replace(result, per_token=None, schema_version=1).to_json())
    assert v2 <= 2 * v1, (v1, v2)
    assert AttributionResult.from_json(result.to_json()) == result


def _pack(values, dtype="<f4"):
    import numpy as np

    from attribot_core.pertoken import _pack

    return _pack(np.asarray(values, dtype=dtype))


@pytest.mark.parametrize("corrupt, message", [
    (lambda d: d["per_token"].update(sentences=[1, 2]), "must be an object with the packed values"),
    (lambda d: d["per_token"]["sentences"].update(values=_pack([0.5] * 60)), "holds 60 numbers; its 20 span"),
    (lambda d: d["per_token"]["sentences"].update(values="not base64!"), "not valid packed data"),
    (lambda d: d["per_token"]["sentences"].update(values=_pack([float("nan")] * 1200)), "non-finite"),
    (lambda d: d["per_token"]["sentences"].update(by={"0": "other"}), "not a model of per_token.models"),
    (lambda d: d["per_token"]["sentences"].update(spans=[0, 0]), "distinct sentence indices"),
    (lambda d: d["per_token"]["models"]["m"].update(ends=_pack([5000] * 60, "<i4")), "outside its text"),
    (lambda d: d["per_token"]["full"].update(model="other"), "per_token.full must be null"),
    (lambda d: d["per_token"].update(rule="magic"), "per_token.rule"),
    (lambda d: d.update(per_token=[1, 2]), "per_token must be an object"),
])
def test_corrupt_per_token_data_is_a_clear_error(corrupt, message):
    d = json.loads(_big_result().to_json())
    corrupt(d)
    with pytest.raises(ValueError, match=message):
        AttributionResult.from_dict(d)


class SumsOnlyScorer:
    """A scorer with no per-token support (as a third-party backend might be)."""

    def __init__(self, inner):
        self.inner, self.model_id, self.stats = inner, inner.model_id, inner.stats

    def check_fits(self, context):
        self.inner.check_fits(context)

    def log_prob(self, context):
        return self.inner.log_prob(context)

    def log_probs(self, base, variants, progress=None):
        return self.inner.log_probs(base, variants, progress)


def test_loo_round_gives_plain_floats_for_scorers_without_token_support(tiny_lm, context, question, response):
    from attribot_core import LocalScorer

    doc = segment(context)
    scorer = LocalScorer(tiny_lm, question, response)
    base_t, with_t = loo_round(scorer, doc, [[0], [1]])
    base_p, plain = loo_round(SumsOnlyScorer(scorer), doc, [[0], [1]])
    assert base_t == base_p and with_t == plain  # same numbers either way
    assert base_t.tokens is not None and not hasattr(plain[0], "tokens")
    out = MethodOutput.empty(doc, base_t)
    out.set_sentences([0, 1], with_t, scorer.model_id)
    assert out.sentence_tokens[0] is with_t[0].tokens and out.full_tokens is base_t.tokens
    assert type(out.sentence_scores[0]) is float and type(out.log_prob_full) is float


@pytest.mark.slow
def test_span_from_stored_values_equals_a_rerun_on_smollm2(smollm2_lm, context, question):
    from attribot_core import generate_response

    response = generate_response(smollm2_lm, context, question, max_new_tokens=24)
    n = len(response.text)
    parts = [(0, max(1, n // 3)), (n // 3, n), (n // 4, n // 2 + 1)]
    for method, params in (("loo", {}), ("hierarchical", {"keep_paragraphs": 2})):
        full = attribute(context, question, model=smollm2_lm, method=method, response=response, **params)
        for part in parts:
            rerun = attribute(context, question, model=smollm2_lm, method=method, response=response,
                              response_span=part, **params)
            stored = full.for_response_span(*part)
            if stored.extra["span_exact"]:
                assert_same_scores(stored, rerun)
            else:
                assert sorted(rerun.extra["kept_paragraphs"]) != sorted(full.extra["kept_paragraphs"])
    proxy = attribute(context, question, model=smollm2_lm, method="proxy", proxy_model=smollm2_lm, response=response)
    for part in parts:
        rerun = attribute(context, question, model=smollm2_lm, method="proxy", proxy_model=smollm2_lm,
                          response=response, response_span=part)
        assert_same_scores(proxy.for_response_span(*part), rerun)


def test_a_file_written_by_the_schema_1_code_loads_and_round_trips():
    """``tests/data/result_v1_hierarchical.json`` was written by the engine before schema 2 (commit 93dd570)."""
    from pathlib import Path

    text = (Path(__file__).parent / "data" / "result_v1_hierarchical.json").read_text(encoding="utf-8")
    old = AttributionResult.from_json(text)
    assert old.schema_version == 1 and old.per_token is None and old.method == "hierarchical"
    assert old.top_k(1)[0].text == "The lamp was first lit on 3 March 1874."
    assert AttributionResult.from_json(old.to_json()) == old
    with pytest.raises(SpanNeedsRerun, match="schema 1"):
        old.for_response_span(0, 8)
    assert old.why_no_parts().startswith("This result cannot explain a part")
