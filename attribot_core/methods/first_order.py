"""First-order LOO: every sentence's LOO predicted from one forward and one backward pass of the target.

The math is in :mod:`attribot_core.first_order`; this is the method around it: the prompt built as the
scorer builds it, each sentence's first-order LOO (nats, summed over every layer and head), each
paragraph's the sum of its sentences' (the first-order effects of spans add up exactly), and, from a
float32 pass, the base log-prob from the same forward pass. Unlike ``estimate`` it needs no trained
weights, so it works for any model; it costs a backward pass too and the activations' memory. Per-token
values do not fall out (one backward pass gives the gradient of the whole attributed response), so a part
of the response needs a re-run, which attributes that part.

Its cost (``bench/first_order_variants.py``, README): ``precision="auto"`` runs the pass with bfloat16 matrix
products where that is faster (a float32 model on a CPU with native bfloat16), as the estimate's pass; then,
as with the estimate, the result has no ``log p(response | context)``. ``layers="upper half"`` takes the effects through
the upper half of the layers only, so the backward pass stops half-way down. ``rows="question and response"``
takes only the edges of the rows after the context (the question's and the response's), so the context runs
once without autograd and the backward pass covers those few rows: about one forward pass's time
(:data:`~attribot_core.first_order.ROWS`).
"""

from __future__ import annotations

import numpy as np

from ..features import matmul_dtype, model_shape, uses_bf16
from ..first_order import ROWS, first_order_effects
from ..pertoken import Scored, TokenValues
from ..scoring import ProgressFn, Scorer
from ..segment import Document
from .base import MethodOutput
from .baselines import local_prompt

__all__ = ["LAYERS", "ROWS", "first_order"]

LAYERS = ("all", "upper half")
"""Which layers' effects ``first-order`` sums: every layer, or the upper half (a backward pass half as deep)."""

NOTE = "first-order effects are of the whole attributed response: re-run for a part of the response"


def first_order(doc: Document, scorer: Scorer, *, precision: str = "auto", layers: str = "all", rows: str = "all",
                progress: ProgressFn | None = None) -> MethodOutput:
    """First-order LOO (nats) of every sentence and paragraph from one forward and one backward pass.

    ``precision``: one of :data:`~attribot_core.features.PRECISIONS`; ``layers``: one of :data:`LAYERS`;
    ``rows``: one of :data:`~attribot_core.first_order.ROWS`. Through the rows after the context, the keys and
    values the scorer has at hand (:meth:`~attribot_core.scoring.LocalScorer.keys_at_hand`: generation's, a
    prefill's, its base pass's) spare the context's pass.
    """
    lm, prompt, owners, response = local_prompt(doc, scorer, "First-order LOO")
    if progress:
        progress(0, 1, scorer.model_id)
    after = scorer.keys_at_hand() if rows != "all" else None
    first_layer = 0 if layers == "all" else model_shape(lm.model)[0] // 2
    effects = first_order_effects(lm, prompt, response, owners, len(doc.sentences), scorer.mask,
                                  first_layer=first_layer, bf16=uses_bf16(lm, precision), rows=rows, after=after)
    scorer.stats.forward_passes += 1
    scorer.stats.tokens_computed += len(prompt) + len(response) - 1 - effects.reused
    scorer.stats.tokens_reused += effects.reused
    scorer.stats.seconds += effects.seconds
    lps = effects.token_log_probs
    mask = np.asarray(scorer.mask, dtype=bool)
    base = None if effects.bf16 else Scored(float(lps[mask].sum()), TokenValues.of(scorer.model_id, lps))
    out = MethodOutput.empty(doc, base)  # a bfloat16 pass's log-probs are not the ones exact LOO stands on
    sentences = effects.total()
    out.set_sentences(range(len(doc.sentences)), sentences.tolist(), scorer.model_id)
    paragraphs = [float(sum(sentences[s.index] for s in doc.sentences_of(p.index))) for p in doc.paragraphs]
    out.set_paragraphs(range(len(doc.paragraphs)), paragraphs, scorer.model_id)
    out.extra["backward_passes"] = 1
    out.extra["estimate_matmuls"] = matmul_dtype(lm, effects.bf16)
    out.span_note = NOTE
    if progress:
        progress(1, 1, scorer.model_id)
    return out
