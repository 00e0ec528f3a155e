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

Depth: the features of layer ``l`` need only layers ``0 .. l - 1`` of the pass and layer ``l``'s query
and key projections. An estimator that reads the first ``depth`` layers
(:attr:`~attribot_core.estimator.EstimatorWeights.depth`) lets its own pass stop there
(``attention_features(..., depth=...)``), at the last read layer's key projection: on SmolLM2-135M the
first 20 of 30 layers rank no worse than all of them and cost two thirds of the pass
(``bench/estimator_cv.py``'s depth table). Such a pass never reaches the logits, so it gives no log-probs
of the response.

Precision: on a CPU with native bfloat16 arithmetic (Intel's AMX tiles: 2-5x; AMD's AVX512-BF16: less, README)
a float32 model's pass runs faster with its matrix products autocast to bfloat16 (:func:`bf16_is_faster`;
``attention_features(..., bf16=True)``).
The recomputed attention scores stay float32 (the hook turns autocast off); only the pass's hidden states
carry bfloat16 rounding. That is fine for an estimate, measured in ``bench/estimate_precision.py``, and
never for exact LOO: such a pass gives no log-probs either.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .kv import KeptPass

__all__ = ["PRECISIONS", "AttentionCapture", "AttentionFeatures", "attention_features", "attention_modules",
           "attention_of_rows", "bf16_is_faster", "matmul_dtype", "model_shape", "own_pass_bf16", "rotary_of",
           "uses_bf16"]


@dataclass(frozen=True)
class AttentionFeatures:
    """What one pass gives: attention mass per response token, span and head, and the response's log-probs.

    ``per_token``: (response tokens, spans, layers * heads), layer-major (feature ``l * heads + h``), for the
    first ``layers`` layers of the model.
    ``token_log_probs``: log p(response token | full prompt, earlier tokens), nats, one per response token;
    ``None`` when the pass stopped after ``layers`` layers, before the logits.
    ``reused``: leading tokens whose keys came from an earlier pass's cache, not from this pass.
    """

    per_token: np.ndarray
    token_log_probs: np.ndarray | None
    layers: int
    heads: int
    seconds: float
    reused: int = 0
    bf16: bool = False
    """Whether the pass's matrix products ran in bfloat16 (:func:`own_pass_bf16`)."""

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


def attention_modules(model) -> list:
    """The self-attention modules in layer order (each has q_proj, k_proj, head_dim and scaling)."""
    mods = [m for name, m in model.named_modules()
            if name.endswith("self_attn") and hasattr(m, "q_proj") and hasattr(m, "k_proj")]
    if not mods:
        raise NotImplementedError(f"No self-attention modules with q/k projections in {type(model).__name__}.")
    return mods


def rotary_of(module):
    """The rotary function of the module's own architecture (``apply_rotary_pos_emb(q, k, cos, sin)``)."""
    fn = getattr(sys.modules[type(module).__module__], "apply_rotary_pos_emb", None)
    if fn is None:
        raise NotImplementedError(f"{type(module).__name__}: no apply_rotary_pos_emb next to it; cannot recompute "
                                  "attention scores.")
    return fn


def attention_of_rows(module, rotary, q, k, positions, rows, causal, prefix_keys=None):
    """(1, heads, rows, keys) float32 attention probabilities of the query ``rows`` over the keys ``k`` of one
    layer (all of them, or the first ones: ``k`` and ``positions`` cut to the keys the rows can see).

    Recomputed from the layer's q/k projection outputs (``q``, ``k``: (1, tokens, heads * head_dim)) and its
    rotary ``positions`` (cos, sin), as the layer computes them: SDPA and flash attention return no weights,
    and ``output_attentions`` would force the slow eager path. ``causal``: (rows, keys) which keys each row
    sees. ``prefix_keys``: a pass that started after a cached prefix, its keys as the layer cached them
    (1, key heads, prefix, head_dim; rotated), put before ``k``. Shared by the attention-mass capture and the
    first-order span effects (:mod:`attribot_core.first_order`).
    """
    import torch

    cos, sin = positions
    d = module.head_dim
    q = q[:, rows.to(q.device)].view(1, len(rows), -1, d).transpose(1, 2)  # (1, H, R, d)
    k = k.view(1, k.shape[1], -1, d).transpose(1, 2)  # (1, Hkv, T, d)
    if hasattr(module, "q_norm"):  # architectures that normalise q/k per head (Qwen3)
        q, k = module.q_norm(q), module.k_norm(k)
    q, _ = rotary(q, q, cos[:, rows.to(cos.device)], sin[:, rows.to(sin.device)])  # the rows' positions
    _, k = rotary(k, k, cos, sin)
    if prefix_keys is not None:
        k = torch.cat([prefix_keys.to(k.dtype), k], dim=2)
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)  # GQA: each query head's key head
    scores = (q.float() @ k.float().transpose(-1, -2)) * module.scaling  # (1, H, R, T)
    return scores.masked_fill(~causal.to(scores.device), float("-inf")).softmax(dim=-1)


