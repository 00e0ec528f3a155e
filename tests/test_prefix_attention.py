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


def test_cached_passes_use_the_split_and_match_naive(tiny_lm, monkeypatch):
    calls = []
    real = prefix_attention.split_prefix_attention

    def counted(*args):
        calls.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(prefix_attention, "split_prefix_attention", counted)
    response = Response("Charles Babbage worked with her.")
    cached = LocalScorer(tiny_lm, QUESTION, response)
    naive = LocalScorer(tiny_lm, QUESTION, response, reuse_prefix=False)
    variants = [CONTEXT.replace("She was the daughter of Lord Byron.", ""), CONTEXT[: len(CONTEXT) // 2]]
    got = cached.token_log_probs(CONTEXT, variants)
    assert len(calls) == 2 * tiny_lm.model.config.num_hidden_layers  # two cached passes, every layer
    calls.clear()
    want = naive.token_log_probs(CONTEXT, variants)
    assert not calls  # no cache, no split
    for a, b in zip([got[0], *got[1]], [want[0], *want[1]], strict=True):
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-4


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
