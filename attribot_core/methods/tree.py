"""Tree LOO: hierarchical attribution that recurses, for documents of hundreds of paragraphs.

Paragraphs are grouped into ``branching`` contiguous blocks, each block into ``branching`` smaller
blocks, and so on down to single paragraphs (a balanced tree: every paragraph sits at the same
depth, ``ceil(log_branching(paragraphs))``). Each round scores the LOO of the nodes on the frontier,
keeps the top ``keep_paragraphs`` (ties kept), removes the text of the others from the context, and
descends into the kept nodes' children: blocks, then paragraphs, then sentences. A round costs at
most ``keep_paragraphs * branching`` passes, so the cost grows with log(paragraphs), not with their
number, and every later round runs on a context that shrinks by about ``keep / branching``.

As in :mod:`hierarchical`, a score is relative to the context of its round (the kept nodes only);
paragraphs and sentences of dropped blocks are not scored (``None``). With ``branching`` >= the
number of paragraphs it *is* ``hierarchical``; with ``keep_paragraphs`` >= the paragraphs nothing is
dropped and it is exact LOO. Block scores of every round are kept in ``extra["tree_rounds"]``.
"""

from __future__ import annotations

import math

from ..scoring import ProgressFn, Scorer
from ..segment import Document
from .base import MethodOutput, loo_round, replan, top_with_ties

__all__ = ["TREE_STAGES", "rest_passes", "tree", "tree_depth"]

TREE_STAGES = ("loo", "estimate")


def tree_depth(n_paragraphs: int, branching: int) -> int:
    """Block levels above the paragraphs: the smallest d with ``branching ** d >= n_paragraphs``."""
    return max(0, math.ceil(math.log(max(n_paragraphs, 1), branching) - 1e-9))


def rest_passes(frontier: list[list[int]], height: int, fresh_base: bool, branching: int, keep: int,
                sentences_of: dict[int, list[int]]) -> int:
    """Forward passes of the rounds still to come, from the ``frontier`` (blocks of paragraphs) of the next.

    The next round is known exactly (its base, when ``fresh_base``, and one pass per block); later rounds
    keep ``keep`` nodes of blocks of average size, so they are an estimate, refined after every round.
    """
    paragraphs = [p for block in frontier for p in block]
    per_paragraph = sum(len(sentences_of[p]) for p in paragraphs) / max(len(paragraphs), 1)
    size, width, passes = len(frontier), len(paragraphs) / max(len(frontier), 1), 0
    while True:
        passes += fresh_base + size
        kept = min(keep, size)
        fresh_base = kept < size
        if height == 0:
            return passes + fresh_base + math.ceil(kept * per_paragraph)  # the sentence round
        children = min(branching, max(1, math.ceil(width)))
        size, width, height = kept * children, width / children, height - 1


def _split(items: list[int], parts: int) -> list[list[int]]:
    """``items`` cut into ``min(parts, len(items))`` contiguous chunks of near-equal size."""
    parts = min(parts, len(items))
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (i < extra)
        out.append(items[start:end])
        start = end
    return out


