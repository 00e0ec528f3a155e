"""The learned one-pass estimate (AT2-style): every sentence's LOO predicted from one forward pass.

One teacher-forced pass over prompt + response (the prompt built as the scorer builds it) gives, per
layer and head, the attention mass the response rows put on each sentence (:mod:`attribot_core.features`);
a sentence's estimate is ``bias + sum_h w_h * sqrt(mass_h(sentence))``, the mass averaged over the
attributed response tokens, with head weights fitted to exact LOO of the same model
(:mod:`attribot_core.estimator`). Units: estimated nats of LOO, positive = the sentence supports the
response; an *estimate*, not a measurement.

A paragraph's estimate uses the same weights on the paragraph's mass, the sum of its sentences' masses
(attention mass adds up over tokens). Per-token values fall out: each attributed response token gets a
share of a span's estimate in proportion to its part of the span's mass
(:meth:`~attribot_core.estimator.EstimatorWeights.token_values`) plus an equal share of the bias, so
they add up to the span's estimate; a part of the response gets its share of it (re-run for that
part's own estimate).

Its pass. Weights that read the first ``depth`` layers (the shipped ones: 20) let the estimate's own pass
stop after them; such a pass never reaches the logits, so the result has no ``log p(response | context)``
(``log_prob_full`` is ``None``, as with ``proxy``). When exact LOO follows on the same scorer (the app's
estimate-first stage: ``share_base_pass=True``), the scorer's full base pass carries the capture instead,
so the estimate costs no pass of its own and the base log-prob is known. After generation, or a prefill of
the whole prompt (the scorer's :meth:`~attribot_core.scoring.LocalScorer.keys_at_hand`), its pass starts
from the keys and values computed then, in the model's dtype: only the rows that predict the response are
computed, so the estimate is on screen right after the answer, before any base pass (a 3,500-token
document on the 0.5B: README, *Long documents*).

Precision (``precision``): ``"auto"`` runs the estimate's own pass with bfloat16 matrix products where
that is faster (a float32 model on a CPU with native bfloat16: :func:`~attribot_core.features.bf16_is_faster`), 2-3x
on an AMX CPU, its estimates within the figures of ``bench/estimate_precision.py``; ``"model"``
keeps the model's own dtype (the same numbers on every machine). A shared base pass is always the exact
method's own.
"""

from __future__ import annotations

import numpy as np

from ..estimator import EstimatorWeights, shipped_weights
from ..features import AttentionCapture, attention_features, matmul_dtype, uses_bf16
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


def estimate(doc: Document, scorer: Scorer, *, weights: str = "", precision: str = "auto",
             share_base_pass: bool = False, progress: ProgressFn | None = None) -> MethodOutput:
    """Estimated LOO of every sentence and paragraph from one forward pass of ``scorer``'s model (nats).

    ``share_base_pass``: ride on the scorer's base pass when it has not run yet (exact LOO follows on this
    scorer); otherwise a pass of its own, stopped after the layers the weights read, in ``precision``
    (one of :data:`~attribot_core.features.PRECISIONS`, see the module's docstring).
    """
    import time

    from .baselines import local_prompt

    est = estimator_for(scorer, weights)
    _, prompt, owners, response = local_prompt(doc, scorer, "The estimate")
    if progress:
        progress(0, 1, scorer.model_id)
    start = time.perf_counter()
    observed = None
    kept = scorer.keys_at_hand()  # after generation or a prefill: its keys spare all but the response rows
    if kept is not None and kept.reusable(prompt + response[:-1], keep=len(response)) < len(prompt) - 1:
        # part of the prompt only (another question, a prefill stopped early): the rest in float32 could
        # cost more than the base pass it would ride on or a bfloat16 pass of its own, so as without it
        kept = None
    if share_base_pass and kept is None:  # a fresh scorer's base pass carries the capture; exact LOO finds it done
        capture = AttentionCapture(scorer.lm, len(prompt), len(response), owners, len(doc.sentences),
                                   depth=est.depth)
        observed = scorer.observed_base_pass(doc.text, capture)
    if observed is not None:
        feats = capture.features(observed, time.perf_counter() - start)
    else:
        feats = attention_features(scorer.lm, prompt, response, owners, len(doc.sentences), depth=est.depth,
                                   bf16=uses_bf16(scorer.lm, precision), after=kept)
        scorer.stats.forward_passes += 1
        scorer.stats.tokens_computed += len(prompt) + len(response) - 1 - feats.reused
        scorer.stats.tokens_reused += feats.reused
        scorer.stats.seconds += time.perf_counter() - start
    mask = np.asarray(scorer.mask, dtype=bool)
    bias_share = np.where(mask, est.bias / max(int(mask.sum()), 1), 0.0)
    lps = feats.token_log_probs
    base = None if lps is None else Scored(float(lps[mask].sum()), TokenValues.of(scorer.model_id, lps))
    out = MethodOutput.empty(doc, base)
    if observed is None:
        out.extra["estimate_matmuls"] = matmul_dtype(scorer.lm, feats.bf16)

    def scored(mass: np.ndarray) -> list[Scored]:
        """Each span of ``mass`` (tokens, spans, heads): its estimate and its tokens' shares of it."""
        shares = est.token_values(mass, mask)
        return [Scored(float(shares[mask, i].sum() + est.bias),
                       TokenValues.of(scorer.model_id, shares[:, i] + bias_share)) for i in range(shares.shape[1])]

    out.set_sentences(range(len(doc.sentences)), scored(feats.per_token), scorer.model_id)
    # a paragraph's mass is the sum of its sentences' (attention mass adds up over tokens)
    paragraphs = np.stack([feats.per_token[:, [s.index for s in doc.sentences_of(p.index)]].sum(axis=1)
                           for p in doc.paragraphs], axis=1)
    out.set_paragraphs(range(len(doc.paragraphs)), scored(paragraphs), scorer.model_id)
    out.span_note = NOTE
    if progress:
        progress(1, 1, scorer.model_id)
    return out
