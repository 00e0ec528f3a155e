"""Proxy pruning: a small proxy model ranks all sentences, the target rescores only its top-m.

The target's scores are LOO within the pruned context (only the kept sentences), so with m = all
sentences this is exactly the target's LOO. Sentences outside the top-m keep the proxy's score and
are marked as scored by the proxy. ``proxy_stage`` says how the proxy ranks them:

* ``loo`` - exact LOO of every sentence;
* ``hierarchical`` - paragraphs first, sentences of the top ``keep_paragraphs`` only (the full
  AttriBoT stack: hierarchical + proxy + pruning);
* ``tree`` - recursive blocks -> paragraphs -> sentences (:mod:`tree`, with ``branching`` and
  ``keep_paragraphs``), for documents of hundreds of paragraphs;
* ``estimate`` - the learned one-pass estimate (:mod:`estimate`) of the proxy ranks every sentence in one
  forward pass (the proxy's shipped estimator weights; called without a proxy, the target's own estimate
  ranks them, so "one pass plus m" needs no second model);
* ``first-order`` - first-order LOO (:mod:`first_order`) of the proxy ranks every sentence from one forward
  and one backward pass (no weights needed; called without a proxy, the target's own);
* ``auto`` (default) - ``hierarchical`` when ``keep_paragraphs`` is given, else ``loo``.

The target only ever sees the pruned context, so ``log_prob_full`` is ``None``; ``extra`` keeps
``log p(response | pruned context)`` under the target (how much of the answer the kept sentences
still support) and the proxy's ``log p(response | full context)``.

Per-token values: the target's rescored sentences over the target's tokens (relative to the pruned
context), the others over the proxy's tokens (relative to the proxy's context). They are kept for
views, but a part of the response cannot be attributed from them: which sentences the target
rescores depends on the proxy's ranking *for that part*, and the target's scores on the pruned
context those sentences make, so it needs a re-run.
"""

from __future__ import annotations

from ..scoring import ProgressFn, Scorer
from ..segment import Document
from .base import Followed, MethodOutput, loo_round, replan, top_with_ties
from .estimate import estimate
from .first_order import first_order
from .hierarchical import hierarchical
from .loo import exact_loo
from .tree import tree

PROXY_STAGES = ("auto", "loo", "hierarchical", "tree", "estimate", "first-order")

RERUN_NOTE = ("pruning mixes proxy and target scores, and which sentences the target rescores depends on "
              "the proxy's ranking for the attributed part of the response: re-run for a part")


def pruning(
    doc: Document,
    target: Scorer,
    proxy: Scorer | None,
    *,
    keep_sentences: int = 5,
    keep_paragraphs: int | None = None,
    proxy_stage: str = "auto",
    branching: int = 4,
    progress: ProgressFn | None = None,
) -> MethodOutput:
    if proxy_stage not in PROXY_STAGES:
        raise ValueError(f"Unknown proxy_stage '{proxy_stage}'; use one of {', '.join(PROXY_STAGES)}.")
    if proxy_stage == "auto":
        proxy_stage = "loo" if keep_paragraphs is None else "hierarchical"
    proxy = proxy if proxy is not None else target
    # the proxy stage's re-planned totals still count the target's round: its base plus the m rescored
    staged = Followed(progress, 1 + min(keep_sentences, len(doc.sentences)))
    if proxy_stage == "estimate":
        out = estimate(doc, proxy, progress=staged)
    elif proxy_stage == "first-order":
        out = first_order(doc, proxy, progress=staged)
    elif proxy_stage == "loo":
        out = exact_loo(doc, proxy, paragraphs=False, progress=staged)
    elif proxy_stage == "hierarchical":
        out = hierarchical(doc, proxy, keep_paragraphs=keep_paragraphs or 2, progress=staged)
    else:
        out = tree(doc, proxy, branching=branching, keep_paragraphs=keep_paragraphs or 2, progress=staged)
    candidates = [i for i, s in enumerate(out.sentence_scores) if s is not None]
    ranked = top_with_ties([out.sentence_scores[i] for i in candidates], keep_sentences)
    kept = [candidates[r] for r in ranked]
    dropped = [s.index for s in doc.sentences if s.index not in kept]
    replan(progress, 1 + len(kept))  # ties can keep more than m
    pruned_lp, scores = loo_round(target, doc, [[i] for i in kept], dropped=dropped, progress=progress,
                                  spans=[("sentence", i) for i in kept])
    out.set_sentences(kept, scores, target.model_id)
    out.extra.update(kept_sentences=kept, log_prob_pruned=float(pruned_lp), proxy_log_prob_full=out.log_prob_full)
    out.log_prob_full = None
    out.span_rule, out.span_note = None, RERUN_NOTE
    return out
