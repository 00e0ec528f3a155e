"""Drawings of a method comparison: the agreement table, scores against the reference, and the cost.

They draw what they are given: the agreement metrics come as rows from ``metrics.compare_rows`` (the
one place they are computed, which the Pareto plot reads too); nothing here computes a correlation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..metrics import pareto_front
from ..result import AttributionResult
from .colours import method_colour, method_order
from .text import esc, plotly_text

__all__ = ["agreement_table", "compare_cost_figure", "compare_scatter_figure", "pareto_figure"]


def agreement_table(rows: Sequence[Mapping[str, Any]], *, k: int = 3, speedup_over: str | None = None):
    """The agreement rows of ``metrics.compare_rows`` as the table the app shows, in the charts' order.

    Columns: method, seconds, forward passes, pearson, spearman, top-``k`` overlap (the rows must hold
    ``top{k}``: ``compare_rows(..., k=k)``) and, when ``speedup_over`` names what the rows' speed-ups are
    against, ``speed-up vs <speedup_over>``.
    """
    import pandas as pd

    by_name = {row["config"]: row for row in rows}
    order = method_order(by_name, {name: row["method"] for name, row in by_name.items()})
    columns = {"config": "method", "wall_s": "seconds", "forward_passes": "forward passes", "pearson": "pearson",
               "spearman": "spearman", f"top{k}": f"top-{k} overlap"}
    if speedup_over:
        columns["speedup"] = f"speed-up vs {speedup_over}"
    return pd.DataFrame([{label: by_name[name].get(key) for key, label in columns.items()} for name in order],
                        columns=list(columns.values()))


def compare_scatter_figure(results: Mapping[str, AttributionResult], reference: str = "loo",
                           rows: Sequence[Mapping[str, Any]] = (), *, reference_is_exact: bool = True):
    """Each method's sentence scores (y) against the reference's (x); the diagonal is perfect agreement.

    ``rows`` are the agreement rows of the same results (``metrics.compare_rows``); a method's legend
    entry names its Pearson r from them when they are given. ``reference_is_exact=False`` (two runs
    neither of which is exact LOO) words the axes as one run against another, not against exact scores.
    """
    ref_word = "exact" if reference_is_exact else "reference"
    import plotly.graph_objects as go

    ref = results[reference]
    x_all = [s for s in ref.scores("sentence") if s is not None]
    lo, hi = (min(x_all, default=0.0), max(x_all, default=1.0))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                             line={"color": "#999", "dash": "dash"}, hoverinfo="skip"))
    texts = [plotly_text(s.text, 80) for s in ref.sentences]
    pearson = {row["config"]: row["pearson"] for row in rows}
    for name in method_order(results):
        r = results[name]
        if name == reference:
            continue
        pts = [(x, y, t) for x, y, t in zip(ref.scores("sentence"), r.scores("sentence"), texts, strict=True)
               if x is not None and y is not None]
        fig.add_trace(go.Scatter(
            x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers",
            name=plotly_text(f"{name} (r = {pearson[name]:.3f})" if name in pearson else name),
            hovertext=[p[2] for p in pts],
            marker={"size": 10, "color": method_colour(name), "opacity": 0.85},
            hovertemplate=ref_word + " %{x:.3f} · method %{y:.3f}<br>%{hovertext}<extra>" + esc(name) + "</extra>",
        ))
    title = (f"Sentence scores against exact {reference}" if reference_is_exact
             else "Sentence scores of the two runs (neither is exact)")
    fig.update_layout(title=plotly_text(title), height=420,
                      xaxis_title=f"{reference} score (nats)", yaxis_title="method score (nats)",
                      margin={"t": 50, "l": 10, "r": 10, "b": 10})
    return fig


def compare_cost_figure(results: Mapping[str, AttributionResult], baseline: str = "loo-naive"):
    """Side-by-side bars: attribution time and forward passes per method, speed-up over ``baseline``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = method_order(results)
    secs = [results[n].timings.get("attribute_s", 0.0) for n in names]
    passes = [results[n].total_forward_passes for n in names]
    base = results.get(baseline)
    base_s = base.timings.get("attribute_s") if base else None
    labels = [f"{s:.2f} s" + (f" (×{base_s / s:.1f})" if base_s and s > 0 else "") for s in secs]
    colours = [method_colour(n) for n in names]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Attribution time (s)", "Forward passes"))
    label = {"textposition": "outside", "textfont": {"size": 14}, "cliponaxis": False, "showlegend": False}
    fig.add_trace(go.Bar(x=names, y=secs, text=labels, marker_color=colours, name="seconds", **label), row=1, col=1)
    fig.add_trace(go.Bar(x=names, y=passes, text=[str(p) for p in passes], marker_color=colours,
                         name="forward passes", **label), row=1, col=2)
    title = "Cost per method" + (f" (×N = speed-up over {baseline})" if base_s else "")
    # Plotly shrinks a label that does not fit above its bar (to ~6 px); room above the tallest bar and a
    # least size keep every label readable
    fig.update_layout(title=title, height=380, margin={"t": 70, "l": 10, "r": 10, "b": 10}, font={"size": 14},
                      uniformtext={"minsize": 13, "mode": "show"})
    fig.update_yaxes(range=[0, 1.25 * max(secs, default=0) or 1], row=1, col=1)
    fig.update_yaxes(range=[0, 1.25 * max(passes, default=0) or 1], row=1, col=2)
    return fig


