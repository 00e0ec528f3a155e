"""Batched exact ablations: several ablations per forward pass equal one at a time.

Tolerance: 1e-4 nats per response token (fp32; only matrix shapes and padding differ, observed
~1e-6). Checked on tiny llama- and qwen2-shaped models, with and without the prefix cache, in both
layouts: suffixes packed into one sequence (a CPU with full attention) and padded rows (elsewhere).
"""

import pytest
import torch

from attribot_core import Response, attribute, segment
from attribot_core.scoring import CPU_BATCH_SIZE, LocalScorer, check_batch_size

TOL = 1e-4


@pytest.fixture(params=["llama", "qwen2"])
def lm(request, tiny_lm, tiny_qwen_lm):
    return {"llama": tiny_lm, "qwen2": tiny_qwen_lm}[request.param]


def ablations(context):
    """Variants of very different lengths and cut points: one sentence, a paragraph, several spans."""
    doc = segment(context)
    n = len(doc.sentences)
    return doc.text, [
        doc.without([0]), doc.without([n - 1]), doc.without_paragraphs([1]), doc.without([2, 5]),
        doc.without(range(1, n)), doc.without([3]), doc.without_paragraphs([0, 2]), doc.without([n - 2]),
    ]


def generated(lm):
    ids = lm.tokenizer("Charles Babbage worked with her.", add_special_tokens=False)["input_ids"]
    return Response("Charles Babbage worked with her.", tuple(ids + [lm.tokenizer.eos_token_id]), lm.tokenizer_id)


def scored(lm, question, response, base, variants, packed: bool = True, **kw):
    """``packed=False`` forces padded rows (the GPU layout) where a CPU would pack suffixes."""
    scorer = LocalScorer(lm, question, response, **kw)
    scorer._prefix_in_place &= packed
    return scorer, scorer.token_log_probs(base, variants)


