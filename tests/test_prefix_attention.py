"""Split-at-the-cache attention equals SDPA with the explicit causal mask it replaces."""

import pytest
import torch
import torch.nn.functional as F

from attribot_core import Response, prefix_attention
from attribot_core.scoring import LocalScorer
from tests.conftest import CONTEXT, QUESTION


@pytest.mark.parametrize(("hq", "hkv"), [(4, 4), (9, 3), (14, 2)])
@pytest.mark.parametrize(("r", "s"), [(1, 5), (37, 20), (120, 1)])
def test_split_prefix_attention_equals_masked_sdpa(hq, hkv, r, s):
    torch.manual_seed(0)
    q, k, v = torch.randn(1, hq, s, 16), torch.randn(1, hkv, r + s, 16), torch.randn(1, hkv, r + s, 16)
    mask = torch.ones(s, r + s, dtype=torch.bool)
    mask[:, r:] = torch.ones(s, s, dtype=torch.bool).tril()
    rep = hq // hkv
    ref = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1),
                                         attn_mask=mask, scale=0.25)
    got = prefix_attention.split_prefix_attention(q, k, v, 0.25)
    assert (got - ref).abs().max() < 1e-5


@pytest.fixture(params=["llama", "qwen2"])
def lm(request, tiny_lm, tiny_qwen_lm):
    return {"llama": tiny_lm, "qwen2": tiny_qwen_lm}[request.param]


def test_ablation_passes_read_the_base_prefix_in_place_and_match_naive(lm, monkeypatch):
    """An ablation's pass gets the base's keys/values as they are (no cache is built, nothing copied)."""
    calls = []
    real = prefix_attention.attend_prefix_and_suffix

    def counted(query, prefix_key, *rest):
        calls.append(prefix_key.shape[2])
        return real(query, prefix_key, *rest)

    monkeypatch.setattr(prefix_attention, "attend_prefix_and_suffix", counted)
    response = Response("Charles Babbage worked with her.")
    cached = LocalScorer(lm, QUESTION, response)
    assert cached._prefix_in_place
    naive = LocalScorer(lm, QUESTION, response, reuse_prefix=False)
    variants = [CONTEXT.replace("She was the daughter of Lord Byron.", ""), CONTEXT[: len(CONTEXT) // 2]]
    base_tok = cached.token_log_probs(CONTEXT, [])[0]
    anchor = cached._anchor[2]
    before = [(layer.keys.data_ptr(), layer.keys.shape) for layer in anchor.layers]
    got = cached.token_log_probs(CONTEXT, variants)
    layers = lm.model.config.num_hidden_layers
    assert len(calls) == 2 * layers and 0 < calls[0] < len(cached._anchor[1])  # two passes, every layer
    assert [(layer.keys.data_ptr(), layer.keys.shape) for layer in anchor.layers] == before  # untouched
    calls.clear()
    want = naive.token_log_probs(CONTEXT, variants)
    assert not calls  # no cache, no split
    assert got[0] == base_tok
    for a, b in zip([got[0], *got[1]], [want[0], *want[1]], strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-4


@pytest.mark.parametrize("batch_size", [1, 4])
def test_no_ablation_copies_the_base_cache(lm, monkeypatch, batch_size):
    """Every ablation's attention reads views of the base pass's keys/values (same storage), one pass at a
    time or packed: at 30k tokens a copy per ablation would be the cache's size again per pass."""
    seen = []
    real = prefix_attention.attend_prefix_and_suffix

    def spy(query, prefix_key, prefix_value, *rest):
        seen.append((prefix_key.untyped_storage().data_ptr(), prefix_value.untyped_storage().data_ptr()))
        return real(query, prefix_key, prefix_value, *rest)

    monkeypatch.setattr(prefix_attention, "attend_prefix_and_suffix", spy)
    scorer = LocalScorer(lm, QUESTION, Response("Charles Babbage worked with her."), batch_size=batch_size)
    scorer.log_prob(CONTEXT)
    anchor = {(layer.keys.untyped_storage().data_ptr(), layer.values.untyped_storage().data_ptr())
              for layer in scorer._anchor[2].layers}
    sentences = [s for s in CONTEXT.replace("\n\n", " ").split(". ") if len(s) > 20][1:5]
    scorer.log_probs(CONTEXT, [CONTEXT.replace(s, "", 1) for s in sentences])
    assert scorer.stats.tokens_reused > 0 and len(seen) >= lm.model.config.num_hidden_layers
    assert set(seen) <= anchor  # nothing but the base's own storage


def test_a_new_base_still_extends_the_cache_with_the_split(tiny_lm, monkeypatch):
    """The base of a later round becomes the anchor: it keeps a cache, and attends split at it."""
    calls = []
    real = prefix_attention.split_prefix_attention
    monkeypatch.setattr(prefix_attention, "split_prefix_attention", lambda *a: (calls.append(1), real(*a))[1])
    scorer = LocalScorer(tiny_lm, QUESTION, Response("Charles Babbage worked with her."))
    scorer.log_prob(CONTEXT)
    shorter = CONTEXT.replace("She was the daughter of Lord Byron.", "")
    scorer.log_probs(shorter, [])
    assert scorer._anchor[0] == shorter and len(calls) == tiny_lm.model.config.num_hidden_layers
    fresh = LocalScorer(tiny_lm, QUESTION, Response("Charles Babbage worked with her."), reuse_prefix=False)
    assert abs(scorer.log_prob(shorter) - fresh.log_prob(shorter)) < 1e-4


def test_sliding_window_models_keep_the_cache_path():
    from transformers import Qwen2Config

    class Model:
        config = Qwen2Config(num_hidden_layers=2, use_sliding_window=True, sliding_window=8, max_window_layers=1)

    assert not prefix_attention.prefix_passes_work(Model())
    Model.config = Qwen2Config(num_hidden_layers=2)
    assert prefix_attention.prefix_passes_work(Model())


def test_the_registered_attention_is_sdpa_without_the_flag(tiny_lm):
    assert prefix_attention.enable(tiny_lm.model)
    assert tiny_lm.model.config._attn_implementation == prefix_attention.NAME
    ids = torch.tensor([tiny_lm.tokenizer("Ada Lovelace was born in London.")["input_ids"]])
    with torch.inference_mode():
        ours = tiny_lm.model(ids).logits
        tiny_lm.model.set_attn_implementation("sdpa")
        try:
            theirs = tiny_lm.model(ids).logits
        finally:
            tiny_lm.model.set_attn_implementation(prefix_attention.NAME)
    assert torch.equal(ours, theirs)
