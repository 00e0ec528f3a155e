"""Faithfulness measures of the literature: does removing what a method ranks highest change the response?

Agreement with exact LOO (:mod:`attribot_core.agreement`) says how closely a fast method tracks the
reference; these say how well *any* method's scores, the reference's included, predict the model's
behaviour when context is actually removed. Both re-score the fixed response with the target model, so
they cost extra forward passes and are opt-in (``attribot batch --measures topk,lds``):

* **top-k log-probability drop** (ContextCite, Cohen-Wang et al. 2024; AT2, Cohen-Wang et al. 2025):
  remove the ``k`` sentences the method ranks highest and re-score; drop =
  ``log p(R | C) - log p(R | C without them)`` in nats, for k = 1, 3, 5. Higher is better, and exact
  LOO is not its ceiling (LOO removes one sentence at a time; this removes k together).
* **LDS**, the linear datamodeling score (Park et al. 2023, TRAK): ``m`` random masks keep each
  sentence with probability 0.5; per mask, the actual ``log p(R | masked C)`` against the method's
  prediction, the sum of the scores of the kept sentences; the Spearman correlation over the masks.

Masks are a function of the row (its context, question and response), never of the method, so every
method of a row is measured on the same masks, and their log-probs can be reused: :func:`measure`
takes a :class:`LogProbCache` keyed by (row, mask), which the batch layer backs with a table of the run
store, so sibling batches (``NAME-loo``, ``NAME-tree``, ...) pay for the masks once.

Results carry the measures in ``extra`` (declared in :class:`~attribot_core.result.ResultExtra`):
``topk_drop`` (``{"1": nats, "3": ..., "5": ...}``), ``lds``, ``lds_masks``, ``measures_passes`` and
``measures_seconds``. An undefined value is None (LDS of a method whose prediction is the same for every
mask; a top-k drop where the context has fewer than k sentences).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from .metrics import spearman
from .models import LoadedModel
from .prompt import DEFAULT_TEMPLATE, Response
from .result import AttributionResult
from .scoring import LocalScorer, Scorer
from .segment import segment

__all__ = [
    "LDS_MASKS",
    "MEASURES",
    "TOPK_KS",
    "LogProbCache",
    "MemoryCache",
    "lds",
    "lds_masks",
    "measure",
    "measured",
    "parse_measures",
    "row_key",
    "row_measures",
    "scorer_for",
    "topk_drop",
    "with_measures",
]

MEASURES = ("topk", "lds")
"""The measures :func:`measure` knows, by the names ``--measures`` takes."""
TOPK_KS = (1, 3, 5)
"""The k of the top-k log-probability drop (ContextCite's and AT2's)."""
LDS_MASKS = 32
"""Random masks per row for LDS by default: each costs one forward pass, shared by every method of the row."""

Mask = tuple[bool, ...]  # one entry per sentence: True = kept


class LogProbCache(Protocol):
    """``log p(R | masked C)`` by (row, mask), so a row's masks are scored once for all its methods."""

    def get_log_probs(self, row: str, masks: Sequence[str]) -> dict[str, float]:
        """The known log-probs of ``row`` among ``masks`` (mask strings: '1' kept, '0' removed)."""

    def put_log_probs(self, row: str, values: Mapping[str, float]) -> None:
        """Keep newly computed log-probs of ``row`` by mask string."""


class MemoryCache:
    """A :class:`LogProbCache` in a dict (one process; the batch layer uses the run store's table instead)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], float] = {}

    def get_log_probs(self, row: str, masks: Sequence[str]) -> dict[str, float]:
        return {m: self.values[row, m] for m in masks if (row, m) in self.values}

    def put_log_probs(self, row: str, values: Mapping[str, float]) -> None:
        self.values.update({(row, m): v for m, v in values.items()})


# -- the row: what the measures depend on ----------------------------------------------------------
def _digest(parts: Sequence[Any]) -> str:
    return hashlib.sha256(json.dumps(list(parts), ensure_ascii=False).encode("utf-8")).hexdigest()


def row_key(result: AttributionResult, model_id: str) -> str:
    """What a masked log-prob depends on besides the mask: the scoring model, the inputs, the response
    (and the part of it attributed) and the prompt template. Equal across methods of one row."""
    return _digest([model_id, result.context, result.question, result.response,
                    list(result.response_span) if result.response_span else None, result.template])


def _row_seed(result: AttributionResult) -> int:
    """The masks' seed: from the row's content (context, question, response), never from the method."""
    return int(_digest([result.context, result.question, result.response])[:16], 16)


def lds_masks(result: AttributionResult, m: int = LDS_MASKS) -> list[Mask]:
    """The ``m`` LDS masks of ``result``'s row: each sentence kept with probability 0.5, seeded by the row."""
    n = len(result.sentences)
    keep = np.random.default_rng(_row_seed(result)).random((m, n)) < 0.5
    return [tuple(bool(x) for x in row) for row in keep]


def _mask_text(mask: Mask) -> str:
    return "".join("1" if kept else "0" for kept in mask)


def _log_probs(result: AttributionResult, scorer: Scorer, masks: Sequence[Mask],
               cache: LogProbCache | None) -> list[float]:
    """``log p(R | context with only the mask's sentences)`` for each mask, in nats; cached ones are not rerun.

    The full context is the base of the scorer's call, so the masked contexts reuse its prefix.
    """
    key = row_key(result, scorer.model_id)
    names = [_mask_text(m) for m in masks]
    known = cache.get_log_probs(key, names) if cache is not None else {}
    todo = {name: mask for name, mask in zip(names, masks, strict=True) if name not in known}
    if todo:
        doc = segment(result.context)
        contexts = [doc.without(i for i, kept in enumerate(mask) if not kept) for mask in todo.values()]
        full, values = scorer.log_probs(result.context, contexts)
        new = {**dict(zip(todo, values, strict=True)), _mask_text((True,) * len(result.sentences)): full}
        known = {**known, **new}
        if cache is not None:
            cache.put_log_probs(key, new)
    return [known[name] for name in names]


