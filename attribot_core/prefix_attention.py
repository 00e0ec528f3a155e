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

An ablation's pass does not even need a cache: called with ``attribot_prefix=Prefix(...)`` (and no
``past_key_values``), every layer reads the base's cached keys/values in place, as views up to the
cut, so nothing is copied or concatenated. A :class:`Prefix` with ``segments`` packs several
ablations into one sequence, each seeing the prefix up to its own cut and itself only.

It is an attention function registered with transformers under ``attribot_sdpa``, which behaves
exactly like ``sdpa`` unless a forward pass is called with ``attribot_split_prefix=True`` or
``attribot_prefix=``; it is used on CPUs, where PyTorch's flash kernel returns the log-sum-exp.
Elsewhere nothing changes.
"""

from __future__ import annotations

__all__ = ["NAME", "Prefix", "attend_prefix_and_suffix", "enable", "prefix_passes_work", "split_prefix_attention"]

NAME = "attribot_sdpa"
_registered = False


def split_prefix_attention(query, key, value, scale: float | None):
    """Causal attention of ``S`` new queries over ``R`` cached keys + ``S`` new keys; returns (B, H, S, D).

    ``query`` is (B, Hq, S, D), ``key``/``value`` (B, Hkv, R + S, D) with Hq a multiple of Hkv.
    """
    r = key.shape[2] - query.shape[2]
    return attend_prefix_and_suffix(query, key[:, :, :r], value[:, :, :r], key[:, :, r:], value[:, :, r:], scale)


def attend_prefix_and_suffix(query, prefix_key, prefix_value, key, value, scale: float | None):
    """The same with the prefix's keys/values apart from the new ones: nothing is concatenated.

    ``prefix_key``/``prefix_value`` (B, Hkv, R, D) may be views of the base pass's cache.
    """
    import torch

    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    b, hq, s, d = query.shape
    rep = hq // prefix_key.shape[1]
    if prefix_key.shape[2] == 0:  # nothing cached before the cut: plain causal attention
        if rep > 1:
            key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
        return flash(query.contiguous(), key.contiguous(), value.contiguous(), is_causal=True, scale=scale)[0]
    grouped = query.reshape(b, prefix_key.shape[1], rep * s, d)  # heads of a group share keys: stack them
    o1, lse1 = flash(grouped, prefix_key, prefix_value, scale=scale)[:2]
    if rep > 1:
        key, value = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
    o2, lse2 = flash(query, key, value, is_causal=True, scale=scale)[:2]
    # weight of the prefix part: exp(lse1) / (exp(lse1) + exp(lse2)); one fused lerp merges the parts
    weight = torch.sigmoid(lse1.reshape(b, hq, s) - lse2)[..., None]
    return torch.lerp(o2, o1.reshape(b, hq, s, d), weight)


class Prefix:
    """The first ``length`` cached positions of a base pass, handed to a pass that recomputes the rest.

    Passed to the model as ``attribot_prefix=``, with no ``past_key_values``: each layer attends to
    these keys/values where they are, instead of a cache that copies them onto the new ones.

    ``segments`` packs several ablations into one sequence (``(start, length, reuse)`` each, in order):
    segment ``i``'s queries see the first ``reuse`` cached positions and their own segment causally,
    nothing of the other segments. The layers' matrix multiplies then run once over all of them,
    which reads the weights once per pass instead of once per ablation.
    """

    def __init__(self, cache, length: int, segments: list[tuple[int, int, int]] | None = None) -> None:
        self.layers = [(layer.keys[:, :, :length], layer.values[:, :, :length]) for layer in cache.layers]
        self.length = length
        self.segments = segments

    def attend(self, layer: int, query, key, value, scale: float | None):
        """(B, H, S, D) attention output of one layer's new queries (all segments, or the single one)."""
        import torch

        prefix_key, prefix_value = self.layers[layer]
        if self.segments is None:
            return attend_prefix_and_suffix(query, prefix_key, prefix_value, key, value, scale)
        parts = []
        for start, n, reuse in self.segments:
            piece = slice(start, start + n)
            parts.append(attend_prefix_and_suffix(
                query[:, :, piece], prefix_key[:, :, :reuse], prefix_value[:, :, :reuse],
                key[:, :, piece], value[:, :, piece], scale))
        return torch.cat(parts, dim=2)


def prefix_passes_work(model) -> bool:
    """Whether every layer of ``model`` attends to all earlier positions (no sliding window), so that a
    pass may take a :class:`Prefix` instead of a cache."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    kinds = set(getattr(config, "layer_types", None) or ["full_attention"])
    return kinds == {"full_attention"} and not getattr(config, "use_sliding_window", False)


def _attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    prefix = kwargs.pop("attribot_prefix", None)
    if prefix is not None:
        if kwargs.get("sliding_window") is not None or query.shape[0] != 1 or dropout:
            raise ValueError("attribot_prefix needs one row, full attention and no dropout.")
        return prefix.attend(module.layer_idx, query, key, value, scaling).transpose(1, 2).contiguous(), None
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
