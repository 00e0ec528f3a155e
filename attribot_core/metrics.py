"""Agreement between two score vectors: how faithfully an approximate method tracks exact LOO.

The plain correlations leave out spans that either side did not score (``None``); for top-k overlap a
not-scored span ranks below every scored one. :func:`faithfulness` bundles them per result, counting a span
the approximate method left unscored as 0 nats in its correlations (see there);
:func:`compare_rows` scores finished results of one example against the reference (the Compare and
History pages; ``bench/eval.py`` reports the same metrics over the evaluation set through
:mod:`attribot_core.agreement`).
:func:`bootstrap_ci` and :func:`bootstrap_ratio_ci` put a confidence interval on a mean over rows (how far
a batch's figure could move on other rows like these).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "BOOTSTRAP_RESAMPLES", "FAITHFULNESS", "OUTLIER_Z", "Interval", "bootstrap_ci", "bootstrap_ratio_ci",
    "compare_rows", "faithfulness", "gold_recall_at_k", "outlier_recall", "outliers", "paired", "pareto_front",
    "pearson", "spearman", "top_k_overlap",
]


def paired(a: Sequence[float | None], b: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    keep = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x is not None and y is not None]
    return np.array([a[i] for i in keep], dtype=float), np.array([b[i] for i in keep], dtype=float)


def pearson(a: Sequence[float | None], b: Sequence[float | None]) -> float:
    """Pearson correlation over spans both scored; NaN when undefined (fewer than 2, or constant)."""
    x, y = paired(a, b)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = x.argsort(kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    for v in np.unique(x):  # average ranks for ties
        ranks[x == v] = ranks[x == v].mean()
    return ranks


def spearman(a: Sequence[float | None], b: Sequence[float | None]) -> float:
    """Spearman rank correlation (ties get average ranks) over spans both scored."""
    x, y = paired(a, b)
    if len(x) < 2:
        return float("nan")
    return pearson(list(_ranks(x)), list(_ranks(y)))


def top_k(scores: Sequence[float | None], k: int) -> set[int]:
    scored = sorted((i for i, s in enumerate(scores) if s is not None), key=lambda i: -scores[i])
    return set(scored[:k])


def top_k_overlap(approx: Sequence[float | None], exact: Sequence[float | None], k: int) -> float:
    """Fraction of the exact top-k spans that are also in the approximate top-k."""
    truth = top_k(exact, k)
    if not truth:
        return float("nan")
    return len(top_k(approx, k) & truth) / len(truth)


# -- evaluation metrics ------------------------------------------------------------------------------
OUTLIER_Z = 2.0
"""A sentence is an *outlier* of exact LOO when its score is at least mean + ``OUTLIER_Z`` x std."""


def outliers(exact: Sequence[float | None], z: float = OUTLIER_Z) -> set[int]:
    """Sentences whose exact LOO score is >= mean + z * std (population std over scored sentences).

    These are the few sentences that stand out as clearly driving the response. Empty when the
    scores are constant or nothing stands out that far.
    """
    scored = [(i, s) for i, s in enumerate(exact) if s is not None]
    if len(scored) < 2:
        return set()
    values = np.array([s for _, s in scored], dtype=float)
    if values.std() == 0:
        return set()
    cut = values.mean() + z * values.std()
    return {i for i, s in scored if s >= cut}


def outlier_recall(approx: Sequence[float | None], exact: Sequence[float | None], z: float = OUTLIER_Z) -> float:
    """Fraction of the exact outliers (see :func:`outliers`) found in the approximate top-|outliers|.

    Ranking-based, so it also applies to scores in other units (attention). NaN when exact LOO has
    no outlier.
    """
    truth = outliers(exact, z)
    if not truth:
        return float("nan")
    return len(top_k(approx, len(truth)) & truth) / len(truth)


def gold_recall_at_k(scores: Sequence[float | None], gold: Sequence[int], k: int) -> float:
    """Gold-evidence recall@k: |gold in top-k| / min(k, |gold|), so a perfect ranking scores 1.

    With two gold sentences, recall@1 is 1 when the top sentence is either of them. NaN without gold.
    """
    gold = set(gold)
    if not gold:
        return float("nan")
    return len(top_k(scores, k) & gold) / min(k, len(gold))


# -- one approximate result against the reference ------------------------------------------------------
FAITHFULNESS = ("pearson", "spearman", "top1", "top3", "outlier_recall", "gold@1", "gold@3")
"""Per-row faithfulness metrics (all in [-1, 1] or [0, 1], higher is better)."""


def faithfulness(
    approx: Sequence[float | None], exact: Sequence[float | None], gold: Sequence[int] = (), z: float = OUTLIER_Z
) -> dict[str, float]:
    """All faithfulness metrics (:data:`FAITHFULNESS`) of one score vector against the reference's.

    A span the method did not score (``None``: pruned by ``hierarchical``, ``tree`` or ``pruning``) counts
    as 0 nats in the correlations, over every span the reference scored: leaving a span unscored is the
    method's claim that it has no effect worth a pass. A correlation over only the spans it chose to
    score would flatter it (``hierarchical`` keeping one paragraph gets Spearman 1 on that paragraph's
    exactly scored sentences, however it ranked the rest). In top-k overlap an unscored span ranks below
    every scored one. ``gold`` holds the indices of the gold-evidence sentences (gold@k is NaN without them).
    """
    filled = [0.0 if a is None and e is not None else a for a, e in zip(approx, exact, strict=True)]
    return {
        "pearson": pearson(filled, exact),
        "spearman": spearman(filled, exact),
        "top1": top_k_overlap(approx, exact, 1),
        "top3": top_k_overlap(approx, exact, 3),
        "outlier_recall": outlier_recall(approx, exact, z),
        "gold@1": gold_recall_at_k(approx, gold, 1),
        "gold@3": gold_recall_at_k(approx, gold, 3),
    }


def pareto_front(points: Sequence[Mapping[str, Any]], x: str = "speedup", y: str = "spearman") -> list[int]:
    """Indices of the points not dominated in (``x``, ``y``), both higher-is-better, sorted by ``x``."""
    ok = [i for i, p in enumerate(points)
          if all(isinstance(p.get(k), int | float) and math.isfinite(p[k]) for k in (x, y))]
    front = []
    for i in ok:
        a = points[i]
        dominated = any(
            points[j][x] >= a[x] and points[j][y] >= a[y] and (points[j][x] > a[x] or points[j][y] > a[y])
            for j in ok if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][x])


def compare_rows(
    results: Mapping[str, Any],
    reference: Any,
    *,
    baseline_seconds: float | None = None,
    gold: Sequence[int] = (),
    families: Mapping[str, str] | None = None,
    k: int = 3,
) -> list[dict[str, Any]]:
    """Rows for ``viz.pareto_figure`` (and the app's agreement tables) from finished :class:`AttributionResult` s
    of one example.

    ``reference`` is the exact LOO result to compare with; speed-ups are against
    ``baseline_seconds`` (e.g. a measured naive-LOO time), by default the reference's own
    attribution time (then the x-axis reads "speed-up vs exact LOO"). ``families`` maps a result's
    name to its family; by default it comes from the method (loo* exact, surrogate/attention
    baseline, else attribot). Each row also holds ``top{k}``: the top-``k`` overlap with the reference.
    """
    exact = reference.scores("sentence")
    base = baseline_seconds or reference.timings.get("attribute_s") or float("nan")
    rows = []
    for name, res in results.items():
        method = res.method
        family = (families or {}).get(name) or (
            "exact" if method.startswith("loo") else "baseline" if method in ("surrogate", "attention") else "attribot")
        secs = res.timings.get("attribute_s") or float("nan")
        rows.append({"config": name, "family": family, "method": method, "n_examples": 1,
                     "speedup": base / secs if secs else float("nan"), "wall_s": secs,
                     "forward_passes": res.total_forward_passes,
                     **faithfulness(res.scores("sentence"), exact, gold),
                     f"top{k}": top_k_overlap(res.scores("sentence"), exact, k)})
    return rows


# -- confidence intervals over rows -------------------------------------------------------------------
BOOTSTRAP_RESAMPLES = 2000
"""Resamples of the rows per interval: the percentiles at 2.5 % and 97.5 % settle to about 0.01 by then."""


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` rows with a percentile bootstrap interval [lo, hi]; all None when ``n`` is 0."""

    mean: float | None
    lo: float | None
    hi: float | None
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "n": self.n}


