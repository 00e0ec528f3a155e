"""First-order LOO: every sentence's LOO predicted from one forward and one backward pass of the target.

The math is in :mod:`attribot_core.first_order`; this is the method around it: the prompt built as the
scorer builds it, each sentence's first-order LOO (nats, summed over every layer and head), each
paragraph's the sum of its sentences' (the first-order effects of spans add up exactly), and the base
log-prob from the same forward pass. Unlike ``estimate`` it needs no trained weights, so it works for any
model; it costs a backward pass too (with it, 2.0-2.8x a forward pass's time here, README) and the activations'
memory. Per-token values do not fall out (one backward pass gives the gradient of the whole attributed
response), so a part of the response needs a re-run, which attributes that part.
"""

from __future__ import annotations

import numpy as np

from ..first_order import first_order_effects
from ..pertoken import Scored, TokenValues
from ..scoring import ProgressFn, Scorer
from ..segment import Document
from .base import MethodOutput
from .baselines import local_prompt

__all__ = ["first_order"]

NOTE = "first-order effects are of the whole attributed response: re-run for a part of the response"


def first_order(doc: Document, scorer: Scorer, *, progress: ProgressFn | None = None) -> MethodOutput:
    """First-order LOO (nats) of every sentence and paragraph from one forward and one backward pass."""
    lm, prompt, owners, response = local_prompt(doc, scorer, "First-order LOO")
    if progress:
        progress(0, 1, scorer.model_id)
    effects = first_order_effects(lm, prompt, response, owners, len(doc.sentences), scorer.mask)
    scorer.stats.forward_passes += 1
    scorer.stats.tokens_computed += len(prompt) + len(response) - 1
    scorer.stats.seconds += effects.seconds
    lps = effects.token_log_probs
    mask = np.asarray(scorer.mask, dtype=bool)
    out = MethodOutput.empty(doc, Scored(float(lps[mask].sum()), TokenValues.of(scorer.model_id, lps)))
    sentences = effects.total()
    out.set_sentences(range(len(doc.sentences)), sentences.tolist(), scorer.model_id)
    paragraphs = [float(sum(sentences[s.index] for s in doc.sentences_of(p.index))) for p in doc.paragraphs]
    out.set_paragraphs(range(len(doc.paragraphs)), paragraphs, scorer.model_id)
    out.extra["backward_passes"] = 1
    out.span_note = NOTE
    if progress:
        progress(1, 1, scorer.model_id)
    return out