class _Enough(Exception):
    """Raised by a capture's last hook to end a pass whose later layers nothing reads."""


class AttentionCapture:
    """Hooks on a model's attention modules that record, during one forward pass over ``prompt_ids +
    response_ids[:-1]`` from position 0 (or from the end of a cached ``prefix`` of them), each response
    row's attention mass per span and head.

    Only the first ``depth`` layers (default: all) are recorded; with ``stop=True`` the pass is ended
    at the last one's key projection (:func:`attention_features` catches that), so the rest of that layer
    and the layers after it cost nothing.

    A context manager around *any* such pass: :func:`attention_features` runs its own; the scorer's
    base pass can carry it too (:meth:`~attribot_core.scoring.LocalScorer.observed_base_pass`), so
    the estimate costs no pass of its own when exact LOO follows. The hooks only read; the pass's
    outputs are unchanged. ``owners[i]`` is the span (0 .. n_spans - 1) prompt token ``i`` belongs to,
    or -1 (template, question).
    """

    def __init__(self, lm, n_prompt: int, n_response: int, owners: Sequence[int], n_spans: int, *,
                 depth: int | None = None, stop: bool = False, prefix=None) -> None:
        import torch

        layers, self.heads = model_shape(lm.model)
        self.layers = layers if depth is None else depth
        if not 1 <= self.layers <= layers:
            raise ValueError(f"depth {depth}: the model has {layers} layers.")
        self._stop = stop and self.layers < layers
        self._modules = attention_modules(lm.model)
        self._rotary = rotary_of(self._modules[0])
        n_ids = n_prompt + n_response - 1
        self._rows = torch.arange(n_prompt - 1, n_prompt - 1 + n_response)  # the rows predicting the response
        self._owner = torch.full((n_ids,), -1, dtype=torch.long)
        self._owner[:n_prompt] = torch.as_tensor(list(owners), dtype=torch.long)
        self._causal = torch.arange(n_ids)[None, :] <= self._rows[:, None]  # (rows, keys)
        self._n_ids, self._n_spans = n_ids, n_spans
        # a pass after a cached prefix (``prefix``: a cache of its views): its keys come from there
        self._prefix_keys = [layer.keys for layer in prefix.layers] if prefix is not None else None
        self._reused = prefix.get_seq_length() if prefix is not None else 0
        self._out = torch.zeros(n_response, n_spans + 1, self.layers * self.heads)  # span 0: "no span"
        self._captured: dict = {}
        self._done = 0
        self._handles: list = []

    def __enter__(self) -> AttentionCapture:
        for m in self._modules[: self.layers]:  # the layers after the depth read are not watched
            self._handles += [m.register_forward_pre_hook(self._grab_positions, with_kwargs=True),
                              m.q_proj.register_forward_hook(self._grab(m, "q")),
                              m.k_proj.register_forward_hook(self._grab(m, "k"))]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _grab(self, module, key: str):
        """A projection's hook: keep its output; once the layer has both q and k, compute its scores there.

        Computing at the second projection rather than after the attention module ends lets a stopped
        pass end inside its last read layer, before that layer's value projection, attention and MLP,
        which nothing reads (the shipped weights read 20 layers; on the long document this saved 1-3 %)."""
        def hook(_projection, _args, output):
            self._captured[key] = output
            if "q" in self._captured and "k" in self._captured:
                self._compute(module)
        return hook

    def _grab_positions(self, _module, _args, kwargs):
        self._captured["positions"] = kwargs.get("position_embeddings")

    def _compute(self, module) -> None:
        import torch

        with torch.autocast(device_type=module.q_proj.weight.device.type, enabled=False):  # scores in float32
            self._compute_scores(module)

    def _compute_scores(self, module) -> None:
        import torch

        q, k = self._captured.pop("q"), self._captured.pop("k")
        if self._reused + k.shape[1] != self._n_ids:
            raise RuntimeError(f"The observed pass covered {k.shape[1]} tokens after {self._reused} cached ones, "
                               f"not the {self._n_ids} of prompt and response: it must start at position 0.")
        layer = self._done
        prefix = self._prefix_keys[layer] if self._prefix_keys is not None else None
        probs = attention_of_rows(module, self._rotary, q, k, self._captured.pop("positions"),
                                  self._rows - self._reused, self._causal, prefix)[0].cpu()
        heads, rows = self.heads, self._rows
        mass = torch.zeros(heads, len(rows), self._n_spans + 1).index_add_(2, self._owner + 1, probs)
        self._out[:, :, layer * heads:(layer + 1) * heads] = mass.permute(1, 2, 0)
        self._done += 1
        if self._stop and self._done == self.layers:
            raise _Enough

    def features(self, token_log_probs: Sequence[float] | None, seconds: float,
                 bf16: bool = False) -> AttentionFeatures:
        """What the observed pass gave, with the response's log-probs it computed (``None``: it stopped early);
        ``bf16``: whether it ran in bfloat16."""
        if self._done != self.layers:
            raise RuntimeError(f"Captured {self._done} attention layers of {self.layers}.")
        lps = None if token_log_probs is None else np.asarray(token_log_probs, dtype=np.float64)
        return AttentionFeatures(self._out[:, 1:].numpy().astype(np.float64), lps, self.layers, self.heads, seconds,
                                 self._reused, bf16)


