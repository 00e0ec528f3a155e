"""What every method shares: its output, and LOO over groups of sentences on one scorer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..scoring import ProgressFn, Scorer
from ..segment import Document

__all__ = ["MethodOutput", "loo_round", "top_with_ties"]


@dataclass
class MethodOutput:
    """Scores per paragraph and per sentence (``None`` = not scored) and who scored each.

    ``log_prob_full`` is the target's ``log p(response | full context)``, or ``None`` when the method
    never runs the target on the full context (proxy, pruning): that one pass would cost as much as
    everything else those methods do on a long context, and none of their scores need it.
    """

    log_prob_full: float | None
    paragraph_scores: list[float | None]
    paragraph_by: list[str | None]
    sentence_scores: list[float | None]
    sentence_by: list[str | None]
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, doc: Document, log_prob_full: float | None) -> MethodOutput:
        n_p, n_s = len(doc.paragraphs), len(doc.sentences)
        return cls(log_prob_full, [None] * n_p, [None] * n_p, [None] * n_s, [None] * n_s)

    def set_sentences(self, indices: Iterable[int], scores: Sequence[float], by: str) -> None:
        for i, score in zip(indices, scores, strict=True):
            self.sentence_scores[i] = score
            self.sentence_by[i] = by

    def set_paragraphs(self, indices: Iterable[int], scores: Sequence[float], by: str) -> None:
        for i, score in zip(indices, scores, strict=True):
            self.paragraph_scores[i] = score
            self.paragraph_by[i] = by


def loo_round(
    scorer: Scorer,
    doc: Document,
    groups: Sequence[Iterable[int]],
    *,
    dropped: Iterable[int] = (),
    progress: ProgressFn | None = None,
) -> tuple[float, list[float]]:
    """LOO of each group of sentences, relative to the context without ``dropped`` sentences.

    Returns ``log p(response | base)`` and, per group, ``log p(response | base) - log p(response |
    base without the group)`` in nats.
    """
    dropped = set(dropped)
    base = doc.without(dropped)
    variants = [doc.without(dropped | set(g)) for g in groups]
    base_lp, lps = scorer.log_probs(base, variants, progress)
    return base_lp, [base_lp - lp for lp in lps]


def paragraph_groups(doc: Document) -> list[list[int]]:
    return [[s.index for s in doc.sentences_of(p.index)] for p in doc.paragraphs]


def top_with_ties(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the ``k`` largest scores, plus any tied with the k-th (in index order)."""
    if k <= 0 or not scores:
        return []
    if k >= len(scores):
        return list(range(len(scores)))
    cut = sorted(scores, reverse=True)[k - 1]
    return [i for i, s in enumerate(scores) if s >= cut]
