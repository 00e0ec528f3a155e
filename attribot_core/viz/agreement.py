"""The Agreement view's table rows and figure, drawn from :class:`~attribot_core.agreement.BatchAgreement` values.

They draw what they are given (means, intervals and per-row values computed by :mod:`.agreement`) and
compute no metric. Batch names and row ids are user text: escaped wherever plotly would render them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..agreement import MEASURES, METRICS, BatchAgreement, format_interval
from ..metrics import Interval
from .colours import method_colour
from .text import plotly_text

__all__ = ["agreement_measure_rows", "agreement_scatter_figure", "agreement_table_rows"]


def agreement_table_rows(agreements: Sequence[BatchAgreement]) -> list[dict[str, Any]]:
    """One row per batch: its method, rows compared and not, then every metric as ``mean [lo, hi]`` (95 %)."""
    return [{"batch": a.batch, "method": a.method, "rows compared": a.n, "not compared": len(a.not_compared),
             **{label: format_interval(key, a.metrics[key]) for key, label in METRICS.items()}}
            for a in agreements]


def agreement_measure_rows(agreements: Sequence[BatchAgreement]) -> list[dict[str, Any]]:
    """Two rows per batch that carries the faithfulness measures (top-k drops, LDS) on both sides: the
    batch's own ``mean [lo, hi]`` (95 %), then the reference's over the same rows. The reference gets its
    own row because it is no ceiling here: a fast method can remove more log-probability than exact LOO."""
    none = Interval(None, None, None, 0)
    rows = []
    for a in agreements:
        if not a.measures:
            continue
        for scores_of, values in ((f"the batch ({a.method})" if a.method else "the batch", a.measures),
                                  (f"the reference ({a.reference})", a.reference_measures)):
            n = max(iv.n for iv in values.values())
            rows.append({"batch": a.batch, "scores of": scores_of, "rows measured": n,
                         **{label: format_interval(key, values.get(key, none)) for key, label in MEASURES.items()}})
    return rows


def agreement_scatter_figure(agreements: Sequence[BatchAgreement], metric: str = "spearman"):
    """One point per compared row and batch: its speed-up against the reference (x, log) and ``metric`` (y).

    Points up and to the right are rows where a method is both fast and faithful; the dashed line is
    perfect agreement. Rows where ``metric`` is undefined (e.g. no outlier in the reference) are left out
    and counted in the legend. The y axis spans the metric's whole range (correlations from -1, overlaps
    and recalls from 0, up to 1), so rows at perfect agreement sit on the line, not clipped at the edge.
    """
    import plotly.graph_objects as go

    label = METRICS[metric]
    fig = go.Figure()
    methods = [a.method for a in agreements]
    for a in agreements:
        colour = method_colour(a.method if a.method and methods.count(a.method) == 1 else a.batch)
        pts = [(r.speedup, r.values[metric], r.row_id) for r in a.rows
               if not math.isnan(r.values[metric]) and math.isfinite(r.speedup) and r.speedup > 0]
        skipped = a.n - len(pts)
        name = plotly_text(f"{a.batch} ({a.method})" if a.method else a.batch, 40)
        fig.add_trace(go.Scatter(
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers",
            name=name + (f" · {skipped} row(s) without a value" if skipped else ""),
            hovertext=[plotly_text(p[2], 60) for p in pts],
            marker={"size": 9, "opacity": 0.8, "color": colour},
            hovertemplate="row %{hovertext}<br>speed-up %{x:.2f}x · " + label + " %{y:.3f}<extra>" + name
            + "</extra>",
        ))
    fig.add_hline(y=1.0, line={"color": "#999", "dash": "dash"})
    low = -1.0 if metric in ("spearman", "pearson") else 0.0
    reference = plotly_text(agreements[0].reference, 40) if agreements else "the reference"
    fig.update_layout(title=f"{label} against {reference}, per row", height=420,
                      xaxis={"title": "speed-up against the reference (its seconds / the batch's)", "type": "log"},
                      yaxis={"title": label, "range": [low - 0.05, 1.05]}, margin={"t": 40, "b": 40, "l": 50, "r": 10},
                      legend={"orientation": "h", "y": -0.2})
    return fig
