"""Hierarchical LOO: paragraphs first, then sentences only inside the top-k paragraphs.

Sentence scores are relative to the pruned context (the kept paragraphs), as in AttriBoT; sentences
of dropped paragraphs are not scored (``None``), never 0.

Per-token values (target tokens): paragraphs relative to the full context, sentences relative to the
pruned context. For part of the response, paragraph scores are their sums over its tokens; sentence
scores are too, but only while that part's own top-k paragraphs are the run's (else a re-run would
score other sentences, against another pruned context).
"""

from __future__ import annotations

from ..pertoken import RULE_KEPT
from ..scoring import ProgressFn, Scorer
from ..segment import Document
from .base import MethodOutput, loo_round, paragraph_groups, replan, top_with_ties


def hierarchical(
    doc: Document,
    scorer: Scorer,
    *,
    keep_paragraphs: int = 2,
    progress: ProgressFn | None = None,
) -> MethodOutput:
    base_lp, par_scores = loo_round(scorer, doc, paragraph_groups(doc), progress=progress,
                                    spans=[("paragraph", p.index) for p in doc.paragraphs])
    out = MethodOutput.empty(doc, base_lp)
    out.set_paragraphs(range(len(doc.paragraphs)), par_scores, scorer.model_id)
    kept = top_with_ties(par_scores, keep_paragraphs)
    dropped = [s.index for s in doc.sentences if s.parent not in kept]
    inside = [s.index for s in doc.sentences if s.parent in kept]
    # the sentence round: a base pass on the pruned context (none when nothing was pruned), one per sentence
    replan(progress, bool(dropped) + len(inside))
    _, scores = loo_round(scorer, doc, [[i] for i in inside], dropped=dropped, progress=progress,
                          spans=[("sentence", i) for i in inside])
    out.set_sentences(inside, scores, scorer.model_id)
    out.extra["kept_paragraphs"] = kept
    out.span_rule, out.span_note = RULE_KEPT, ""
    return out
