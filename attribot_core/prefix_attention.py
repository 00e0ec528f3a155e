"""Attention for a cached pass, split at the cache: all of the prefix, then the suffix causally.

An ablated context reuses the base's keys/values for its first ``R`` tokens and recomputes its
``S`` remaining tokens. Every one of those ``S`` queries sees *all* ``R`` cached keys and the new
keys causally. SDPA only has a fast causal path when queries and keys have the same length, so
transformers hands it an explicit (S, R + S) mask instead: the masked half of the suffix block is
computed and thrown away, and the grouped key/value heads are copied to every query head.

Here the two parts run separately, each on a fast path: the prefix part without a mask (the query
heads of a group stacked, so no key/value copy), the suffix part with ``is_causal``. The two partial
softmaxes are merged exactly with their log-sum-exps (the flash-decoding identity):
``out = o1 * w + o2 * (1 - w)`` with ``w = exp(lse1) / (exp(lse1) + exp(lse2)) = sigmoid(lse1 - lse2)``.
Results equal SDPA's to float rounding (~1e-6); tested against it and against naive scoring.

It is an attention function registered with transformers under ``attribot_sdpa``, which behaves
exactly like ``sdpa`` unless a forward pass is called with ``attribot_split_prefix=True``; it is
used on CPUs, where PyTorch's flash kernel returns the log-sum-exp. Elsewhere nothing changes.
"""

from __future__ import annotations

__all__ = ["NAME", "enable", "split_prefix_attention"]

NAME = "attribot_sdpa"
_registered = False


def split_prefix_attention(query, key, value, scale: float | None):
    """Causal attention of ``S`` new queries over ``R`` cached keys + ``S`` new keys; returns (B, H, S, D).

    ``query`` is (B, Hq, S, D), ``key``/``value`` (B, Hkv, R + S, D) with Hq a multiple of Hkv.
    """
    import torch

    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    b, hq, s, d = query.shape
    hkv, r = key.shape[1], key.shape[2] - s
    rep = hq // hkv
    grouped = query.reshape(b, hkv, rep * s, d)  # heads of a group share keys: stack their queries
    o1, lse1 = flash(grouped, key[:, :, :r], value[:, :, :r], scale=scale)[:2]
    k2, v2 = key[:, :, r:], value[:, :, r:]
    if rep > 1:
        k2, v2 = k2.repeat_interleave(rep, dim=1), v2.repeat_interleave(rep, dim=1)
    o2, lse2 = flash(query, k2, v2, is_causal=True, scale=scale)[:2]
    # weight of the prefix part: exp(lse1) / (exp(lse1) + exp(lse2)); one fused lerp merges the parts
    weight = torch.sigmoid(lse1.reshape(b, hq, s) - lse2)[..., None]
    return torch.lerp(o2, o1.reshape(b, hq, s, d), weight)


def _attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    split = kwargs.pop("attribot_split_prefix", False)
    s, total = query.shape[2], key.shape[2]
    if not (split and query.device.type == "cpu" and query.shape[0] == 1 and s < total and not dropout
            and query.shape[1] % key.shape[1] == 0 and kwargs.get("sliding_window") is None):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    out = split_prefix_attention(query, key, value, scaling)
    return out.transpose(1, 2).contiguous(), None


def enable(model) -> bool:
    """Switch ``model`` from ``sdpa`` to ``attribot_sdpa`` (same results; faster cached passes on CPU).

    Returns whether the model now uses it. Models on another attention implementation are left alone.
    """
    global _registered
    config = getattr(model, "config", None)
    impl = getattr(config, "_attn_implementation", None)
    if impl == NAME:
        return True
    if impl != "sdpa":
        return False
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if not _registered:
        AttentionInterface.register(NAME, _attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)
        _registered = True
    try:
        model.set_attn_implementation(NAME)
    except (ValueError, AttributeError, KeyError):
        return False
    return getattr(model.config, "_attn_implementation", None) == NAME