def tree(
    doc: Document,
    scorer: Scorer,
    *,
    branching: int = 4,
    keep_paragraphs: int = 2,
    proxy_stage: str = "loo",
    progress: ProgressFn | None = None,
) -> MethodOutput:
    """Recursive LOO: blocks of paragraphs -> paragraphs -> sentences, keeping the top nodes each round.

    ``branching`` (>= 2) is the number of children per block; ``keep_paragraphs`` (>= 1) the nodes kept
    per round, at every level (blocks as well as paragraphs). Scores in nats, positive = supports.
    """
    if branching < 2:
        raise ValueError(f"branching must be at least 2, not {branching}.")
    if keep_paragraphs < 1:
        raise ValueError(f"keep_paragraphs must be at least 1, not {keep_paragraphs}.")
    if proxy_stage not in TREE_STAGES:
        raise ValueError(f"Unknown proxy_stage '{proxy_stage}' for tree; use one of {', '.join(TREE_STAGES)}.")
    sentences_of = {p.index: [s.index for s in doc.sentences_of(p.index)] for p in doc.paragraphs}
    if proxy_stage == "estimate":
        return _estimated_tree(doc, scorer, sentences_of, keep_paragraphs, progress)
    paragraphs = list(sentences_of)
    depth = tree_depth(len(paragraphs), branching)
    # The frontier: blocks (lists of paragraph indices) of one height, ``height`` levels above the
    # paragraphs; at height 0 each block is one paragraph.
    height = max(depth - 1, 0)
    frontier = _split(paragraphs, branching) if depth else [paragraphs]
    dropped: set[int] = set()
    out: MethodOutput | None = None
    rounds = []
    while True:
        groups = [[s for p in block for s in sentences_of[p]] for block in frontier]
        live = [("paragraph", block[0]) for block in frontier] if height == 0 else None  # blocks are not spans
        base_lp, scores = loo_round(scorer, doc, groups, dropped=dropped, progress=progress, spans=live)
        out = out or MethodOutput.empty(doc, base_lp)
        kept = top_with_ties(scores, keep_paragraphs)
        rounds.append({"blocks": frontier, "scores": scores, "kept": kept})
        dropped.update(s for i, g in enumerate(groups) if i not in kept for s in g)
        pruned = len(kept) < len(groups)  # the next round's base is a new context only when something went
        if height == 0:
            out.set_paragraphs([block[0] for block in frontier], scores, scorer.model_id)
            frontier = [frontier[i] for i in kept]
            replan(progress, pruned + sum(len(sentences_of[b[0]]) for b in frontier))  # the sentence round
            break
        frontier = [child for i in kept for child in _split(frontier[i], branching)]
        height -= 1
        replan(progress, rest_passes(frontier, height, pruned, branching, keep_paragraphs, sentences_of))
    kept_paragraphs = [b[0] for b in frontier]
    inside = [s for p in kept_paragraphs for s in sentences_of[p]]
    _, scores = loo_round(scorer, doc, [[s] for s in inside], dropped=dropped, progress=progress,
                          spans=[("sentence", s) for s in inside])
    out.set_sentences(inside, scores, scorer.model_id)
    out.extra.update(kept_paragraphs=kept_paragraphs, tree_rounds=rounds, tree_depth=depth)
    return out


def _estimated_tree(doc: Document, scorer: Scorer, sentences_of: dict[int, list[int]], keep_paragraphs: int,
                    progress: ProgressFn | None) -> MethodOutput:
    """The estimate ranks the paragraphs in one pass; exact LOO for the sentences of the top ones."""
    from .estimate import estimate

    out = estimate(doc, scorer, progress=progress)
    kept = top_with_ties([out.paragraph_scores[p] for p in sentences_of], keep_paragraphs)
    kept_paragraphs = [list(sentences_of)[i] for i in kept]
    inside = [s for p in kept_paragraphs for s in sentences_of[p]]
    dropped = [s.index for s in doc.sentences if s.index not in set(inside)]
    estimated = out.sentence_scores
    out.sentence_scores = [None] * len(doc.sentences)
    out.sentence_by = [None] * len(doc.sentences)
    out.sentence_tokens = [None] * len(doc.sentences)
    _, scores = loo_round(scorer, doc, [[s] for s in inside], dropped=dropped, progress=progress,
                          spans=[("sentence", s) for s in inside])
    out.set_sentences(inside, scores, scorer.model_id)
    out.extra.update(kept_paragraphs=kept_paragraphs, tree_depth=0,
                     tree_rounds=[{"blocks": [[p] for p in sentences_of], "kept": kept, "estimated": True,
                                   "scores": [out.paragraph_scores[p] for p in sentences_of],
                                   "sentence_estimates": estimated}])
    return out
