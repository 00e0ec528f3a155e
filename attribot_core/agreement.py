"""Agreement between batches: how closely a method tracks a reference batch (typically exact ``loo``) on the same rows.

A user who runs a fast method over 500 answers wants to know whether it agrees with exact LOO *on their
data*. Attribute the same rows twice (``attribot batch --name ref --method loo`` and ``--name fast
--method hierarchical``), then :func:`compare` matches the rows by id and reports, per batch, the mean
over rows of each metric of :func:`attribot_core.evaluation.faithfulness` (Spearman, Pearson, top-1 and
top-3 overlap, recall of the reference's outlier sentences, gold recall@1/@3 where rows have gold), forward
passes and attribution seconds per row, and the speed-up against the reference (ratio of mean seconds),
each with a 95 % bootstrap interval over rows (:func:`attribot_core.metrics.bootstrap_ci`).

When both batches carry the faithfulness measures of :mod:`attribot_core.faithfulness` (``attribot batch
--measures topk,lds``), the batch's top-k log-probability drops and LDS, and the reference's on the same
rows, are reported the same way (mean with its interval), over the rows measured on both sides. Where
either side lacks them, :func:`measures_hint` says on how many compared rows each side carries them and
how to add them.

Rows are never dropped silently: a row that is not finished on both sides is listed in ``not_compared``
with the reason. Everything here is a pure function of stored results, except :func:`load_batch`, which
reads a batch through the store's API. Scores are never recomputed.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .api import InputError
from .faithfulness import row_measures
from .gold import gold_sentences
from .metrics import BOOTSTRAP_RESAMPLES, FAITHFULNESS, Interval, bootstrap_ci, bootstrap_ratio_ci, faithfulness
from .result import AttributionResult

__all__ = [
    "MEASURES",
    "ADD_MEASURES",
    "METRICS",
    "BatchAgreement",
    "BatchRow",
    "RowAgreement",
    "compare",
    "compare_batches",
    "format_interval",
    "format_table",
    "load_batch",
    "measures_hint",
    "most_disagreeing",
    "row_values",
]

COST = ("forward_passes", "seconds")
METRICS: dict[str, str] = {  # key -> label, in the order tables show them
    "spearman": "Spearman", "pearson": "Pearson", "top1": "top-1 overlap", "top3": "top-3 overlap",
    "outlier_recall": "outlier recall", "gold@1": "gold top-1", "gold@3": "gold@3",
    "forward_passes": "forward passes / row", "seconds": "seconds / row", "speedup": "speed-up vs reference",
}
"""Every figure of a :class:`BatchAgreement`: the faithfulness metrics (higher is better, in [-1, 1] or [0, 1]),
then cost per row and the speed-up (reference mean seconds / this batch's mean seconds)."""
MEASURES: dict[str, str] = {
    "topk_drop@1": "top-1 log-prob drop (nats)", "topk_drop@3": "top-3 log-prob drop (nats)",
    "topk_drop@5": "top-5 log-prob drop (nats)", "lds": "LDS",
}
"""The opt-in faithfulness measures (:mod:`attribot_core.faithfulness`; drops in nats, LDS in [-1, 1]; higher is
better for both): shown when rows of both batches carry them, for the batch and for the reference."""
ADD_MEASURES = ("To add them, rerun the attribot batch command that made a batch with --measures topk,lds added: "
                "rows already done are kept and only the measures run.")
"""How a user adds the measures to a batch that lacks them (said by the printed table and the app)."""


@dataclass(frozen=True)
class BatchRow:
    """One stored row of a batch, as much as agreement needs: its inputs, status, result and gold strings."""

    row_id: str
    status: str
    context: str
    question: str
    result: AttributionResult | None
    gold: tuple[str, ...] | None = None
    method: str = ""


@dataclass(frozen=True)
class RowAgreement:
    """One compared row: each metric's value (NaN where undefined, e.g. no outlier in the reference)."""

    row_id: str
    values: dict[str, float]
    reference_seconds: float

    @property
    def speedup(self) -> float:
        """The reference's attribution seconds on this row over this batch's (NaN when either is unknown)."""
        seconds = self.values["seconds"]
        return self.reference_seconds / seconds if seconds > 0 else float("nan")


@dataclass(frozen=True)
class BatchAgreement:
    """A batch against the reference: per-row values, their means with intervals, and what was not compared."""

    batch: str
    reference: str
    method: str
    rows: tuple[RowAgreement, ...]
    metrics: dict[str, Interval]
    not_compared: dict[str, str] = field(default_factory=dict)  # row id -> why
    different_response: tuple[str, ...] = ()  # compared rows whose response text differs from the reference's
    measures: dict[str, Interval] = field(default_factory=dict)  # MEASURES key -> this batch's, where measured
    reference_measures: dict[str, Interval] = field(default_factory=dict)  # the reference's, on the same rows
    measured_rows: int = 0  # compared rows whose result in this batch carries the measures
    reference_measured_rows: int = 0  # compared rows whose result in the reference carries them

    @property
    def n(self) -> int:
        return len(self.rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``metrics`` as ``{"mean", "lo", "hi", "n"}``, NaN per-row values as null."""
        return {
            "batch": self.batch, "reference": self.reference, "method": self.method, "n": self.n,
            "metrics": {k: self.metrics[k].to_dict() for k in METRICS},
            "not_compared": [{"id": rid, "why": why} for rid, why in self.not_compared.items()],
            "different_response": list(self.different_response),
            "measures": {k: v.to_dict() for k, v in self.measures.items()},
            "reference_measures": {k: v.to_dict() for k, v in self.reference_measures.items()},
            "measured_rows": self.measured_rows, "reference_measured_rows": self.reference_measured_rows,
            "rows": [{"id": r.row_id, **{k: None if math.isnan(v) else v for k, v in r.values.items()}}
                     for r in self.rows],
        }


def _seconds(result: AttributionResult) -> float:
    """Attribution seconds of a row (generation excluded: sibling batches share one generated response)."""
    t = result.timings.get("attribute_s", result.timings.get("total_s"))
    return float("nan") if t is None else float(t)


def row_values(result: AttributionResult, reference: AttributionResult,
               gold: Sequence[str] | None = None) -> dict[str, float]:
    """Every per-row figure of ``result`` against ``reference`` (same context, so sentences align).

    Gold strings are matched to sentences by the batch layer's one rule (:func:`gold_sentences`).
    """
    gold_idx = sorted(gold_sentences(reference, gold)) if gold else []
    values = faithfulness(result.scores("sentence"), reference.scores("sentence"), gold_idx)
    measured = _both_measured(result, reference)
    return {**values, "forward_passes": float(result.total_forward_passes), "seconds": _seconds(result),
            **measured[0], **{f"reference_{k}": v for k, v in measured[1].items()}}


def _both_measured(result: AttributionResult, reference: AttributionResult
                   ) -> tuple[dict[str, float], dict[str, float]]:
    """Each measure of the batch's row and of the reference's, NaN on both sides unless both carry it."""
    mine, theirs = row_measures(result), row_measures(reference)
    nan = float("nan")
    both = {k for k in MEASURES if not (math.isnan(mine[k]) or math.isnan(theirs[k]))}
    return ({k: mine[k] if k in both else nan for k in MEASURES},
            {k: theirs[k] if k in both else nan for k in MEASURES})


def _carries_measures(result: AttributionResult) -> bool:
    """True when ``result`` was measured (``--measures``), even where a value came out undefined (None)."""
    return result.extra.get("topk_drop") is not None or "lds" in result.extra


def compare(reference: Mapping[str, BatchRow], rows: Mapping[str, BatchRow], *, batch: str = "batch",
            reference_name: str = "reference", resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
            level: float = 0.95) -> BatchAgreement:
    """``rows`` (one batch, by row id) against ``reference`` (another, by row id).

    Raises :class:`InputError` when one id holds different inputs in the two batches (they are not the
    same rows) or when no row is finished on both sides.
    """
    for rid in reference.keys() & rows.keys():
        a, b = reference[rid], rows[rid]
        if a.context != b.context or a.question != b.question:
            what = "context" if a.context != b.context else "question"
            raise InputError(f"Row '{rid}' has a different {what} in batch '{batch}' than in the reference "
                             f"'{reference_name}': the batches are not over the same rows.")
    not_compared: dict[str, str] = {}
    compared: list[str] = []
    for rid in list(reference) + [r for r in rows if r not in reference]:
        ref, row = reference.get(rid), rows.get(rid)
        if ref is None:
            not_compared[rid] = "not in the reference"
        elif row is None:
            not_compared[rid] = "not in the batch"
        elif ref.result is None:
            not_compared[rid] = f"{ref.status} in the reference"
        elif row.result is None:
            not_compared[rid] = f"{row.status} in the batch"
        else:
            compared.append(rid)
    if not compared:
        raise InputError(f"Batch '{batch}' and the reference '{reference_name}' have no finished row in common "
                         f"(rows are matched by id).")
    per_row = []
    for rid in compared:
        ref, row = reference[rid].result, rows[rid].result
        per_row.append(RowAgreement(rid, row_values(row, ref, reference[rid].gold or rows[rid].gold),
                                    _seconds(ref)))
    metrics = {k: bootstrap_ci([r.values[k] for r in per_row], level=level, resamples=resamples, seed=seed)
               for k in (*FAITHFULNESS, *COST)}
    metrics["speedup"] = bootstrap_ratio_ci([r.reference_seconds for r in per_row],
                                            [r.values["seconds"] for r in per_row],
                                            level=level, resamples=resamples, seed=seed)
    method = next((rows[rid].method for rid in compared if rows[rid].method), "")
    different = tuple(rid for rid in compared if reference[rid].result.response != rows[rid].result.response)
    measures, reference_measures = {}, {}
    for key in MEASURES:
        if any(not math.isnan(r.values[key]) for r in per_row):
            measures[key], reference_measures[key] = (
                bootstrap_ci([r.values[name] for r in per_row], level=level, resamples=resamples, seed=seed)
                for name in (key, f"reference_{key}"))
    return BatchAgreement(batch, reference_name, method, tuple(per_row), metrics, not_compared, different,
                          measures, reference_measures,
                          sum(_carries_measures(rows[rid].result) for rid in compared),
                          sum(_carries_measures(reference[rid].result) for rid in compared))


def measures_hint(agreement: BatchAgreement) -> str | None:
    """One sentence for a batch whose compared rows lack the faithfulness measures on either side: how
    many carry them on each side, and how to add them. None when every compared row is measured on both."""
    a = agreement
    if a.measured_rows == a.reference_measured_rows == a.n:
        return None
    if a.batch == a.reference:
        sides = f"{a.measured_rows} of {a.n} rows"
    else:
        sides = (f"{a.measured_rows} of {a.n} compared rows, and in the reference '{a.reference}' on "
                 f"{a.reference_measured_rows} of them")
    return f"{a.batch}: the faithfulness measures (top-k log-prob drop, LDS) are on {sides}. {ADD_MEASURES}"


def most_disagreeing(agreement: BatchAgreement, k: int = 5, metric: str = "spearman") -> list[RowAgreement]:
    """The ``k`` compared rows with the lowest ``metric`` (rows where it is undefined come last, never first)."""
    ranked = sorted(agreement.rows, key=lambda r: (math.isnan(r.values[metric]), r.values[metric]))
    return ranked[:k]


# -- reading batches ---------------------------------------------------------------------------------
def load_batch(store, name: str) -> dict[str, BatchRow]:
    """Batch ``name`` of a :class:`~attribot_core.runs.RunStore`, by row id in input order.

    An unknown batch is an :class:`InputError`; a file that turns out damaged while reading is a
    :class:`~attribot_core.runs.StoreError`; a stored result that does not parse is a ``ValueError``.
    """
    from .runs.export import batch_records
    from .runs.store import StoreError

    try:
        records = batch_records(store, name)
        return {r.row_id: BatchRow(r.row_id, r.status, r.request.context, r.request.question, r.result,
                                   tuple((r.row or {}).get("gold") or ()) or None, r.request.method)
                for r in records}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"Cannot read batch '{name}' from {store.path}: {exc}.") from None


def compare_batches(store, reference: str, batches: Sequence[str], *, resamples: int = BOOTSTRAP_RESAMPLES,
                    seed: int = 0) -> list[BatchAgreement]:
    """Each of ``batches`` against batch ``reference``, all read from ``store`` (see :func:`compare`)."""
    ref_rows = load_batch(store, reference)
    return [compare(ref_rows, load_batch(store, name), batch=name, reference_name=reference,
                    resamples=resamples, seed=seed) for name in batches]


# -- the printed table -------------------------------------------------------------------------------
def format_interval(key: str, iv: Interval) -> str:
    """``mean [lo, hi]`` in the unit of metric ``key`` (passes to 0.1, seconds to 3 digits, speed-up as x)."""
    if iv.mean is None:
        return "-"
    fmt = {"forward_passes": "{:.1f}", "seconds": "{:.3g}", "speedup": "{:.2f}x"}.get(key, "{:.3f}")
    return f"{fmt.format(iv.mean)} [{fmt.format(iv.lo)}, {fmt.format(iv.hi)}]"


def format_table(agreements: Sequence[BatchAgreement], *, max_ids: int = 10) -> str:
    """Metrics as rows, batches as columns (mean [95 % interval]); then the rows not compared, by id."""
    if not agreements:
        return ""
    head = ["", *(f"{a.batch} ({a.method})" if a.method else a.batch for a in agreements)]
    lines = [head, ["rows compared", *(str(a.n) for a in agreements)]]
    lines += [[label, *(format_interval(key, a.metrics[key]) for a in agreements)] for key, label in METRICS.items()]
    for key, label in MEASURES.items():  # the measures, where some batch and the reference both carry them
        if any(key in a.measures for a in agreements):
            empty = Interval(None, None, None, 0)
            lines.append([label, *(format_interval(key, a.measures.get(key, empty)) for a in agreements)])
            lines.append(["  the reference's, same rows",
                          *(format_interval(key, a.reference_measures.get(key, empty)) for a in agreements)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = [f"reference: {agreements[0].reference} · mean [95% bootstrap interval over rows]"]
    out += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    for a in agreements:
        if a.not_compared:
            named = [f"{rid} ({why})" for rid, why in list(a.not_compared.items())[:max_ids]]
            more = len(a.not_compared) - len(named)
            out.append(f"{a.batch}: {len(a.not_compared)} row(s) not compared: " + ", ".join(named)
                       + (f" and {more} more (all in --json)" if more > 0 else ""))
        if a.different_response:
            out.append(f"{a.batch}: the response differs from the reference's in {len(a.different_response)} "
                       f"compared row(s): " + ", ".join(a.different_response[:max_ids]))
        hint = measures_hint(a)
        if hint and (a.measured_rows or a.reference_measured_rows):  # said where measures were asked for
            out.append(hint)
    return "\n".join(out)