def _draws(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) row indices drawn with replacement: the same seed draws the same rows."""
    if resamples < 1:
        raise ValueError(f"The bootstrap needs at least 1 resample (got {resamples}).")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _interval(point: float, stats: np.ndarray, n: int, level: float) -> Interval:
    lo, hi = np.percentile(stats, [50 * (1 - level), 50 * (1 + level)])
    return Interval(float(point), float(lo), float(hi), n)


def bootstrap_ci(values: Sequence[float | None], *, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = 0) -> Interval:
    """The mean of ``values`` (one per row) with a percentile bootstrap interval at ``level``.

    Rows without a value (None or NaN: e.g. outlier recall where the reference has no outlier) are left
    out, and ``n`` counts the rows that remain. Equal values give a zero-width interval. Deterministic
    for a given ``seed``.
    """
    x = np.array([v for v in values if v is not None and not np.isnan(v)], dtype=float)
    if len(x) == 0:
        return Interval(None, None, None, 0)
    if np.all(x == x[0]):
        return Interval(float(x[0]), float(x[0]), float(x[0]), len(x))
    return _interval(x.mean(), x[_draws(len(x), resamples, seed)].mean(axis=1), len(x), level)


def bootstrap_ratio_ci(numerators: Sequence[float | None], denominators: Sequence[float | None], *,
                       level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> Interval:
    """mean(numerators) / mean(denominators) over paired rows, with a percentile bootstrap interval.

    A ratio of means, not a mean of ratios, so a few very fast rows do not dominate (e.g. a speed-up:
    the reference's mean seconds over a method's). Rows are resampled as pairs; a pair with a missing
    value is left out. None when no pair remains or the denominators' mean is not positive.
    """
    pairs = np.array([(a, b) for a, b in zip(numerators, denominators, strict=True)
                      if a is not None and b is not None and not np.isnan(a) and not np.isnan(b)], dtype=float)
    if len(pairs) == 0 or pairs[:, 1].mean() <= 0:
        return Interval(None, None, None, len(pairs))
    point = pairs[:, 0].mean() / pairs[:, 1].mean()
    drawn = pairs[_draws(len(pairs), resamples, seed)]  # (resamples, n, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = drawn[:, :, 0].mean(axis=1) / drawn[:, :, 1].mean(axis=1)
    return _interval(point, stats[np.isfinite(stats)], len(pairs), level)
