"""First-order LOO: every span's leave-one-out error predicted from one forward and one backward pass.

Deleting a span from the context takes its tokens away from every attention layer, which is what the
response sees of it. For one head at one response row ``r``, taking the span's keys away turns the head's
output ``o_r = sum_j a_rj v_j`` into ``(o_r - sum_{j in s} a_rj v_j) / (1 - sum_{j in s} a_rj)``: to first
order a change of ``-sum_{j in s} a_rj (v_j - o_r)``. Its effect on ``L = log p(response | context)`` (the
attributed tokens' log-probs, as LOO sums them) is, to first order, that change dotted with the gradient
``g_r = dL/do_r``; so the span's LOO error ``L(full) - L(without s)`` is predicted as

    sum over layers, heads and response rows r of  sum_{j in s} a_rj (v_j - o_r) . g_r      (nats)

one forward pass for the ``a``, ``v`` and ``o``, one backward pass for every ``g`` at once. This is
attribution patching (Nanda 2023; Kramár et al. 2024, "AtP*") applied to the attention edges from the
response to each span. Unlike attention mass, it has a sign (a span whose values push the response's
tokens down gets a negative effect) and it sees what later layers make of each head's output, through
the gradient; it needs no training, so it works for any model the studio loads.

What it leaves out, measured by ``bench/eval.py`` against exact LOO (README): the removal is not small
for the sentence the answer comes from, so its size is under- or over-stated there (the ranking is what
the figures measure); only the response rows' attention to the span is linearised (the question's rows
also read the context; the ablated prompt's positions also shift). Being linear, the effects of several
spans add up, so a paragraph's effect is the sum of its sentences' (exact LOO's need not).

Cheaper passes, measured in ``bench/first_order_variants.py`` (README):

- ``first_layer``: the effects through layers ``first_layer ..`` only. The gradient at a layer's heads
  depends on the layers above it alone, so the graph starts at that layer's head outputs and the backward
  pass stops there; the layers below run without autograd. The effects kept are exactly the full run's
  effects of those layers (a test holds it); what is left out is the lower layers' share.
- ``bf16``: the pass's matrix products autocast to bfloat16 (where that is faster:
  :func:`~attribot_core.features.bf16_is_faster`); the attention probabilities and the edge products are
  recomputed in float32 from the rounded q, k, v, as the estimate's features are.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .features import attention_modules, model_shape, response_attention, rotary_of

__all__ = ["SpanEffects", "first_order_effects"]


@dataclass(frozen=True)
class SpanEffects:
    """What the two passes give: each span's first-order LOO through each head, and the response's log-probs.

    ``per_head``: (spans, layers * heads), layer-major, nats; ``token_log_probs``: log p(response token |
    full prompt, earlier tokens), one per response token (every token, the attributed ones or not).
    """

    per_head: np.ndarray
    token_log_probs: np.ndarray
    seconds: float

    def total(self) -> np.ndarray:
        """(spans,): the first-order LOO of each span, nats: the sum over every layer and head."""
        return self.per_head.sum(axis=1)


class _Recorder:
    """Hooks that keep each attention layer's q, k, v (detached), rotary positions and the input of its output
    projection (the heads' outputs, whose gradient the backward pass fills in), from layer ``first_layer`` on.

    The first recorded layer's head outputs become the graph's leaf: the pass below them builds no graph."""

    def __init__(self, model, first_layer: int = 0) -> None:
        self.modules = attention_modules(model)[first_layer:]
        self.layers: list[dict] = []
        self._current: dict = {}
        self._handles: list = []

    def __enter__(self) -> _Recorder:
        for m in self.modules:
            self._handles += [m.q_proj.register_forward_hook(self._keep("q")),
                              m.k_proj.register_forward_hook(self._keep("k")),
                              m.v_proj.register_forward_hook(self._keep("v")),
                              m.register_forward_pre_hook(self._positions, with_kwargs=True),
                              m.o_proj.register_forward_pre_hook(self._heads_output)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _keep(self, key: str):
        def hook(_module, _args, output):
            self._current[key] = output.detach()
        return hook

    def _positions(self, _module, _args, kwargs):
        self._current["positions"] = tuple(p.detach() for p in kwargs["position_embeddings"])

    def _heads_output(self, _module, args):
        out = args[0]
        if self.layers:
            out.retain_grad()  # the backward pass fills out.grad: dL/do for every row and head
        else:  # the first recorded layer: the graph starts here, nothing below it needs a gradient
            out = out.detach().requires_grad_(True)
        self.layers.append({**self._current, "o": out})
        self._current = {}
        return (out, *args[1:])


def first_order_effects(lm, prompt_ids: Sequence[int], response_ids: Sequence[int], owners: Sequence[int],
                        n_spans: int, mask: Sequence[bool], *, first_layer: int = 0,
                        bf16: bool = False) -> SpanEffects:
    """First-order LOO of each span (see the module's docstring) from one forward and one backward pass.

    ``owners[i]`` is the span (0 .. ``n_spans`` - 1) of prompt token ``i``, or -1 (template, question);
    ``mask`` says which response tokens are attributed (their log-probs make up ``L``). The model's
    parameters are set not to need gradients (it is never trained here): the backward pass then computes
    only the gradients the effects use, not a gradient for every weight. ``first_layer`` and ``bf16``: the
    cheaper passes of the module's docstring (the layers below ``first_layer`` get zero effects).
    """
    import torch

    model = lm.model
    for p in model.parameters():
        p.requires_grad_(False)
    layers, heads = model_shape(model)
    if not 0 <= first_layer < layers:
        raise ValueError(f"first_layer {first_layer}: the model has layers 0 .. {layers - 1}.")
    n_prompt, n_response = len(prompt_ids), len(response_ids)
    ids = list(prompt_ids) + list(response_ids)[:-1]
    rows = torch.arange(n_prompt - 1, n_prompt - 1 + n_response)  # the rows predicting the response
    owner = torch.full((len(ids),), -1, dtype=torch.long)
    owner[:n_prompt] = torch.as_tensor(list(owners), dtype=torch.long)
    causal = torch.arange(len(ids))[None, :] <= rows[:, None]
    attributed = torch.as_tensor(list(mask), dtype=torch.bool)
    start = time.perf_counter()
    recorder = _Recorder(model, first_layer)
    device = torch.device(lm.device).type
    with recorder, torch.enable_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=torch.tensor([ids], device=lm.device), use_cache=False,
                       logits_to_keep=n_response).logits[0, -n_response:]
        target = torch.tensor(list(response_ids), device=logits.device)[:, None]
        wide = logits.to(torch.promote_types(logits.dtype, torch.float32))  # float32, or a float64 model's own
        token_lp = torch.log_softmax(wide, dim=-1).gather(1, target)[:, 0]
        token_lp[attributed.to(token_lp.device)].sum().backward()
    rotary = rotary_of(recorder.modules[0])
    per_head = torch.zeros(n_spans + 1, layers * heads)
    with torch.no_grad():
        for layer, (module, kept) in enumerate(zip(recorder.modules, recorder.layers, strict=True), first_layer):
            probs = response_attention(module, rotary, kept["q"], kept["k"], kept["positions"], rows, causal)[0]
            d = module.head_dim
            v = kept["v"].view(len(ids), -1, d).transpose(0, 1).float()  # (Hkv, T, d)
            v = v.repeat_interleave(heads // v.shape[0], dim=0)  # (H, T, d)
            o, grad = (t[0, rows.to(t.device)].float().view(n_response, heads, d).transpose(0, 1)
                       for t in (kept["o"].detach(), kept["o"].grad))  # (H, R, d)
            # a_rj (v_j - o_r) . g_r for every head, row and key, summed over the rows, then over each span's keys
            edge = probs * (grad @ v.transpose(-1, -2) - (o * grad).sum(-1, keepdim=True))  # (H, R, T)
            effect = torch.zeros(heads, n_spans + 1).index_add_(1, owner.to(edge.device) + 1, edge.sum(dim=1))
            per_head[:, layer * heads:(layer + 1) * heads] = effect.T.cpu()
    seconds = time.perf_counter() - start
    return SpanEffects(per_head[1:].numpy().astype(np.float64), token_lp.detach().cpu().numpy().astype(np.float64),
                       seconds)
