"""Scorers: log p(response | prompt with some context), for many ablated contexts at once.

Methods decide *which* contexts to score; a scorer decides *how* to score them fast. The local scorer
uses four exact tricks:

* **prefix reuse** - an ablated context shares every token before the deleted span with its base
  context, so the keys/values of that common prefix are taken from the base pass and only the rest
  is recomputed (the first differing token is found on the token ids, so tokenizer merges across the
  cut are handled); the base pass itself starts from the prompt's keys where generation or a prefill
  left them (``kept_pass``, a float32 model: see :data:`KEPT_KEYS_DTYPES`);
* **response-only logits** - the LM head runs only on the positions that predict response tokens;
* **memo** - a context already scored (e.g. the base of a second round) is not run again;
* **batching** - with ``batch_size > 1`` several ablations run in one forward pass. On a CPU their
  suffixes are packed into one sequence, each attending to the base's cached prefix up to its own
  cut (read in place) and to itself: the weights are read once per pass, not once per ablation.
  Elsewhere (a GPU, sliding-window models) each is one row: the prefix up to its cut behind a 4D
  attention mask, its suffix left-padded, positions per row. ``"auto"`` (the default) picks the
  rows per pass (``docs/speed_notes.md``).

All log-probabilities are in nats, summed over the selected response tokens, computed in fp32.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from . import prefix_attention
from .kv import KeptPass, common_prefix, prefix_cache
from .models import LoadedModel
from .pertoken import TokenAxis, axis_from_tokenizer
from .prompt import DEFAULT_TEMPLATE, PromptBuilder, Response

__all__ = [
    "CPU_BATCH_SIZE",
    "KEPT_KEYS_DTYPES",
    "ContextTooLong",
    "LocalScorer",
    "ProgressFn",
    "Scorer",
    "ScorerStats",
    "TokenLogProbs",
    "TokenScorer",
]

KEPT_KEYS_DTYPES = ("torch.float32", "torch.float64")
"""Model dtypes whose base pass starts from the keys generation or a prefill left. Those keys are the same
arithmetic split at other places (the prefill's chunks, the prompt's end), as every cached ablation is
already split at its cut; in float32 the scores move by float rounding only (tested within 1e-5 nats, or
1e-6 of the score, on the tiny models; measured on real models by ``bench/kept_base.py``). In half
precision a split rounds far more coarsely (not measured: no GPU at hand), so there the base pass stays its
own, from position 0."""

CPU_BATCH_SIZE = 4
"""Ablations per forward pass on a CPU for ``batch_size="auto"`` (the default) when their suffixes can be
packed into one sequence (cached passes, full attention): fastest measured here (docs/speed_notes.md).
Padded rows (the GPU layout) were slower on a CPU than one at a time, so without packing it is 1."""

ProgressFn = Callable[[int, int, str], None]
"""Called as ``progress(done, total, what)``; it may raise to cancel the run."""


class ContextTooLong(ValueError):
    """The prompt plus response does not fit the model's window."""


@dataclass
class ScorerStats:
    """Work done by one scorer: forward passes, tokens run through the model, seconds spent.

    ``forward_passes`` counts scored contexts (one per ablation, as the paper counts them), whatever
    the batching; ``model_calls`` counts calls of the model (several ablations may share one).
    """

    forward_passes: int = 0
    model_calls: int = 0
    tokens_computed: int = 0
    tokens_reused: int = 0
    seconds: float = 0.0


@runtime_checkable
class Scorer(Protocol):
    """What every attribution method needs from a model."""

    model_id: str
    stats: ScorerStats

    def check_fits(self, context: str) -> None:
        """Raise :class:`ContextTooLong` before any work if ``context`` cannot be scored."""

    def log_prob(self, context: str) -> float:
        """``log p(response | context)``."""

    def log_probs(
        self, base: str, variants: Sequence[str], progress: ProgressFn | None = None
    ) -> tuple[float, list[float]]:
        """``log p(response | base)`` and ``log p(response | v)`` for each variant ``v``.

        Variants are expected to be ``base`` with something deleted, which lets a scorer reuse work.
        """


