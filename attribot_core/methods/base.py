"""What every method shares: its output, and LOO over groups of sentences on one scorer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ..scoring import ProgressFn, Scorer
from ..segment import Document

__all__ = ["MethodOutput", "PartialFn", "loo_round", "reporting_partial", "top_with_ties"]

PartialFn = Callable[[str, dict[int, float]], None]
"""Called as ``partial(level, {span index: score})`` as soon as those scores are known."""

_PARTIAL: ContextVar[PartialFn | None] = ContextVar("attribot_partial", default=None)


@contextmanager
def reporting_partial(fn: PartialFn) -> Iterator[None]:
    """Within this block, every LOO round reports its span scores as they are computed.

    A context variable rather than one more parameter of every method: live results are a concern of
    whoever runs the method (the run layer), not of the method's strategy. Scores reported here are
    provisional: a later round (pruning's target pass) may replace a span's score.
    """
    token = _PARTIAL.set(fn)
    try:
        yield
    finally:
        _PARTIAL.reset(token)


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
    spans: Sequence[tuple[str, int]] | None = None,
) -> tuple[float, list[float]]:
    """LOO of each group of sentences, relative to the context without ``dropped`` sentences.

    Returns ``log p(response | base)`` and, per group, ``log p(response | base) - log p(response |
    base without the group)`` in nats. ``spans`` names each group's span (``("sentence", i)`` or
    ``("paragraph", j)``) so that, inside :func:`reporting_partial`, scores are reported as they arrive.
    """
    dropped = set(dropped)
    base = doc.without(dropped)
    variants = [doc.without(dropped | set(g)) for g in groups]
    report = _PARTIAL.get()
    if report is None or spans is None:
        base_lp, lps = scorer.log_probs(base, variants, progress)
        return base_lp, [base_lp - lp for lp in lps]
    # Ask in chunks of the scorer's batch size; the scorer's memo keeps the base from being run again.
    step = max(1, int(getattr(scorer, "batch_size", 1) or 1))
    base_lp, scores = scorer.log_probs(base, [], None)[0], []
    offset_progress = _Offset(progress, len(variants))
    for at in range(0, len(variants), step):
        offset_progress.offset = at
        _, lps = scorer.log_probs(base, variants[at : at + step], offset_progress)
        chunk = [base_lp - lp for lp in lps]
        scores += chunk
        by_level: dict[str, dict[int, float]] = {}
        for (level, index), score in zip(spans[at : at + step], chunk, strict=True):
            by_level.setdefault(level, {})[index] = score
        for level, values in by_level.items():
            report(level, values)
    if not variants and progress:
        progress(0, 0, scorer.model_id)
    return base_lp, scores


class _Offset:
    """Progress of one chunk of a round, reported as progress of the whole round (no repeats)."""

    def __init__(self, progress: ProgressFn | None, total: int) -> None:
        self.progress, self.total, self.offset, self.last = progress, total, 0, -1

    def __call__(self, done: int, total: int, what: str) -> None:
        overall = self.offset + done
        if self.progress is not None and overall != self.last:
            self.last = overall
            self.progress(overall, self.total, what)


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
