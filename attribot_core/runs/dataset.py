"""Per-row figures of a batch, for finding the answers that look wrong (the Dataset page and exports).

Pure functions of one :class:`AttributionResult` (and the row's gold evidence strings, when the input
had them): nothing here recomputes a score. Scores are LOO errors in nats, positive = supports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..gold import gold_sentences
from ..result import AttributionResult, SpanScore
from ..segment import Passage

__all__ = ["passage_list", "row_metrics", "source_columns", "top_position", "top_share", "top_source"]

def _top(result: AttributionResult) -> SpanScore | None:
    top = result.top_k(1)
    return top[0] if top else None


def top_share(result: AttributionResult) -> float | None:
    """The top sentence's share of the positive score mass (0-1); None when no sentence scores > 0.

    1.0 means one sentence carries all the support; a small share means the support is spread out.
    """
    top = _top(result)
    mass = sum(s.score for s in result.sentences if s.score is not None and s.score > 0)
    if top is None or mass <= 0 or top.score <= 0:
        return None
    return top.score / mass


def top_position(result: AttributionResult) -> float | None:
    """Where the top sentence sits in the context: 0 = first sentence, 1 = last (by sentence index)."""
    top = _top(result)
    if top is None:
        return None
    n = len(result.sentences)
    return top.index / (n - 1) if n > 1 else 0.0


def top_source(result: AttributionResult) -> str | None:
    """The passage holding the top sentence, named as every view names it (``source 3 · Harbour board
    minutes``, from :meth:`AttributionResult.source_label`, plain text); None for a plain-string context or
    when no sentence is scored."""
    top = _top(result)
    if not result.passages or top is None or top.paragraph is None:
        return None
    return result.source_label(top.paragraph)


def passage_list(passages: Sequence[Passage]) -> list[dict[str, str]]:
    """The passages as a batch input writes them (``id``, ``title``, ``text``), so an export reads back in."""
    return [{"id": p.id, "title": p.title, "text": p.text} for p in passages]


def source_columns(passages: Sequence[Passage], result: AttributionResult | None) -> dict[str, Any]:
    """A passage row's extra columns: ``top_source`` and ``passages``; nothing for a plain-string row.

    ``passages`` are the row's own (from its request), so a row that failed or is still running names
    them too; ``top_source`` is None until it has a scored sentence. A plain-string row gets no key at
    all: its columns and values stay exactly those it had before passages existed.
    """
    if not passages:
        return {}
    return {"top_source": top_source(result) if result is not None else None, "passages": passage_list(passages)}


def row_metrics(result: AttributionResult | None, gold: Sequence[str] | None = None) -> dict[str, Any]:
    """The Dataset page's columns for one row (all None for a row without a result).

    ``gold_hit`` is None when the row has no gold labels, else whether the top sentence is gold.
    ``response_complete`` is False when generation stopped at the token limit (a truncated answer).
    """
    empty = {"top_sentence": None, "top_score": None, "log_prob_full": None, "max_abs_score": None,
             "top_share": None, "top_position": None, "gold_hit": None, "response_complete": None}
    if result is None:
        return empty
    top = _top(result)
    scored = [abs(s.score) for s in result.sentences if s.score is not None]
    gold_hit = None
    if gold:
        gold_hit = top is not None and top.index in gold_sentences(result, gold)
    complete = result.extra.get("response_complete")
    return {
        "top_sentence": top.text if top is not None else None,
        "top_score": top.score if top is not None else None,
        "log_prob_full": result.log_prob_full,
        "max_abs_score": max(scored) if scored else None,
        "top_share": top_share(result),
        "top_position": top_position(result),
        "gold_hit": gold_hit,
        "response_complete": bool(complete) if complete is not None else None,
    }