TokenLogProbs = list[float]
"""Per-response-token log-probs (nats, fp32), one per token of the scorer's response, unmasked."""


@runtime_checkable
class TokenScorer(Scorer, Protocol):
    """A scorer that also gives per-response-token log-probs, so results can keep them.

    Methods use it when a scorer has it and fall back to :meth:`Scorer.log_probs` otherwise.
    """

    def token_log_probs(
        self, base: str, variants: Sequence[str], progress: ProgressFn | None = None
    ) -> tuple[TokenLogProbs, list[TokenLogProbs]]:
        """Per response token, over all response tokens: ``log p(token | base)`` and for each variant."""

    def masked_sum(self, token_lps: TokenLogProbs) -> float:
        """The sum over the attributed response tokens: what :meth:`Scorer.log_probs` returns."""

    def response_axis(self) -> TokenAxis:
        """Where each response token sits in the response text (for mapping characters to tokens)."""


class LocalScorer:
    """Teacher-forced response log-probs from a local transformers model.

    ``batch_size`` is the number of ablations per forward pass (an int, or ``"auto"``: on a GPU as many
    rows as fit its free memory, halved and retried on out-of-memory; on a CPU ``CPU_BATCH_SIZE``
    packed ablations where suffixes can be packed, else 1).
    Batched and one-at-a-time scoring agree within float rounding (~1e-5 nats in fp32).
    """

    keep_token_values: bool = True  # methods keep per-token vectors from this scorer (see methods.base)

    def __init__(
        self,
        lm: LoadedModel,
        question: str,
        response: Response,
        *,
        template: str = DEFAULT_TEMPLATE,
        response_chars: tuple[int, int] | None = None,
        reuse_prefix: bool = True,
        batch_size: int | str = "auto",
        kept_pass: KeptPass | None = None,
    ) -> None:
        if kept_pass is not None and kept_pass.model_id != lm.model_id:
            raise ValueError(f"Keys and values of {kept_pass.model_id} cannot start a pass of {lm.model_id}.")
        self.lm = lm
        self.model_id = lm.model_id
        self.question = question
        self.reuse_prefix = reuse_prefix
        self.batch_size = check_batch_size(batch_size)
        self.builder = PromptBuilder(lm.tokenizer, lm.tokenizer_id, template)
        self.response_ids = self.builder.response_ids(response)
        if not self.response_ids:
            raise ValueError("The response is empty: there is nothing to attribute.")
        self.mask = self.builder.response_mask(self.response_ids, response_chars)
        self.stats = ScorerStats()
        self._memo: dict[str, TokenLogProbs] = {}
        self._anchor: tuple[str, list[int], object] | None = None  # (context, ids, KV cache)
        self._auto_rows: int | None = None  # rows that fit, once "auto" has measured it
        self._kept = kept_pass  # generation's or a prefill's keys, for the one-pass methods (keys_at_hand)
        # Cached passes on a CPU: attention split at the cache (prefix_attention); same results.
        self._split_prefix = lm.device.type == "cpu" and prefix_attention.enable(lm.model)
        # ... and an ablation's pass attends to the base's cached prefix in place (no cache copy).
        self._prefix_in_place = self._split_prefix and prefix_attention.prefix_passes_work(lm.model)

    # -- public ------------------------------------------------------------------------------------
    def keys_at_hand(self) -> KeptPass | None:
        """Keys and values a one-pass method can start from instead of a pass over the whole prompt: those
        generation or a prefill left (``kept_pass``) until this scorer begins scoring, which lets them go
        (its base pass starts from them too, in a float32 model: :data:`KEPT_KEYS_DTYPES`); then its base
        pass's (the anchor that exact LOO's ablations start from); None when neither."""
        if self._kept is not None:
            return self._kept
        if self._anchor is None:
            return None
        return KeptPass(self.model_id, tuple(self._anchor[1]), self._anchor[2])

    def prompt_ids(self, context: str) -> list[int]:
        return self.builder.prompt_ids(context, self.question)

    def check_fits(self, context: str) -> None:
        n = len(self.prompt_ids(context)) + len(self.response_ids)
        if n > self.lm.max_positions:
            raise ContextTooLong(
                f"The prompt and response take {n} tokens, more than the {self.lm.max_positions}-token "
                f"window of {self.model_id}. Shorten the context or use a model with a longer window."
            )

    def log_prob(self, context: str) -> float:
        return self.log_probs(context, [])[0]

    def log_probs(
        self, base: str, variants: Sequence[str], progress: ProgressFn | None = None
    ) -> tuple[float, list[float]]:
        base_tok, variant_toks = self.token_log_probs(base, variants, progress)
        return self.masked_sum(base_tok), [self.masked_sum(v) for v in variant_toks]

    def token_log_probs(
        self, base: str, variants: Sequence[str], progress: ProgressFn | None = None
    ) -> tuple[TokenLogProbs, list[TokenLogProbs]]:
        """Like :meth:`log_probs`, but per response token and over *all* response tokens.

        Every pass computes these anyway; keeping them lets a result answer "which sentence made this
        word" for any part of the response without another pass.
        """
        self.check_fits(base)
        base_tok = self._score(base, as_anchor=self.reuse_prefix)
        todo = [v for v in dict.fromkeys(variants) if v not in self._memo]
        done = len(variants) - len(todo)
        i = 0
        while i < len(todo):
            if progress:
                progress(done + i, len(variants), self.model_id)
            rows = self.rows_per_pass()
            chunk = todo[i : i + rows]
            try:
                self._score_rows(chunk)
            except Exception as exc:  # out-of-memory: halve the rows and retry ("auto" only)
                if not (self.batch_size == "auto" and rows > 1 and _is_oom(exc)):
                    raise
                self._auto_rows = rows // 2
                _free_device_memory(self.lm.device)
                continue
            i += len(chunk)
        if progress:
            progress(len(variants), len(variants), self.model_id)
        return base_tok, [self._memo[v] for v in variants]

    def observed_base_pass(self, context: str, observer: AbstractContextManager) -> TokenLogProbs | None:
        """Score ``context`` as the base pass while ``observer`` (read-only hooks on the model, e.g.
        :class:`~attribot_core.features.AttentionCapture`) is active; None when this scorer cannot.

        The one pass then serves the observer and exact scoring alike: a method whose first pass is this
        base pass finds it done (the app's estimate-first stage costs no pass of its own). Only a scorer
        that has scored nothing yet can: the pass must start at position 0, and a remembered context runs
        no pass to observe; the caller then runs a pass of its own.
        """
        if self._anchor is not None or self._memo:
            return None
        self.check_fits(context)
        self._kept = None  # every row, from position 0: the observer sees no keys it did not compute
        with observer:
            return self._score(context, as_anchor=self.reuse_prefix)

    def masked_sum(self, token_lps: TokenLogProbs) -> float:
        """Sum of the per-token log-probs over the attributed response tokens (the mask), in nats."""
        return float(sum(lp for lp, on in zip(token_lps, self.mask, strict=True) if on))

    def response_axis(self) -> TokenAxis:
        """This scorer's response tokens with their character ranges in its decoding of the response."""
        return axis_from_tokenizer(self.model_id, self.builder, self.response_ids)

    # -- internals ---------------------------------------------------------------------------------
    def rows_per_pass(self) -> int:
        """Ablations per forward pass now."""
        if self.batch_size != "auto":
            return self.batch_size
        if self._auto_rows is None:
            if self.lm.device.type == "cuda":
                self._auto_rows = _rows_that_fit(self.lm, self._anchor_len(), len(self.response_ids))
            else:
                self._auto_rows = CPU_BATCH_SIZE if self._prefix_in_place and self.reuse_prefix else 1
        return self._auto_rows

    def _anchor_len(self) -> int:
        return len(self._anchor[1]) if self._anchor else self.lm.max_positions

    def _plan(self, context: str) -> tuple[list[int], int]:
        """Token ids of ``context`` + response (all but the last token), and how many come from the anchor."""
        self._kept = None  # scoring has begun: the estimate, which comes first, no longer wants the kept keys
        ids = self.prompt_ids(context) + self.response_ids[:-1]
        prompt_len = len(ids) - len(self.response_ids) + 1
        reuse = 0
        if self.reuse_prefix and self._anchor is not None:
            # Keep at least the last prompt token to recompute: its logits predict response token 1.
            reuse = min(common_prefix(ids, self._anchor[1]), prompt_len - 1)
        return ids, reuse

    def _score(self, context: str, as_anchor: bool) -> TokenLogProbs:
        """Score one context; an anchor keeps its KV cache for the variants that follow."""
        is_anchor = self._anchor is not None and self._anchor[0] == context
        if context in self._memo and (is_anchor or not as_anchor):
            return self._memo[context]
        kept = self._kept
        ids, reuse = self._plan(context)
        if as_anchor:
            # A new anchor (the base of a later round) still starts like the old one: reuse that too; the
            # first starts from the prompt's keys generation or a prefill left, where it may.
            from transformers import DynamicCache

            if reuse > 0:
                cache = prefix_cache(self._anchor[2], reuse)
            elif kept is not None and str(self.lm.model.dtype) in KEPT_KEYS_DTYPES:
                reuse, cache = kept.start(ids, keep=len(self.response_ids))  # (0, None) when none is shared
            else:
                cache = None
            cache = cache if cache is not None else DynamicCache()
            lp = self._forward(ids[reuse:], cache)
            self._anchor = (context, ids, cache)
        elif reuse > 0 and self._prefix_in_place:
            lp = self._forward(ids[reuse:], None, prefix=prefix_attention.Prefix(self._anchor[2], reuse))
        else:
            cache = prefix_cache(self._anchor[2], reuse) if reuse > 0 else None
            lp = self._forward(ids[reuse:], cache)
        self.stats.tokens_reused += reuse
        self._memo[context] = lp
        return lp

    def _score_rows(self, contexts: Sequence[str]) -> None:
        """Score several contexts (not the anchor) in one forward pass; results go to the memo."""
        if len(contexts) == 1:
            self._score(contexts[0], as_anchor=False)
            return
        plans = [self._plan(c) for c in contexts]
        for context, lp in zip(contexts, self._forward_batch(plans), strict=True):
            self._memo[context] = lp
        self.stats.tokens_reused += sum(r for _, r in plans)

    def _forward(self, input_ids: list[int], cache, prefix: prefix_attention.Prefix | None = None) -> TokenLogProbs:
        """Run the model on ``input_ids`` after the cached prefix (a ``cache`` it extends, or a ``prefix``
        it only reads): the log-prob of each response token."""
        import torch

        n_resp = len(self.response_ids)
        start = time.perf_counter()
        if prefix is not None:  # positions continue after the prefix; no cache is built or copied
            extra = {"attribot_prefix": prefix, "attention_mask": _no_mask(), "position_ids": torch.arange(
                prefix.length, prefix.length + len(input_ids), device=self.lm.device)[None]}
        else:
            extra = {"attribot_split_prefix": True} if self._split_prefix and cache is not None else {}
        with torch.inference_mode():
            out = self.lm.model(
                input_ids=torch.tensor([input_ids], device=self.lm.device),
                past_key_values=cache,
                use_cache=cache is not None,
                logits_to_keep=n_resp,
                **extra,
            )
            token_lp = self._response_log_probs(out.logits[:, -n_resp:])[0].tolist()
        self.stats.forward_passes += 1
        self.stats.model_calls += 1
        self.stats.tokens_computed += len(input_ids)
        self.stats.seconds += time.perf_counter() - start
        return token_lp

    def _forward_batch(self, plans: Sequence[tuple[list[int], int]]) -> list[TokenLogProbs]:
        """Several ablations in one pass: packed into one sequence where the prefix can be read in place
        (CPU, full attention), else one padded row each (what a GPU wants)."""
        if self._prefix_in_place and self._anchor is not None:
            return self._forward_packed(plans)
        return self._forward_rows(plans)

    def _forward_packed(self, plans: Sequence[tuple[list[int], int]]) -> list[TokenLogProbs]:
        """One forward pass over several ablations' suffixes packed into one sequence (no padding).

        Each suffix attends to the anchor's cached prefix up to its own cut and to itself causally
        (:class:`prefix_attention.Prefix` segments); positions continue after each one's cut. The
        matrix multiplies of the layers run once over all suffixes: on a CPU that reads the weights
        once per pass instead of once per ablation, the fixed cost of a pass.
        """
        import torch

        n_resp = len(self.response_ids)
        device = self.lm.device
        flat, positions, keep, segments = [], [], [], []
        for ids, reuse in plans:
            suffix = ids[reuse:]
            segments.append((len(flat), len(suffix), reuse))
            positions.extend(range(reuse, reuse + len(suffix)))
            flat.extend(suffix)
            keep.extend(range(len(flat) - n_resp, len(flat)))  # the positions predicting response tokens
        prefix = prefix_attention.Prefix(self._anchor[2], max(r for _, r in plans), segments)
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.lm.model(
                input_ids=torch.tensor([flat], device=device),
                position_ids=torch.tensor([positions], device=device),
                use_cache=False,
                logits_to_keep=torch.tensor(keep, device=device),
                attribot_prefix=prefix,
                attention_mask=_no_mask(),
            )
            logits = out.logits.reshape(len(plans), n_resp, -1)
            token_lp = self._response_log_probs(logits).tolist()
        self.stats.forward_passes += len(plans)
        self.stats.model_calls += 1
        self.stats.tokens_computed += len(flat)
        self.stats.seconds += time.perf_counter() - start
        return token_lp

    def _forward_rows(self, plans: Sequence[tuple[list[int], int]]) -> list[TokenLogProbs]:
        """One forward pass, one row per ablation; each row reuses the anchor's cache up to its own cut.

        All rows share the anchor's keys/values up to the longest reuse ``R``; row ``b`` may only look
        at the first ``reuse_b`` of them, then at its own suffix causally. Suffixes are left-padded so
        that every row's response-predicting positions are the last ``n_resp``; a pad position only
        sees itself (its output is discarded) and no real position sees a pad.
        """
        import torch

        n_resp = len(self.response_ids)
        device = self.lm.device
        reuse_max = max(r for _, r in plans)
        suffixes = [ids[r:] for ids, r in plans]
        width = max(len(s) for s in suffixes)
        rows = len(plans)
        pad = self.lm.tokenizer.pad_token_id
        pad = pad if pad is not None else suffixes[0][0]
        input_ids = torch.full((rows, width), pad, dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)
        allowed = torch.zeros((rows, 1, width, reuse_max + width), dtype=torch.bool)
        causal = torch.ones((width, width), dtype=torch.bool).tril()
        eye = torch.eye(width, dtype=torch.bool)
        for b, (suffix, (_, reuse)) in enumerate(zip(suffixes, plans, strict=True)):
            off = width - len(suffix)
            input_ids[b, off:] = torch.tensor(suffix)
            positions[b, off:] = torch.arange(reuse, reuse + len(suffix))
            allowed[b, 0, off:, :reuse] = True
            allowed[b, 0, off:, reuse_max + off :] = causal[: len(suffix), : len(suffix)]
            allowed[b, 0, :off, reuse_max : reuse_max + off] = eye[:off, :off]
        start = time.perf_counter()
        with torch.inference_mode():
            cache = prefix_cache(self._anchor[2], reuse_max, rows) if reuse_max > 0 else None
            out = self.lm.model(
                input_ids=input_ids.to(device),
                position_ids=positions.to(device),
                attention_mask=_attention_mask(self.lm.model, allowed).to(device),
                past_key_values=cache,
                use_cache=cache is not None,
                logits_to_keep=n_resp,
            )
            token_lp = self._response_log_probs(out.logits[:, -n_resp:]).tolist()
        self.stats.forward_passes += len(plans)
        self.stats.model_calls += 1
        self.stats.tokens_computed += sum(len(s) for s in suffixes)
        self.stats.seconds += time.perf_counter() - start
        return token_lp

    def _response_log_probs(self, logits):
        """(rows, n_resp, vocab) logits -> (rows, n_resp) log-probs of the response tokens, in fp32.

        ``logsumexp`` instead of a full ``log_softmax`` keeps one (rows, n_resp, vocab) tensor fewer
        in memory, which matters for large vocabularies and many rows on a GPU.
        """
        import torch

        logits = logits.float()
        targets = torch.tensor(self.response_ids, device=logits.device).expand(logits.shape[0], -1)
        return logits.gather(2, targets[..., None])[..., 0] - torch.logsumexp(logits, dim=-1)