def own_pass_bf16(asked: bool, reused: int) -> bool:
    """Whether a one-pass method's own pass runs in bfloat16: as ``asked``, unless it starts from ``reused``
    kept keys and values. Then only a few rows run (nothing to gain), and the kept keys are in the model's dtype."""
    return asked and not reused


def bf16_is_faster(lm) -> bool:
    """Whether autocasting ``lm``'s matrix products to bfloat16 speeds its pass up: a float32 model on a
    CPU with native bfloat16 arithmetic (AMX tiles or AVX512-BF16). (Without either, bfloat16 on a CPU is
    emulated and several times slower; a GPU model already runs in its half-precision dtype.)"""
    import torch

    native = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    return (torch.device(lm.device).type == "cpu" and lm.model.dtype == torch.float32
            and any(bool(has and has()) for has in native))


PRECISIONS = ("auto", "model")
"""A one-pass method's ``precision``: ``"auto"`` autocasts its own pass to bfloat16 where that is faster
(:func:`bf16_is_faster`), ``"model"`` keeps the model's dtype (the same numbers on every machine)."""


def uses_bf16(lm, precision: str) -> bool:
    """Whether a one-pass method's own pass in ``precision`` (one of :data:`PRECISIONS`) runs in bfloat16."""
    return precision == "auto" and bf16_is_faster(lm)


def matmul_dtype(lm, bf16: bool) -> str:
    """What a pass's matrix products ran in, for the result (``extra["estimate_matmuls"]``): "bfloat16", or
    the model's dtype ("float32")."""
    return "bfloat16" if bf16 else str(lm.model.dtype).removeprefix("torch.")


def attention_features(lm, prompt_ids: Sequence[int], response_ids: Sequence[int], owners: Sequence[int],
                       n_spans: int, *, depth: int | None = None, bf16: bool = False,
                       after: KeptPass | None = None) -> AttentionFeatures:
    """One forward pass of its own over ``prompt_ids + response_ids[:-1]``; attention mass of each response
    row per span (see :class:`AttentionCapture`). ``lm`` is a :class:`~attribot_core.models.LoadedModel`.

    ``depth``: record only the first ``depth`` layers and stop the pass there (no log-probs then).
    ``bf16``: the pass's matrix products in bfloat16 (see the module's *Precision*; no log-probs then).
    ``after``: keys and values an earlier pass left (generation's): the tokens it shares with this pass, up
    to the last prompt token, are taken from it, so only the rows that predict the response are computed,
    in the model's own dtype (``bf16`` is then moot). :attr:`AttentionFeatures.reused` says how many.
    """
    import torch

    ids = list(prompt_ids) + list(response_ids)[:-1]
    start = time.perf_counter()
    reused, prefix = after.start(ids, keep=len(response_ids)) if after is not None else (0, None)
    bf16 = own_pass_bf16(bf16, reused)
    capture = AttentionCapture(lm, len(prompt_ids), len(response_ids), owners, n_spans, depth=depth, stop=True,
                               prefix=prefix)
    device = torch.device(lm.device).type
    try:
        with capture, torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            logits = lm.model(input_ids=torch.tensor([ids[reused:]], device=lm.device), past_key_values=prefix,
                              use_cache=prefix is not None,
                              logits_to_keep=len(response_ids)).logits[0, -len(response_ids):].float()
    except _Enough:
        return capture.features(None, time.perf_counter() - start, bf16)
    if bf16:  # rounded hidden states: not the log-probs exact LOO stands on
        return capture.features(None, time.perf_counter() - start, bf16)
    target = torch.tensor(list(response_ids), device=logits.device)[:, None]
    token_lp = torch.log_softmax(logits, dim=-1).gather(1, target)[:, 0].cpu().numpy()
    return capture.features(token_lp, time.perf_counter() - start)