def assert_tokens_close(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert len(x) == len(y)
        assert max(abs(p - q) for p, q in zip(x, y, strict=True)) < TOL


@pytest.mark.parametrize("batch_size", [2, 3, 8])
@pytest.mark.parametrize(("reuse_prefix", "packed"), [(True, True), (True, False), (False, False)])
def test_batched_token_log_probs_equal_one_at_a_time(lm, context, question, batch_size, reuse_prefix, packed):
    base, variants = ablations(context)
    _, (base1, one) = scored(lm, question, generated(lm), base, variants, reuse_prefix=reuse_prefix)
    scorer, (base_b, batched) = scored(lm, question, generated(lm), base, variants, packed=packed,
                                       reuse_prefix=reuse_prefix, batch_size=batch_size)
    assert_tokens_close([base1, *one], [base_b, *batched])
    assert scorer.stats.model_calls == 1 + -(-len(variants) // batch_size)
    assert scorer.stats.forward_passes == 1 + len(variants)  # passes count ablations, however batched


@pytest.mark.parametrize("packed", [True, False])
def test_batched_cached_scores_equal_naive_scores(lm, context, question, packed):
    base, variants = ablations(context)
    _, (_, naive) = scored(lm, question, generated(lm), base, variants, reuse_prefix=False)
    scorer, (_, batched) = scored(lm, question, generated(lm), base, variants, packed=packed, batch_size=4)
    assert_tokens_close(naive, batched)
    assert scorer._prefix_in_place == packed  # the layout under test is the one that ran


def test_packed_suffixes_see_only_their_own_cut_of_the_prefix(lm, context, question, monkeypatch):
    """One packed pass: every segment attends to the cached prefix up to its own cut, never further."""
    from attribot_core import prefix_attention

    seen = []
    real = prefix_attention.attend_prefix_and_suffix

    def spy(query, prefix_key, *rest):
        seen.append((query.shape[2], prefix_key.shape[2]))
        return real(query, prefix_key, *rest)

    monkeypatch.setattr(prefix_attention, "attend_prefix_and_suffix", spy)
    base, variants = ablations(context)
    scorer = LocalScorer(lm, question, generated(lm), batch_size=len(variants))
    scorer.log_prob(base)
    plans = [scorer._plan(v) for v in variants]
    seen.clear()
    scorer.token_log_probs(base, variants)
    layers = lm.model.config.num_hidden_layers
    assert scorer.stats.model_calls == 2 and len(seen) == layers * len(variants)
    assert seen[: len(variants)] == [(len(ids) - reuse, reuse) for ids, reuse in plans]


def test_batched_response_span_sums_the_same_tokens(lm, context, question):
    base, variants = ablations(context)
    span = (8, 20)  # "Babbage work..."
    one = LocalScorer(lm, question, generated(lm), response_chars=span).log_probs(base, variants)
    batched = LocalScorer(lm, question, generated(lm), response_chars=span, batch_size=3).log_probs(base, variants)
    assert batched[0] == pytest.approx(one[0], abs=TOL)
    assert batched[1] == pytest.approx(one[1], abs=TOL)


def test_batched_external_text_response(lm, context, question):
    base, variants = ablations(context)
    text = Response("She worked with Charles Babbage, in London.")
    _, (_, one) = scored(lm, question, text, base, variants)
    _, (_, batched) = scored(lm, question, text, base, variants, batch_size=5)
    assert_tokens_close(one, batched)


def test_batched_cross_tokenizer_proxy_equals_unbatched(tiny_lm, tiny_lm_b, context, question):
    """The proxy re-encodes the target's response with its own tokenizer; batching changes nothing."""
    response = generated(tiny_lm)
    one = attribute(context, question, model=tiny_lm, proxy_model=tiny_lm_b, method="proxy", response=response)
    batched = attribute(context, question, model=tiny_lm, proxy_model=tiny_lm_b, method="proxy",
                        response=response, batch_size=4)
    assert batched.scores() == pytest.approx(one.scores(), abs=TOL)
    assert batched.scores("paragraph") == pytest.approx(one.scores("paragraph"), abs=TOL)
    assert batched.extra["batch_size"] == 4


@pytest.mark.parametrize("method", ["loo", "loo-naive", "hierarchical"])
def test_attribute_batch_size_leaves_scores_unchanged(tiny_qwen_lm, context, question, method):
    response = generated(tiny_qwen_lm)
    one = attribute(context, question, model=tiny_qwen_lm, method=method, response=response, batch_size=1)
    batched = attribute(context, question, model=tiny_qwen_lm, method=method, response=response, batch_size=3)
    assert [s is None for s in batched.scores()] == [s is None for s in one.scores()]
    for a, b in zip(one.scores(), batched.scores(), strict=True):
        assert a is None or a == pytest.approx(b, abs=TOL)
    assert batched.total_forward_passes == one.total_forward_passes
    assert batched.extra["model_calls"] < one.extra["model_calls"]


def test_repeated_and_memoised_variants_are_scored_once(tiny_lm, context, question):
    base, variants = ablations(context)
    scorer = LocalScorer(tiny_lm, question, generated(tiny_lm), batch_size=4)
    _, first = scorer.token_log_probs(base, variants[:3] + variants[:3])
    assert first[:3] == first[3:]
    passes = scorer.stats.forward_passes
    scorer.token_log_probs(base, variants[:3])
    assert scorer.stats.forward_passes == passes


def test_progress_counts_every_variant(tiny_lm, context, question):
    base, variants = ablations(context)
    calls = []
    LocalScorer(tiny_lm, question, generated(tiny_lm), batch_size=3).token_log_probs(
        base, variants, lambda done, total, what: calls.append((done, total)))
    assert calls == [(0, 8), (3, 8), (6, 8), (8, 8)]


def test_auto_batch_size_on_cpu_is_the_measured_default(tiny_lm, question):
    scorer = LocalScorer(tiny_lm, question, generated(tiny_lm), batch_size="auto")
    assert scorer.rows_per_pass() == CPU_BATCH_SIZE


def test_auto_halves_rows_on_out_of_memory(tiny_lm, context, question, monkeypatch):
    """A device that runs out of memory above two rows: "auto" halves until it fits, scores unchanged."""
    base, variants = ablations(context)
    _, (_, expected) = scored(tiny_lm, question, generated(tiny_lm), base, variants)
    scorer = LocalScorer(tiny_lm, question, generated(tiny_lm), batch_size="auto")
    scorer._auto_rows = 8
    real = scorer._forward_batch

    def limited(plans):
        if len(plans) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(plans)

    monkeypatch.setattr(scorer, "_forward_batch", limited)
    _, got = scorer.token_log_probs(base, variants)
    assert scorer._auto_rows == 2
    assert_tokens_close(expected, got)


def test_fixed_batch_size_does_not_swallow_out_of_memory(tiny_lm, context, question, monkeypatch):
    base, variants = ablations(context)
    scorer = LocalScorer(tiny_lm, question, generated(tiny_lm), batch_size=4)

    def oom(plans):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(scorer, "_forward_batch", oom)
    with pytest.raises(torch.OutOfMemoryError):
        scorer.token_log_probs(base, variants)


@pytest.mark.parametrize("bad", [0, -2, "x", "1.5", True, 2.0])
def test_bad_batch_size_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="batch_size must be a positive integer or 'auto'"):
        check_batch_size(bad)


def test_batch_size_accepts_auto_and_digits():
    assert check_batch_size("auto") == "auto" and check_batch_size(" AUTO ") == "auto"
    assert check_batch_size("4") == 4 and check_batch_size(16) == 16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_batched_equals_one_at_a_time(tiny_model_dir, context, question):
    """On a GPU in bf16 (fp32 log-softmax), batching moves scores by bf16 rounding only."""
    from attribot_core import load_model

    lm = load_model(str(tiny_model_dir), device="cuda", dtype="bfloat16")
    base, variants = ablations(context)
    _, (_, one) = scored(lm, question, generated(lm), base, variants)
    _, (_, auto) = scored(lm, question, generated(lm), base, variants, batch_size="auto")
    for x, y in zip(one, auto, strict=True):
        assert max(abs(p - q) for p, q in zip(x, y, strict=True)) < 0.1


def test_cli_batch_size_flag(tiny_model_dir, tmp_path, capsys):
    import json

    from attribot_core.cli import main
    from tests.conftest import CONTEXT

    ctx, out = tmp_path / "c.txt", tmp_path / "r.json"
    ctx.write_text(CONTEXT, encoding="utf-8")
    args = ["attribute", "--context", str(ctx), "--question", "Who?", "--model", str(tiny_model_dir),
            "--response", "Babbage."]
    assert main([*args, "--batch-size", "4", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["extra"]["batch_size"] == 4
    assert main([*args, "--batch-size", "auto"]) == 0
    capsys.readouterr()
    assert main([*args, "--batch-size", "many"]) == 2
    assert "batch_size must be a positive integer or 'auto'" in capsys.readouterr().err


def test_a_later_base_reuses_the_earlier_base_and_scores_the_same(lm, context, question):
    """A second round's base (the context minus dropped spans) starts from the first base's cache."""
    doc = segment(context)
    base2 = doc.without([len(doc.sentences) - 1])
    variants = [doc.without([len(doc.sentences) - 1, 0]), doc.without([len(doc.sentences) - 1, 3])]
    scorer = LocalScorer(lm, question, generated(lm))
    scorer.token_log_probs(context, [])
    reused = scorer.stats.tokens_reused
    got = scorer.token_log_probs(base2, variants)
    assert scorer.stats.tokens_reused - reused > len(scorer.prompt_ids(base2)) // 2
    fresh = LocalScorer(lm, question, generated(lm), reuse_prefix=False).token_log_probs(base2, variants)
    assert_tokens_close([got[0], *got[1]], [fresh[0], *fresh[1]])
