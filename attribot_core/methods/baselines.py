"""Baselines AttriBoT is compared against: a ContextCite-style surrogate and raw attention.

* ``surrogate`` (ContextCite-style): score the response under ``n_ablations`` random ablations (each
  sentence kept with probability ``keep_prob``), fit a sparse linear model ``log p(response | mask) ~
  w . mask + b`` with scikit-learn's :class:`~sklearn.linear_model.Lasso`, and report each sentence's
  weight ``w_i``. Units: nats of response log-probability gained by keeping the sentence (positive =
  supports the response), i.e. the same units and sign as LOO. Paragraph scores are the sum of their
  sentences' weights, which is what the linear model predicts for deleting the whole paragraph.
  Cost: ``n_ablations + 1`` forward passes of the target (the full context is one more sample).
* ``attention``: one forward pass of the target over prompt + response with eager attention; a
  sentence's score is the attention mass that the positions predicting the response tokens put on
  the sentence's tokens, averaged over heads and layers. Units: a fraction of attention (in [0, 1],
  summed over all sentences at most 1, the rest goes to the template, question and response), **not
  nats**; only its ranking is comparable to LOO. Paragraph scores are the sums of their sentences'.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import numpy as np

from ..scoring import ProgressFn, Scorer
from ..segment import Document
from .base import MethodOutput

__all__ = ["attention", "local_prompt", "sentence_token_map", "surrogate"]


# -- ContextCite-style surrogate ---------------------------------------------------------------------
def ablation_masks(n_sentences: int, n_ablations: int, seed: int, keep_prob: float) -> np.ndarray:
    """``(n_ablations, n_sentences)`` booleans, True = sentence kept; reproducible from ``seed``."""
    if not 0.0 < keep_prob < 1.0:
        raise ValueError(f"keep_prob must be strictly between 0 and 1, not {keep_prob}.")
    if n_ablations < 1:
        raise ValueError(f"n_ablations must be at least 1, not {n_ablations}.")
    rng = np.random.default_rng(seed)
    return rng.random((n_ablations, n_sentences)) < keep_prob


def fit_surrogate(masks: np.ndarray, log_probs: Sequence[float], alpha: float) -> tuple[np.ndarray, float, float]:
    """Lasso fit of log-probs on 0/1 keep masks: ``(weights, intercept, in-sample R^2)``."""
    from sklearn.linear_model import Lasso

    x = np.asarray(masks, dtype=float)
    y = np.asarray(log_probs, dtype=float)
    if np.ptp(y) == 0.0:
        return np.zeros(x.shape[1]), float(y.mean()), float("nan")
    model = Lasso(alpha=alpha, max_iter=50_000, random_state=0)
    model.fit(x, y)
    return model.coef_.astype(float), float(model.intercept_), float(model.score(x, y))


def surrogate(
    doc: Document,
    scorer: Scorer,
    *,
    n_ablations: int = 32,
    seed: int = 0,
    keep_prob: float = 0.5,
    alpha: float = 0.01,
    progress: ProgressFn | None = None,
) -> MethodOutput:
    """ContextCite-style linear surrogate over ``n_ablations`` random sentence ablations.

    The full context (all sentences kept) is added as one more training sample, since the scorer
    computes it anyway. ``alpha`` is the Lasso penalty per sample, in nats.
    """
    n = len(doc.sentences)
    masks = ablation_masks(n, n_ablations, seed, keep_prob)
    variants = [doc.without(np.flatnonzero(~m).tolist()) for m in masks]
    # the scorer reports the ablations; the full context's pass comes first (the plan counts it too)
    counted = (lambda done, total, what: progress(done + 1, total + 1, what)) if progress else None
    base_lp, lps = scorer.log_probs(doc.text, variants, counted)
    x = np.vstack([masks, np.ones((1, n), dtype=bool)])
    weights, intercept, r2 = fit_surrogate(x, [*lps, base_lp], alpha)
    out = MethodOutput.empty(doc, base_lp)
    out.set_sentences(range(n), weights.tolist(), scorer.model_id)
    par = [float(sum(weights[s.index] for s in doc.sentences_of(p.index))) for p in doc.paragraphs]
    out.set_paragraphs(range(len(doc.paragraphs)), par, scorer.model_id)
    out.extra.update({"surrogate_intercept": intercept, "surrogate_r2": r2, "n_ablations": n_ablations})
    out.span_note = "the surrogate's weights are a fit to whole-response log-probs, not sums over tokens: re-run"
    return out


# -- attention ---------------------------------------------------------------------------------------
_FIELD = re.compile(r"\{(context|question)\}")


def _context_offset(template: str, context: str, question: str) -> int:
    """Where ``context`` starts in the filled template (fields filled in one pass, as the builder does)."""
    first = template.index("{context}")
    head = _FIELD.sub(lambda m: {"context": context, "question": question}[m.group(1)], template[:first])
    return len(head)


def sentence_token_map(builder, doc: Document, question: str) -> tuple[list[int], list[int]]:
    """Prompt token ids and, per prompt token, the index of the sentence it belongs to (-1 = none).

    The prompt is rebuilt exactly as :meth:`PromptBuilder.prompt_ids` builds it (markup, one run of
    user text, markup), tokenizing the user-text run with character offsets. A token that straddles a
    sentence boundary goes to the sentence it overlaps most.
    """
    head_ids, text, message_start, tail_ids = builder.prompt_parts(doc.text, question)
    enc = builder.tokenizer(
        text, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True
    )
    ids = head_ids + list(enc["input_ids"]) + tail_ids
    if ids != builder.prompt_ids(doc.text, question):
        raise RuntimeError("Could not map sentences to prompt tokens: the offset encoding differs.")
    shift = message_start + _context_offset(builder.template, doc.text, question)
    owners = [-1] * len(head_ids)
    starts = [s.start + shift for s in doc.sentences]
    ends = [s.end + shift for s in doc.sentences]
    for a, b in enc["offset_mapping"]:
        best, best_overlap = -1, 0
        # sentences are sorted by offset: find the first one that ends after the token starts
        i = int(np.searchsorted(ends, a, side="right"))
        for j in (i - 1, i, i + 1):
            if 0 <= j < len(starts):
                overlap = min(b, ends[j]) - max(a, starts[j])
                if overlap > best_overlap:
                    best, best_overlap = j, overlap
        owners.append(best)
    owners += [-1] * len(tail_ids)
    return ids, owners


def local_prompt(doc: Document, scorer: Scorer, what: str) -> tuple[object, list[int], list[int], list[int]]:
    """(model, prompt ids, sentence of each prompt token, response ids) for a method that runs the scorer's model
    itself (one pass of its own rather than the scorer's log-probs): refused, naming ``what``, unless the
    scorer is a local transformers one; the context is checked to fit the model's window first."""
    lm, builder = getattr(scorer, "lm", None), getattr(scorer, "builder", None)
    if lm is None or builder is None:
        raise NotImplementedError(f"{what} needs a local transformers scorer (LocalScorer).")
    scorer.check_fits(doc.text)
    prompt, owners = sentence_token_map(builder, doc, scorer.question)
    return lm, prompt, owners, list(scorer.response_ids)


def attention(doc: Document, scorer: Scorer, *, progress: ProgressFn | None = None) -> MethodOutput:
    """Attention mass from the response's predicting positions to each sentence (one forward pass)."""
    import torch

    lm, prompt, owners, response = local_prompt(doc, scorer, "The attention baseline")
    if progress:
        progress(0, 1, scorer.model_id)
    ids = prompt + response[:-1]
    # position p predicts token p + 1: response token t is predicted at len(prompt) - 1 + t
    queries = [len(prompt) - 1 + t for t, on in enumerate(scorer.mask) if on]
    owner = torch.tensor(owners + [-1] * (len(ids) - len(owners)))
    n = len(doc.sentences)
    per_layer: list[torch.Tensor] = []

    def hook(_module, _args, output):
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if weights is None:
            raise RuntimeError("The attention module returned no weights (eager attention is needed).")
        mass = weights[0, :, queries, :].float().mean(dim=(0, 1))  # (keys,): mean over heads and queries
        per_layer.append(torch.zeros(n + 1).index_add_(0, owner.clamp(min=-1) + 1, mass.cpu())[1:])

    model = lm.model
    previous = getattr(model.config, "_attn_implementation", None)
    modules = [m for name, m in model.named_modules() if name.endswith("self_attn")]
    if not modules:
        raise NotImplementedError(f"No attention modules found in {scorer.model_id}.")
    handles = [m.register_forward_hook(hook) for m in modules]
    start = time.perf_counter()
    try:
        if previous != "eager":
            model.set_attn_implementation("eager")
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([ids], device=lm.device), use_cache=False,
                        logits_to_keep=len(response))
        logits = out.logits[0, -len(response):].float()
        token_lp = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(response)[:, None].to(logits.device))
        log_prob_full = float(token_lp[:, 0][torch.tensor(scorer.mask)].sum())
    finally:
        for h in handles:
            h.remove()
        if previous is not None and previous != "eager":
            model.set_attn_implementation(previous)
    scorer.stats.forward_passes += 1
    scorer.stats.tokens_computed += len(ids)
    scorer.stats.seconds += time.perf_counter() - start
    scores = torch.stack(per_layer).mean(dim=0).tolist()
    out_ = MethodOutput.empty(doc, log_prob_full)
    out_.set_sentences(range(n), scores, scorer.model_id)
    par = [float(sum(scores[s.index] for s in doc.sentences_of(p.index))) for p in doc.paragraphs]
    out_.set_paragraphs(range(len(doc.paragraphs)), par, scorer.model_id)
    out_.extra["attention_layers"] = len(per_layer)
    out_.span_note = "attention shares are not sums of per-token log-probs: re-run for a part of the response"
    if progress:
        progress(1, 1, scorer.model_id)
    return out_