def check_batch_size(batch_size: int | str) -> int | str:
    """``batch_size`` as an int >= 1 or ``"auto"``; a clear error otherwise."""
    if isinstance(batch_size, str):
        text = batch_size.strip().lower()
        if text == "auto":
            return "auto"
        if not text.isdigit():
            raise ValueError(f"batch_size must be a positive integer or 'auto', not '{batch_size}'.")
        batch_size = int(text)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or 'auto', not {batch_size!r}.")
    return batch_size


def _no_mask():
    """A ready-made (1, 1, 1, 1) mask for passes that read a :class:`prefix_attention.Prefix`.

    Their attention sees the prefix and the segments itself and never looks at a mask; a 4D mask is
    passed through by transformers as it is, so it skips building a (tokens x tokens) one (for packed
    segments, 144 MB of booleans at 12,000 tokens) that nothing would read.
    """
    import torch

    return torch.ones((1, 1, 1, 1), dtype=torch.bool)


def _attention_mask(model, allowed):
    """The 4D mask in the form the model's attention takes: boolean for SDPA, additive otherwise."""
    import torch

    if getattr(model.config, "_attn_implementation", "sdpa") == "sdpa":
        return allowed
    dtype = next(model.parameters()).dtype
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


MAX_GPU_ROWS = 64


def _rows_that_fit(lm: LoadedModel, context_tokens: int, n_resp: int) -> int:
    """Rows per pass for ``batch_size="auto"`` on a GPU: what its free memory holds.

    The estimate per row: the row's keys/values over the whole context in every layer (twice: the
    cache and the attention's copy), ~16 hidden-sized activations per suffix token, and the fp32
    logits of the response. Out-of-memory errors halve it later, so it only needs to be close.
    """
    import torch

    cfg = lm.model.config.get_text_config() if hasattr(lm.model.config, "get_text_config") else lm.model.config
    heads = getattr(cfg, "num_attention_heads", 16)
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    elem = torch.finfo(lm.dtype).bits // 8
    kv = 2 * cfg.num_hidden_layers * (kv_heads + heads) * head_dim * context_tokens * elem
    act = 16 * max(cfg.hidden_size, getattr(cfg, "intermediate_size", 0) // 4) * context_tokens * elem
    logits = 3 * n_resp * cfg.vocab_size * 4
    free, _ = torch.cuda.mem_get_info(lm.device)
    return max(1, min(MAX_GPU_ROWS, int(0.8 * free // (kv + act + logits))))


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _free_device_memory(device) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.empty_cache()
