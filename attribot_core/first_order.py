"""First-order LOO: every span's leave-one-out error predicted from one forward and one backward pass.

Deleting a span from the context takes its tokens away from every attention layer: every later token (the
other sentences after it, the question, the template, the response) loses it as a key. For one head at one
such row ``r``, taking the span's keys away turns the head's output ``o_r = sum_j a_rj v_j`` into
``(o_r - sum_{j in s} a_rj v_j) / (1 - sum_{j in s} a_rj)``: to first order a change of
``-sum_{j in s} a_rj (v_j - o_r)``. Its effect on ``L = log p(response | context)`` (the attributed tokens'
log-probs, as LOO sums them) is, to first order, that change dotted with the gradient ``g_r = dL/do_r``; so
the span's LOO error ``L(full) - L(without s)`` is predicted as

    sum over layers, heads and rows r outside s of  sum_{j in s} a_rj (v_j - o_r) . g_r      (nats)

one forward pass for the ``a``, ``v`` and ``o``, one backward pass for every ``g`` at once. This is
attribution patching (Nanda 2023; Kramár et al. 2024, "AtP*") applied to the attention edges into each
span. Unlike attention mass, it has a sign (a span whose values push the response's tokens down gets a
negative effect) and it sees what later layers make of each head's output, through the gradient; it needs
no training, so it works for any model the studio loads. The span's own rows are left out: they go with
it, and what they read reaches the response only through their keys, which the later rows' edges carry.

Every row, not only the response's: a span is also read by the question and the later context, whose
tokens carry it on to the response; with the response rows alone the ranking was worse, most on long
contexts (the evaluation set: README, *Beyond attention mass*). The rows are taken a block at a time, so
the (heads, rows, tokens) products stay small on long documents.

Or only the rows after the context (``rows="question and response"``, :data:`ROWS`): the question's, the
template's and the response's edges into each span. No token before those rows depends on them, so their
gradients are the same as in the whole backward pass, and the context needs none: it runs once without
autograd, filling a cache of keys and values, and only the few dozen rows after it run with autograd, on
that cache. The cost is about one forward pass instead of one forward and one backward pass over everything;
what it leaves out is what the later context carries on (measured in ``bench/eval.py`` and
``bench/generated_faithfulness.py``, README). With keys and values already at hand (``after``: generation's,
a prefill's, or exact LOO's base pass), the context's pass is not even run: only the rows after it are.

What it leaves out, measured by ``bench/eval.py`` against exact LOO (README): the removal is not small
for the sentence the answer comes from, so its size is under- or over-stated there (the ranking is what
the figures measure); the ablated prompt's positions also shift. Being linear, the effects of several
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

from .features import attention_modules, attention_of_rows, model_shape, own_pass_bf16, rotary_of
from .kv import KeptPass

__all__ = ["ROWS", "SpanEffects", "first_order_effects"]

ROWS = ("all", "question and response")
"""Whose edges into a span first-order LOO sums: every row after the span (the later context, the question,
the response), or only the rows after the whole context (the question's, the template's, the response's)."""

ROWS_PER_BLOCK = 256
"""Rows whose edges are computed at once: a few (heads, rows, tokens) float32 tensors, about 50 MB each for the
0.5B on a 3,500-token prompt."""


@dataclass(frozen=True)
class SpanEffects:
    """What the two passes give: each span's first-order LOO through each head, and the response's log-probs.

    ``per_head``: (spans, layers * heads), layer-major, nats; ``token_log_probs``: log p(response token |
    full prompt, earlier tokens), one per response token (every token, the attributed ones or not).
    """

    per_head: np.ndarray
    token_log_probs: np.ndarray
    seconds: float
    reused: int = 0
    """Tokens whose keys and values came from ``after`` (their pass not run); the pass is then in the model's
    dtype."""
    bf16: bool = False
    """Whether the pass's matrix products (the context's, where it ran apart) ran in bfloat16
    (:func:`~attribot_core.features.own_pass_bf16`): its log-probs are then not exact LOO's."""

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


def _edges_into_spans(module, rotary, kept: dict, v, rows, owner, n_spans: int, cached=None):
    """(heads, n_spans + 1): sum over ``rows`` and each span's keys of ``a_rj (v_j - o_r) . g_r`` in one layer
    (column 0: keys of no span); a row's edges into its own span are left out. ``v``: (heads, tokens, d), every
    token's values. ``cached``: the keys of the tokens a pass after a cache did not compute (1, key heads,
    tokens, d; rotated); ``kept`` then holds the pass's own tokens, which start after them."""
    import torch

    keys = int(rows[-1]) + 1  # no row of the block sees a later key: the products stop at the block's last row
    offset = 0 if cached is None else cached.shape[2]
    own_keys = keys - offset  # the keys of the recorded pass's own tokens
    v, owner = v[:, :keys], owner[:keys]
    causal = torch.arange(keys)[None, :] <= rows[:, None]
    positions = tuple(p[:, :own_keys] for p in kept["positions"])
    probs = attention_of_rows(module, rotary, kept["q"], kept["k"][:, :own_keys], positions, rows - offset, causal,
                              cached)[0]
    heads, d = v.shape[0], v.shape[2]
    local = (rows - offset).to(kept["o"].device)
    o, grad = (t[0, local].float().view(len(rows), heads, d).transpose(0, 1)
               for t in (kept["o"].detach(), kept["o"].grad))  # (H, R, d)
    own = owner.to(probs.device)
    same = (own[rows.to(probs.device)][:, None] == own[None, :]) & (own[None, :] >= 0)  # (R, T): inside one span
    # sum_r a_rj (v_j - o_r) . g_r = v_j . (sum_r a_rj g_r) - sum_r a_rj (o_r . g_r): one product with the
    # attention's transpose gives both sums for every key, without a (heads, rows, tokens) tensor of edges
    by_key = probs.masked_fill(same, 0.0).transpose(-1, -2) @ torch.cat([grad, (o * grad).sum(-1, keepdim=True)], -1)
    edge = (by_key[..., :d] * v).sum(-1) - by_key[..., d]  # (H, T): summed over the rows
    return torch.zeros(heads, n_spans + 1, device=edge.device).index_add_(1, own + 1, edge).cpu()


def first_order_effects(lm, prompt_ids: Sequence[int], response_ids: Sequence[int], owners: Sequence[int],
                        n_spans: int, mask: Sequence[bool], *, first_layer: int = 0,
                        bf16: bool = False, rows: str = "all", after: KeptPass | None = None) -> SpanEffects:
    """First-order LOO of each span (see the module's docstring) from one forward and one backward pass.

    ``owners[i]`` is the span (0 .. ``n_spans`` - 1) of prompt token ``i``, or -1 (template, question);
    ``mask`` says which response tokens are attributed (their log-probs make up ``L``). The model's
    parameters are set not to need gradients (it is never trained here): the backward pass then computes
    only the gradients the effects use, not a gradient for every weight. ``first_layer``, ``bf16`` and
    ``rows`` (one of :data:`ROWS`): the cheaper passes of the module's docstring (the layers below
    ``first_layer`` get zero effects). ``after``: keys and values an earlier pass left; with ``rows="question
    and response"`` the context tokens it shares are taken from it (in the model's dtype: ``bf16`` is then
    moot), so only the rest of the context runs, without autograd.
    """
    import torch

    model = lm.model
    for p in model.parameters():
        p.requires_grad_(False)
    layers, heads = model_shape(model)
    if not 0 <= first_layer < layers:
        raise ValueError(f"first_layer {first_layer}: the model has layers 0 .. {layers - 1}.")
    if rows not in ROWS:
        raise ValueError(f"rows {rows!r}: one of {', '.join(ROWS)}.")
    n_prompt, n_response = len(prompt_ids), len(response_ids)
    ids = list(prompt_ids) + list(response_ids)[:-1]
    owner = torch.full((len(ids),), -1, dtype=torch.long)
    owner[:n_prompt] = torch.as_tensor(list(owners), dtype=torch.long)
    attributed = torch.as_tensor(list(mask), dtype=torch.bool)
    in_spans = (owner >= 0).nonzero()[:, 0]
    first_read = int(in_spans[0]) + 1 if len(in_spans) else len(ids)  # the rows before it read no span
    # after the context, nothing before the first read row needs a gradient: a cache without autograd
    cut = int(in_spans[-1]) + 1 if rows != "all" and len(in_spans) else 0
    first_read = max(first_read, cut)
    start = time.perf_counter()
    device = torch.device(lm.device).type
    cached = [(None, None)] * layers
    reused, cache = after.start(ids[:cut], keep=0) if cut and after is not None else (0, None)
    bf16 = own_pass_bf16(bf16, reused)
    if reused < cut:
        from transformers import DynamicCache

        # the decoder alone: its keys and values are all this pass is for, so no logits (the output layer
        # is the size of the vocabulary)
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            cache = model.base_model(input_ids=torch.tensor([ids[reused:cut]], device=lm.device), use_cache=True,
                                     past_key_values=cache if cache is not None else DynamicCache()).past_key_values
        for layer in cache.layers:  # the rows after the context run in the model's dtype: the same for their keys
            layer.keys, layer.values = layer.keys.to(model.dtype), layer.values.to(model.dtype)
    if cut:
        cached = [(layer.keys, layer.values) for layer in cache.layers]  # the pass below replaces, never writes them
    recorder = _Recorder(model, first_layer)
    # after the context, a few dozen rows: in the model's dtype, since autocasting would cast every weight
    # again for them (a pass's worth of copies) to save a few small products
    tail_bf16 = bf16 and not cut
    with recorder, torch.enable_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=tail_bf16):
        logits = model(input_ids=torch.tensor([ids[cut:]], device=lm.device), past_key_values=cache,
                       use_cache=cache is not None, logits_to_keep=n_response).logits[0, -n_response:]
        target = torch.tensor(list(response_ids), device=logits.device)[:, None]
        wide = logits.to(torch.promote_types(logits.dtype, torch.float32))  # float32, or a float64 model's own
        token_lp = torch.log_softmax(wide, dim=-1).gather(1, target)[:, 0]
        token_lp[attributed.to(token_lp.device)].sum().backward()
    rotary = rotary_of(recorder.modules[0])
    per_head = torch.zeros(n_spans + 1, layers * heads)
    with torch.no_grad():
        for layer, (module, kept) in enumerate(zip(recorder.modules, recorder.layers, strict=True), first_layer):
            keys, values = cached[layer]
            v = kept["v"].view(1, len(ids) - cut, -1, module.head_dim).transpose(1, 2)  # (1, Hkv, T, d)
            v = (v if values is None else torch.cat([values.to(v.dtype), v], dim=2))[0].float()
            v = v.repeat_interleave(heads // v.shape[0], dim=0)  # (H, T, d): each query head's value head
            effect = torch.zeros(heads, n_spans + 1)
            for block in torch.arange(first_read, len(ids)).split(ROWS_PER_BLOCK):
                effect += _edges_into_spans(module, rotary, kept, v, block, owner, n_spans, keys)
            per_head[:, layer * heads:(layer + 1) * heads] = effect.T
    seconds = time.perf_counter() - start
    return SpanEffects(per_head[1:].numpy().astype(np.float64), token_lp.detach().cpu().numpy().astype(np.float64),
                       seconds, reused, bf16)
