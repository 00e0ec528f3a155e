"""Training the one-pass estimator's head weights from exact-LOO runs stored in a run database.

It reads the store (the run layer), so it lives here and not in :mod:`attribot_core.estimator`, which the
``estimate`` method imports: the engine's methods never depend on the run layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..estimator import EstimatorError, EstimatorWeights, Fit, fit_estimator, sentence_features

__all__ = ["TrainReport", "train_from_store", "training_runs"]


@dataclass(frozen=True)
class TrainReport:
    weights: EstimatorWeights
    fit: Fit
    examples: int
    rows: int
    feature_seconds: float
    out: Path | None

    @property
    def line(self) -> str:
        h = self.fit.heldout
        return (f"held-out ({self.fit.split['heldout_examples']} examples, {h['rows']} sentences): Spearman "
                f"{h['spearman']:.3f} (attention baseline {h['attention_spearman']:.3f}), Pearson {h['pearson']:.3f}, "
                f"top-1 {h['top1']:.2f}; alpha {self.fit.alpha:g} "
                f"(chosen by {self.fit.split['folds']}-fold cross-validation over the "
                f"{self.fit.split['train_examples']} training examples: Spearman "
                f"{self.fit.validation[self.fit.alpha]['spearman']:.3f} there); trained on "
                f"{self.examples} examples / {self.rows} sentences; reads the first {self.weights.depth} of "
                f"{self.weights.layers} layers; features {self.feature_seconds:.0f} s"
                + (f"; wrote {self.out}" if self.out else ""))


def training_runs(store, records, model_id: str) -> Iterator[tuple]:
    """(record, response) of each of ``records`` whose targets can train ``model_id``'s estimator: finished exact
    LOO (``loo`` / ``loo-naive``) of that model over the whole response. The response is the stored one with
    its token ids where the store knows them (what the run scored), else rebuilt from its text."""
    from ..prompt import Response

    for record in records:
        result = record.result
        if result is None or result.method not in ("loo", "loo-naive") or result.response_span is not None:
            continue
        if result.model != model_id:
            continue
        yield record, (store.known_response(record.request.model, result.context, result.question, result.response)
                       or Response(result.response, complete=bool(result.extra.get("response_complete", True))))


def train_from_store(db, batches: Sequence[str], model: str, out: str | Path | None, *,
                     seed: int = 0, depth: int | None = None,
                     log: Callable[[str], None] | None = None) -> TrainReport:
    """Fit head weights on the exact-LOO runs of ``model`` in ``batches`` of run database ``db``; write ``out``.

    ``db`` is a :class:`~attribot_core.runs.RunStore` or its path. ``depth``: weigh only the model's first
    ``depth`` layers, so that the estimate's pass stops after them (default: every layer).

    Only finished ``loo`` / ``loo-naive`` runs over the whole response are used (their sentence scores
    are the targets, nats); every row's features are recomputed from its stored context, question and
    response in one pass of ``model``.
    """
    from ..features import model_shape
    from ..models import load_model
    from .store import RunStore

    store = db if isinstance(db, RunStore) else RunStore(db)
    lm = load_model(model)
    layers, heads = model_shape(lm.model)
    depth = layers if depth is None else depth
    if not 1 <= depth <= layers:
        raise EstimatorError(f"--depth {depth}: {lm.model_id} has {layers} layers; give 1 to {layers}.")
    xs, ys, groups = [], [], []
    start = time.perf_counter()
    runs = [r for name in batches for r in store.list(batch=name, statuses=["done"], limit=1_000_000)]
    for record, response in training_runs(store, runs, lm.model_id):
        result = record.result
        _, feats, _ = sentence_features(lm, result.context, result.question, response, result.template)
        targets = [s.score for s in result.sentences]
        if len(targets) != len(feats):  # segmented by another version of the segmenter: not comparable
            if log:
                log(f"skipped run {record.id}: {len(targets)} stored sentences, {len(feats)} now")
            continue
        for i, target in enumerate(targets):
            if target is not None:
                xs.append(feats[i])
                ys.append(target)
                groups.append(f"{record.batch}/{record.row_id or record.id}")
        if log and len(set(groups)) % 25 == 0:
            log(f"features of {len(set(groups))} of {len(runs)} runs ({time.perf_counter() - start:.0f} s)")
    if not xs:
        raise EstimatorError(f"No finished exact-LOO runs of {lm.model_id} in batch(es) {', '.join(batches)} "
                             f"of {store.path}; make them with: attribot batch FILE --method loo --model {model} "
                             "--name NAME")
    feature_s = time.perf_counter() - start
    fit = fit_estimator(np.vstack(xs), np.asarray(ys), groups, seed=seed, columns=depth * heads)
    weights = EstimatorWeights(
        lm.model_id, lm.tokenizer_id, layers, heads, tuple(float(w) for w in fit.weights), fit.bias,
        {"rows": len(ys), "examples": len(set(groups)), "batches": list(batches), "alpha": fit.alpha,
         "heldout": fit.heldout, "split": fit.split,
         "method": ("ridge on the square root of the mass against sign-log LOO standardised within each example "
                    "(features centred within examples and standardised), closed form, rescaled to nats"),
         "cross_validated": fit.validation[fit.alpha],
         "feature_seconds": round(feature_s, 1)}, depth)
    path = weights.save(out) if out is not None else None
    return TrainReport(weights, fit, len(set(groups)), len(ys), feature_s, path)
