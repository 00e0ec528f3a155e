"""Attention-mass features of one forward pass: per layer and head, how much the response attends to each span.

The learned estimator (:mod:`attribot_core.estimator`) predicts a span's LOO score from these, as AT2
(MadryLab, 2025) does. One teacher-forced pass over prompt + response runs on the model's own fast
attention (SDPA, or the scorer's ``attribot_sdpa``); ``output_attentions`` would force the slow eager
path for the whole sequence. Instead, each attention module's query and key projections are captured
with hooks, and the scores are recomputed for the response rows only: rotary embedding applied with
the module's own positions, key heads shared by their query group (GQA), scaled, softmaxed over the
causal row. That is ``heads x response x sequence`` work per layer, a sliver of the pass.

Query rows are the positions that *predict* the response tokens (prompt length - 1 + t for response
token t), the rows whose attention decides ``log p(response)``. A span's feature for response token
t, layer l, head h is the probability mass row t puts on the span's tokens (a fraction in [0, 1]).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["AttentionFeatures", "attention_features", "model_shape"]


@dataclass(frozen=True)
class AttentionFeatures:
    """What one pass gives: attention mass per response token, span and head, and the response's log-probs.

    ``per_token``: (response tokens, spans, layers * heads), layer-major (feature ``l * heads + h``).
    ``token_log_probs``: log p(response token | full prompt, earlier tokens), nats, one per response token.
    """

    per_token: np.ndarray
    token_log_probs: np.ndarray
    layers: int
    heads: int
    seconds: float

    def summed(self, mask: Sequence[bool] | None = None) -> np.ndarray:
        """(spans, layers * heads): mass summed over the (masked) response tokens, as LOO sums its nats."""
        rows = self.per_token if mask is None else self.per_token[np.asarray(mask, dtype=bool)]
        return rows.sum(axis=0)

    def averaged(self, mask: Sequence[bool] | None = None) -> np.ndarray:
        """(spans, layers * heads): mass averaged over the (masked) response tokens: what the estimator weighs.

        A share of one row's attention, so a long and a short response give features on one scale
        (summed mass grows with the response's length, which says nothing about which sentence matters).
        """
        rows = self.per_token if mask is None else self.per_token[np.asarray(mask, dtype=bool)]
        return rows.sum(axis=0) / max(len(rows), 1)


def model_shape(model) -> tuple[int, int]:
    """(layers, query heads) of a transformers causal LM: the shape an estimator's weights must have."""
    cfg = model.config
    cfg = getattr(cfg, "text_config", None) or cfg
    return int(cfg.num_hidden_layers), int(cfg.num_attention_heads)


def _attention_modules(model) -> list:
    """The self-attention modules in layer order (each has q_proj, k_proj, head_dim and scaling)."""
    mods = [m for name, m in model.named_modules()
            if name.endswith("self_attn") and hasattr(m, "q_proj") and hasattr(m, "k_proj")]
    if not mods:
        raise NotImplementedError(f"No self-attention modules with q/k projections in {type(model).__name__}.")
    return mods


def _rotary(module):
    """The rotary function of the module's own architecture (``apply_rotary_pos_emb(q, k, cos, sin)``)."""
    fn = getattr(sys.modules[type(module).__module__], "apply_rotary_pos_emb", None)
    if fn is None:
        raise NotImplementedError(f"{type(module).__name__}: no apply_rotary_pos_emb next to it; cannot recompute "
                                  "attention scores.")
    return fn


def attention_features(lm, prompt_ids: Sequence[int], response_ids: Sequence[int], owners: Sequence[int],
                       n_spans: int) -> AttentionFeatures:
    """One forward pass over ``prompt_ids + response_ids[:-1]``; attention mass of each response row per span.

    ``owners[i]`` is the span (0 .. n_spans - 1) prompt token ``i`` belongs to, or -1 (template,
    question). Response tokens belong to no span. ``lm`` is a :class:`~attribot_core.models.LoadedModel`.
    """
    import torch

    model = lm.model
    layers, heads = model_shape(model)
    modules = _attention_modules(model)
    n_prompt = len(prompt_ids)
    ids = list(prompt_ids) + list(response_ids)[:-1]
    rows = torch.arange(n_prompt - 1, n_prompt - 1 + len(response_ids))  # the rows predicting the response
    owner = torch.full((len(ids),), -1, dtype=torch.long)
    owner[:n_prompt] = torch.as_tensor(list(owners), dtype=torch.long)
    causal = torch.arange(len(ids))[None, :] <= rows[:, None]  # (rows, keys)
    out = torch.zeros(len(response_ids), n_spans + 1, layers * heads)  # span 0 collects "no span"
    captured: dict[str, torch.Tensor] = {}
    done: list[int] = []
    rotary = _rotary(modules[0])

    def grab(key: str):
        def hook(_module, _args, output):
            captured[key] = output
        return hook

    def grab_positions(_module, _args, kwargs):
        captured["positions"] = kwargs.get("position_embeddings")

    def compute(module, _args, _output):
        layer = len(done)
        q, k = captured.pop("q"), captured.pop("k")
        d = module.head_dim
        q = q[:, rows.to(q.device)].view(1, len(rows), -1, d).transpose(1, 2)  # (1, H, R, d)
        k = k.view(1, k.shape[1], -1, d).transpose(1, 2)  # (1, Hkv, T, d)
        if hasattr(module, "q_norm"):  # architectures that normalise q/k per head (Qwen3)
            q, k = module.q_norm(q), module.k_norm(k)
        cos, sin = captured.pop("positions")
        q, _ = rotary(q, q, cos[:, rows.to(cos.device)], sin[:, rows.to(sin.device)])  # the rows' own positions
        _, k = rotary(k, k, cos, sin)
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)  # GQA: each query head's key head
        scores = (q.float() @ k.float().transpose(-1, -2)) * module.scaling  # (1, H, R, T)
        probs = scores.masked_fill(~causal.to(scores.device), float("-inf")).softmax(dim=-1)[0].cpu()
        mass = torch.zeros(heads, len(rows), n_spans + 1).index_add_(2, owner + 1, probs)
        out[:, :, layer * heads:(layer + 1) * heads] = mass.permute(1, 2, 0)
        done.append(layer)

    handles = []
    for m in modules:
        handles += [m.q_proj.register_forward_hook(grab("q")), m.k_proj.register_forward_hook(grab("k")),
                    m.register_forward_pre_hook(grab_positions, with_kwargs=True),
                    m.register_forward_hook(compute)]
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids], device=lm.device), use_cache=False,
                           logits_to_keep=len(response_ids)).logits[0, -len(response_ids):].float()
    finally:
        for h in handles:
            h.remove()
    if len(done) != layers:
        raise RuntimeError(f"Captured {len(done)} attention layers of {layers}.")
    target = torch.tensor(list(response_ids), device=logits.device)[:, None]
    token_lp = torch.log_softmax(logits, dim=-1).gather(1, target)[:, 0].cpu().numpy()
    return AttentionFeatures(out[:, 1:].numpy().astype(np.float64), token_lp.astype(np.float64), layers, heads,
                             time.perf_counter() - start)
