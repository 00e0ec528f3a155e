"""Exact leave-one-out: one ablation per sentence (and per paragraph), all in the full context.

``loo`` and ``loo-naive`` are the same strategy; they differ only in the scorer (prefix KV reuse on
or off), which is what makes the naive one the reference the fast one is checked against.
"""

from __future__ import annotations

from ..scoring import ProgressFn, Scorer
from ..segment import Document
from .base import MethodOutput, loo_round, paragraph_groups


def exact_loo(
    doc: Document,
    scorer: Scorer,
    *,
    paragraphs: bool = True,
    progress: ProgressFn | None = None,
) -> MethodOutput:
    """LOO of every sentence, and of every paragraph when ``paragraphs`` is on, by ``scorer``.

    Per-token values: every span's deltas over ``scorer``'s response tokens, relative to the full
    context; a span's score for any part of the response is their sum over that part's tokens.
    """
    sentences = [[s.index] for s in doc.sentences]
    groups = sentences + (paragraph_groups(doc) if paragraphs else [])
    names = [("sentence", s.index) for s in doc.sentences]
    names += [("paragraph", p.index) for p in doc.paragraphs] if paragraphs else []
    base_lp, scores = loo_round(scorer, doc, groups, progress=progress, spans=names)
    out = MethodOutput.empty(doc, base_lp)
    out.set_sentences(range(len(sentences)), scores[: len(sentences)], scorer.model_id)
    if paragraphs:
        out.set_paragraphs(range(len(doc.paragraphs)), scores[len(sentences) :], scorer.model_id)
    out.sums_over_tokens()
    return out
