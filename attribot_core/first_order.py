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
    projection (the heads' outputs, whose gradient the backward pass fills in)."""

    def __init__(self, model) -> None:
        self.modules = attention_modules(model)
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
        out.retain_grad()  # the backward pass fills out.grad: dL/do for every row and head
        self.layers.append({**self._current, "o": out})
        self._current = {}


def first_order_effects(lm, prompt_ids: Sequence[int], response_ids: Sequence[int], owners: Sequence[int],
                        n_spans: int, mask: Sequence[bool]) -> SpanEffects:
    """First-order LOO of each span (see the module's docstring) from one forward and one backward pass.

    ``owners[i]`` is the span (0 .. ``n_spans`` - 1) of prompt token ``i``, or -1 (template, question);
    ``mask`` says which response tokens are attributed (their log-probs make up ``L``). The model's
    parameters are set not to need gradients (it is never trained here): the backward pass then computes
    only the gradients the effects use, not a gradient for every weight.
    """
    import torch

    model = lm.model
    for p in model.parameters():
        p.requires_grad_(False)
    layers, heads = model_shape(model)
    n_prompt, n_response = len(prompt_ids), len(response_ids)
    ids = list(prompt_ids) + list(response_ids)[:-1]
    rows = torch.arange(n_prompt - 1, n_prompt - 1 + n_response)  # the rows predicting the response
    owner = torch.full((len(ids),), -1, dtype=torch.long)
    owner[:n_prompt] = torch.as_tensor(list(owners), dtype=torch.long)
    causal = torch.arange(len(ids))[None, :] <= rows[:, None]
    attributed = torch.as_tensor(list(mask), dtype=torch.bool)
    start = time.perf_counter()
    recorder = _Recorder(model)
    with recorder, torch.enable_grad():
        embeds = model.get_input_embeddings()(torch.tensor([ids], device=lm.device)).detach().requires_grad_(True)
        logits = model(inputs_embeds=embeds, use_cache=False, logits_to_keep=n_response).logits[0, -n_response:]
        target = torch.tensor(list(response_ids), device=logits.device)[:, None]
        wide = logits.to(torch.promote_types(logits.dtype, torch.float32))  # float32, or a float64 model's own
        token_lp = torch.log_softmax(wide, dim=-1).gather(1, target)[:, 0]
        token_lp[attributed.to(token_lp.device)].sum().backward()
    rotary = rotary_of(recorder.modules[0])
    per_head = torch.zeros(n_spans + 1, layers * heads)
    with torch.no_grad():
        for layer, (module, kept) in enumerate(zip(recorder.modules, recorder.layers, strict=True)):
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