_FAMILY_SYMBOLS: dict[str, str] = {"exact": "circle", "attribot": "diamond", "baseline": "square"}


def pareto_figure(rows: Sequence[Mapping[str, Any]], *, metric: str = "spearman", title: str | None = None):
    """Plotly scatter of speed-up vs the target's naive LOO (log x) against a faithfulness metric.

    ``rows`` are one point per configuration, as given (``metrics.compare_rows`` for one example, or
    rows averaged over examples): the figure computes no metric. Each needs ``config``, ``family``,
    ``speedup`` and ``metric``; ``<metric>_std`` draws error bars when present. The Pareto front
    (``metrics.pareto_front``) is a dashed line. One trace per method, in the order and colour every
    other chart uses (:func:`method_order`, :func:`method_colour`); the marker's shape tells the family
    (exact, attribot, baseline).
    """
    import plotly.graph_objects as go

    pts = [r for r in rows if isinstance(r.get("speedup"), int | float) and r["speedup"] > 0]
    fig = go.Figure()
    methods = {r.get("method", r["config"]) for r in pts}
    for method in method_order(methods):
        fam = [r for r in pts if r.get("method", r["config"]) == method]
        fig.add_trace(go.Scatter(
            x=[r["speedup"] for r in fam], y=[r.get(metric) for r in fam], mode="markers+text",
            name=method, text=[r["config"] for r in fam], textposition="top center",
            marker={"size": 11, "color": method_colour(method),
                    "symbol": [_FAMILY_SYMBOLS.get(r["family"], "circle") for r in fam],
                    "line": {"color": "#1b1b1b", "width": 1}},
            error_y={"type": "data", "array": [r.get(f"{metric}_std", 0) or 0 for r in fam], "visible": True,
                     "thickness": 1},
            hovertemplate="%{text}<br>speed-up %{x:.1f}x<br>" + metric + " %{y:.3f}<extra></extra>",
        ))
    front = [pts[i] for i in pareto_front(pts, "speedup", metric)]
    if len(front) > 1:
        fig.add_trace(go.Scatter(x=[r["speedup"] for r in front], y=[r[metric] for r in front], mode="lines",
                                 name="Pareto front", line={"dash": "dash", "color": "gray"}, hoverinfo="skip"))
    fig.update_xaxes(type="log", title="speed-up vs the target's naive LOO (x, log scale)")
    fig.update_yaxes(title=f"faithfulness to exact LOO ({metric})")
    fig.update_layout(title=title or f"Speed vs faithfulness ({metric}); ● exact, ◆ AttriBoT, ■ baseline",
                      legend_title="method")
    return fig