# -- the measures ----------------------------------------------------------------------------------
def _ranked(result: AttributionResult) -> list[int]:
    """Sentence indices, highest score first; a not-scored sentence ranks below every scored one, and ties
    go to the earlier sentence (the rule of :func:`attribot_core.metrics.top_k`)."""
    scores = result.scores("sentence")
    return sorted(range(len(scores)), key=lambda i: (scores[i] is None, -(scores[i] or 0.0), i))


def topk_drop(result: AttributionResult, scorer: Scorer, ks: Iterable[int] = TOPK_KS,
              cache: LogProbCache | None = None) -> dict[str, float | None]:
    """``{str(k): log p(R | C) - log p(R | C without the method's top-k sentences)}`` in nats.

    Positive: removing what the method ranks highest makes the response less likely (higher is better).
    None where the context has fewer than ``k`` sentences.
    """
    n = len(result.sentences)
    ranked = _ranked(result)
    ks = list(ks)
    full = (True,) * n
    masks = [tuple(i not in ranked[:k] for i in range(n)) for k in ks if k <= n]
    values = _log_probs(result, scorer, [full, *masks], cache)
    drops = iter(values[0] - v for v in values[1:])
    return {str(k): next(drops) if k <= n else None for k in ks}


def lds(result: AttributionResult, scorer: Scorer, m: int = LDS_MASKS,
        cache: LogProbCache | None = None) -> float | None:
    """Spearman, over the row's ``m`` masks, of the actual ``log p(R | masked C)`` and the method's
    prediction (the sum of the kept sentences' scores; a not-scored sentence counts 0). None when either
    is constant over the masks (e.g. a method that scored nothing)."""
    masks = lds_masks(result, m)
    actual = _log_probs(result, scorer, masks, cache)
    scores = [s or 0.0 for s in result.scores("sentence")]
    predicted = [sum(s for s, kept in zip(scores, mask, strict=True) if kept) for mask in masks]
    rho = spearman(predicted, actual)
    return None if math.isnan(rho) else rho


def parse_measures(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"topk,lds"`` (or a list) as a tuple of known measure names; ``ValueError`` naming an unknown one."""
    names = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    unknown = [n for n in names if n not in MEASURES]
    if unknown:
        raise ValueError(f"Unknown measure {', '.join(unknown)}; choose from {', '.join(MEASURES)}.")
    return tuple(dict.fromkeys(names))


def measured(result: AttributionResult, measures: Iterable[str], masks: int = LDS_MASKS) -> bool:
    """True when ``result`` already carries every one of ``measures`` (LDS with ``masks`` masks)."""
    extra = result.extra
    return all((name == "topk" and isinstance(extra.get("topk_drop"), dict))
               or (name == "lds" and "lds" in extra and extra.get("lds_masks") == masks) for name in measures)


def measure(result: AttributionResult, scorer: Scorer, measures: Iterable[str] = MEASURES, *,
            masks: int = LDS_MASKS, cache: LogProbCache | None = None) -> dict[str, Any]:
    """The ``extra`` entries of ``measures`` for ``result``, scored with ``scorer`` (the target model, on
    the result's fixed response): ``topk_drop``, ``lds`` and ``lds_masks``, and what they cost
    (``measures_passes``: forward passes run now, cached masks cost none; ``measures_seconds``)."""
    measures = parse_measures(measures)
    passes, start = scorer.stats.forward_passes, time.perf_counter()
    out: dict[str, Any] = {}
    if "topk" in measures:
        out["topk_drop"] = topk_drop(result, scorer, cache=cache)
    if "lds" in measures:
        out["lds"], out["lds_masks"] = lds(result, scorer, masks, cache), masks
    out["measures_passes"] = scorer.stats.forward_passes - passes
    out["measures_seconds"] = time.perf_counter() - start
    return out


def with_measures(result: AttributionResult, values: Mapping[str, Any]) -> AttributionResult:
    """``result`` with measured values in ``extra``; the cost adds up over measuring sessions."""
    prior = result.extra
    return result.with_extra(**{**values,
                                "measures_passes": prior.get("measures_passes", 0) + values["measures_passes"],
                                "measures_seconds": prior.get("measures_seconds", 0.0)
                                + values["measures_seconds"]})


def row_measures(result: AttributionResult) -> dict[str, float]:
    """The measures a result carries, flat (``topk_drop@1``, ``topk_drop@3``, ``topk_drop@5``, ``lds``);
    NaN for one not measured or undefined (what :mod:`attribot_core.agreement` averages)."""
    drops = result.extra.get("topk_drop") or {}
    values = {f"topk_drop@{k}": drops.get(str(k)) for k in TOPK_KS}
    values["lds"] = result.extra.get("lds")
    return {k: float("nan") if v is None else float(v) for k, v in values.items()}


def scorer_for(result: AttributionResult, lm: LoadedModel, response: Response | None = None) -> LocalScorer:
    """A scorer of ``result``'s fixed response on ``lm`` with the result's template and response part.

    ``response`` carries the generated token ids when they are known (re-encoding the text can split it
    differently); without it the text is encoded.
    """
    if response is None or response.text != result.response:
        response = Response(result.response)
    return LocalScorer(lm, result.question, response, template=result.template or DEFAULT_TEMPLATE,
                       response_chars=result.response_span)
