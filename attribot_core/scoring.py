"""Scorers: log p(response | prompt with some context), for many ablated contexts at once.

Methods decide *which* contexts to score; a scorer decides *how* to score them fast. The local scorer
uses three exact tricks:

* **prefix reuse** - an ablated context shares every token before the deleted span with its base
  context, so the keys/values of that common prefix are taken from the base pass and only the rest
  is recomputed (the first differing token is found on the token ids, so tokenizer merges across the
  cut are handled);
* **response-only logits** - the LM head runs only on the positions that predict response tokens;
* **memo** - a context already scored (e.g. the base of a second round) is not run again.

All log-probabilities are in nats, summed over the selected response tokens, computed in fp32.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .models import LoadedModel
from .pertoken import TokenAxis, axis_from_tokenizer
from .prompt import DEFAULT_TEMPLATE, PromptBuilder, Response

__all__ = [
    "ContextTooLong",
    "LocalScorer",
    "ProgressFn",
    "Scorer",
    "ScorerStats",
    "TokenLogProbs",
    "TokenScorer",
]

ProgressFn = Callable[[int, int, str], None]
"""Called as ``progress(done, total, what)``; it may raise to cancel the run."""


class ContextTooLong(ValueError):
    """The prompt plus response does not fit the model's window."""


@dataclass
class ScorerStats:
    """Work done by one scorer: forward passes, tokens run through the model, seconds spent."""

    forward_passes: int = 0
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
    """Teacher-forced response log-probs from a local transformers model."""

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
    ) -> None:
        self.lm = lm
        self.model_id = lm.model_id
        self.question = question
        self.reuse_prefix = reuse_prefix
        self.builder = PromptBuilder(lm.tokenizer, lm.tokenizer_id, template)
        self.response_ids = self.builder.response_ids(response)
        if not self.response_ids:
            raise ValueError("The response is empty: there is nothing to attribute.")
        self.mask = self.builder.response_mask(self.response_ids, response_chars)
        self.stats = ScorerStats()
        self._memo: dict[str, TokenLogProbs] = {}
        self._anchor: tuple[str, list[int], object] | None = None  # (context, ids, KV cache)

    # -- public ------------------------------------------------------------------------------------
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
        out = []
        for i, variant in enumerate(variants):
            if progress:
                progress(i, len(variants), self.model_id)
            out.append(self._score(variant, as_anchor=False))
        if progress:
            progress(len(variants), len(variants), self.model_id)
        return base_tok, out

    def masked_sum(self, token_lps: TokenLogProbs) -> float:
        """Sum of the per-token log-probs over the attributed response tokens (the mask), in nats."""
        return float(sum(lp for lp, on in zip(token_lps, self.mask, strict=True) if on))

    def response_axis(self) -> TokenAxis:
        """This scorer's response tokens with their character ranges in its decoding of the response."""
        return axis_from_tokenizer(self.model_id, self.builder, self.response_ids)

    # -- internals ---------------------------------------------------------------------------------
    def _score(self, context: str, as_anchor: bool) -> TokenLogProbs:
        """Score one context; an anchor keeps its KV cache for the variants that follow."""
        is_anchor = self._anchor is not None and self._anchor[0] == context
        if context in self._memo and (is_anchor or not as_anchor):
            return self._memo[context]
        ids = self.prompt_ids(context) + self.response_ids[:-1]
        prompt_len = len(ids) - len(self.response_ids) + 1
        reuse, cache = 0, None
        if as_anchor:
            from transformers import DynamicCache

            cache = DynamicCache()
        elif self.reuse_prefix and self._anchor is not None:
            # Keep at least the last prompt token to recompute: its logits predict response token 1.
            reuse = min(_common_prefix(ids, self._anchor[1]), prompt_len - 1)
            if reuse > 0:
                cache = _cropped_copy(self._anchor[2], reuse)
        lp = self._forward(ids[reuse:], cache)
        self.stats.tokens_reused += reuse
        if as_anchor:
            self._anchor = (context, ids, cache)
        self._memo[context] = lp
        return lp

    def _forward(self, input_ids: list[int], cache) -> TokenLogProbs:
        """Run the model on ``input_ids`` (after the cached prefix): the log-prob of each response token."""
        import torch

        n_resp = len(self.response_ids)
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.lm.model(
                input_ids=torch.tensor([input_ids], device=self.lm.device),
                past_key_values=cache,
                use_cache=cache is not None,
                logits_to_keep=n_resp,
            )
            logits = out.logits[0, -n_resp:].float()
            targets = torch.tensor(self.response_ids, device=logits.device)
            token_lp = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0].tolist()
        self.stats.forward_passes += 1
        self.stats.tokens_computed += len(input_ids)
        self.stats.seconds += time.perf_counter() - start
        return token_lp


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _cropped_copy(cache, length: int):
    """A new cache holding the first ``length`` positions of ``cache`` (the original is untouched).

    Slices are views; the forward pass concatenates new keys onto them, which allocates fresh
    tensors, so the anchor cache stays valid for the next ablation.
    """
    from transformers import DynamicCache

    new = DynamicCache()
    for layer_idx, layer in enumerate(cache.layers):
        new.update(layer.keys[:, :, :length], layer.values[:, :, :length], layer_idx)
    return new
