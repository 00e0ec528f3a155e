"""The learned one-pass estimate (AT2-style): every sentence's LOO predicted from one forward pass.

One teacher-forced pass over prompt + response (the prompt built as the scorer builds it) gives, per
layer and head, the attention mass the response rows put on each sentence (:mod:`attribot_core.features`);
a sentence's estimate is ``bias + sum_h w_h * mass_h(sentence)``, the mass averaged over the attributed
response tokens, with head weights fitted to exact LOO of the same model (:mod:`attribot_core.estimator`).
Units: estimated nats of LOO, positive = the sentence supports the response; an *estimate*, not a
measurement.

Paragraph estimates use the same weights on the paragraph's features, which are the sums of its
sentences' features (attention mass adds up over tokens), so a paragraph's estimate is the sum of its
sentences' estimates minus (sentences - 1) biases: one bias per span. Per-token values fall out: token
t's value is ``(w . mass_t(span) + bias) / n`` over the n attributed tokens, so they add up to the
span's estimate; a part of the response gets its share of it (re-run for that part's own estimate).
"""

from __future__ import annotations

import numpy as np

from ..estimator import EstimatorWeights, shipped_weights
from ..features import AttentionCapture, attention_features
from ..pertoken import Scored, TokenValues
from ..scoring import ProgressFn, Scorer
from ..segment import Document
from .base import MethodOutput

__all__ = ["estimate", "estimator_for"]

NOTE = ("the estimate's per-token values are attention-based predictions, not measured deltas: re-run for a part "
        "of the response")


def estimator_for(scorer: Scorer, weights: str = "") -> EstimatorWeights:
    """The weights for the scorer's model: the file ``weights``, else the package's; refused for another model."""
    lm = getattr(scorer, "lm", None)
    if lm is None or getattr(scorer, "builder", None) is None:
        raise NotImplementedError("The estimate needs a local transformers scorer (LocalScorer).")
    found = EstimatorWeights.load(weights) if weights else shipped_weights(lm)
    found.check_for(lm)
    return found


def estimate(doc: Document, scorer: Scorer, *, weights: str = "",
             progress: ProgressFn | None = None) -> MethodOutput:
    """Estimated LOO of every sentence and paragraph from one forward pass of ``scorer``'s model (nats)."""
    import time

    from .baselines import sentence_token_map

    est = estimator_for(scorer, weights)
    scorer.check_fits(doc.text)
    if progress:
        progress(0, 1, scorer.model_id)
    prompt, owners = sentence_token_map(scorer.builder, doc, scorer.question)
    response = list(scorer.response_ids)
    start = time.perf_counter()
    # a fresh scorer's base pass carries the capture (exact LOO that follows on it then starts with its
    # base pass done); otherwise one pass of its own
    capture = AttentionCapture(scorer.lm, len(prompt), len(response), owners, len(doc.sentences))
    observed = scorer.observed_base_pass(doc.text, capture)
    if observed is not None:
        feats = capture.features(observed, time.perf_counter() - start)
    else:
        feats = attention_features(scorer.lm, prompt, response, owners, len(doc.sentences))
        scorer.stats.forward_passes += 1
        scorer.stats.tokens_computed += len(prompt) + len(response) - 1
        scorer.stats.seconds += time.perf_counter() - start
    mask = np.asarray(scorer.mask, dtype=bool)
    w = np.asarray(est.weights)
    n_tokens = max(int(mask.sum()), 1)
    # (tokens, sentences): each attributed row's share of the weighted mass averaged over the attributed rows
    per_token = feats.per_token @ w / n_tokens
    bias_share = np.where(mask, est.bias / n_tokens, 0.0)
    log_prob_full = float(feats.token_log_probs[mask].sum())
    base = Scored(log_prob_full, TokenValues.of(scorer.model_id, feats.token_log_probs))
    out = MethodOutput.empty(doc, base)
    scores = [Scored(float(per_token[mask, i].sum() + est.bias), TokenValues.of(scorer.model_id,
                                                                                 per_token[:, i] + bias_share))
              for i in range(len(doc.sentences))]
    out.set_sentences(range(len(doc.sentences)), scores, scorer.model_id)
    par = []
    for p in doc.paragraphs:
        inside = [s.index for s in doc.sentences_of(p.index)]
        values = per_token[:, inside].sum(axis=1)
        par.append(Scored(float(values[mask].sum() + est.bias), TokenValues.of(scorer.model_id, values + bias_share)))
    out.set_paragraphs(range(len(doc.paragraphs)), par, scorer.model_id)
    out.span_note = NOTE
    if progress:
        progress(1, 1, scorer.model_id)
    return out
