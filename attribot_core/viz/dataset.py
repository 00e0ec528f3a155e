"""Plotly figures of a batch's per-row figures (:func:`attribot_core.runs.dataset.row_metrics` rows).

Pure functions of a list of row dicts (``top_position``, ``max_abs_score``, ``gold_hit``, ``method``);
they never recompute a score. Rows without a value (failed, not labelled) are left out and counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .colours import NEGATIVE_RGB, POSITIVE_RGB

__all__ = ["gold_rate_figure", "gold_rates", "max_score_figure", "position_figure"]

_ORANGE = "rgb({}, {}, {})".format(*POSITIVE_RGB)
_BLUE = "rgb({}, {}, {})".format(*NEGATIVE_RGB)


def _values(rows: Sequence[Mapping[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) is not None]


def position_figure(rows: Sequence[Mapping[str, Any]], bins: int = 10):
    """Histogram of where the top sentence sits (0 = first sentence, 1 = last): lost in the middle?"""
    import plotly.graph_objects as go

    xs = _values(rows, "top_position")
    fig = go.Figure(go.Histogram(x=xs, xbins={"start": 0.0, "end": 1.0 + 1e-9, "size": 1.0 / bins},
                                 marker={"color": _ORANGE, "line": {"color": "#fff", "width": 1}},
                                 hovertemplate="position %{x}<br>%{y} rows<extra></extra>"))
    fig.update_layout(title=f"Top sentence position ({len(xs)} rows)",
                      xaxis={"title": "0 = first sentence, 1 = last", "range": [0, 1]},
                      yaxis={"title": "rows"}, bargap=0.05, height=320, margin={"t": 40, "b": 40, "l": 50, "r": 10})
    return fig


def max_score_figure(rows: Sequence[Mapping[str, Any]]):
    """Distribution of each row's largest |score| (nats): rows near 0 had no sentence that mattered."""
    import plotly.graph_objects as go

    xs = _values(rows, "max_abs_score")
    fig = go.Figure(go.Histogram(x=xs, nbinsx=20, marker={"color": _BLUE, "line": {"color": "#fff", "width": 1}},
                                 hovertemplate="max |score| %{x}<br>%{y} rows<extra></extra>"))
    fig.update_layout(title=f"Max |score| per row ({len(xs)} rows)", xaxis={"title": "max |score| (nats)"},
                      yaxis={"title": "rows"}, bargap=0.05, height=320, margin={"t": 40, "b": 40, "l": 50, "r": 10})
    return fig


def gold_rates(rows: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, int]]:
    """method -> (share of labelled rows whose top sentence is gold, labelled rows)."""
    groups: dict[str, list[bool]] = {}
    for r in rows:
        if r.get("gold_hit") is not None:
            groups.setdefault(str(r.get("method")), []).append(bool(r["gold_hit"]))
    return {m: (sum(hits) / len(hits), len(hits)) for m, hits in sorted(groups.items())}


def gold_rate_figure(rows: Sequence[Mapping[str, Any]]):
    """Bar per method: how often its top sentence is a gold evidence sentence (rows with gold labels)."""
    import plotly.graph_objects as go

    rates = gold_rates(rows)
    fig = go.Figure(go.Bar(x=list(rates), y=[r for r, _ in rates.values()],
                           text=[f"{r:.0%} of {n}" for r, n in rates.values()], textposition="auto",
                           marker={"color": _ORANGE}, hovertemplate="%{x}: %{y:.0%}<extra></extra>"))
    fig.update_layout(title="Gold hit rate by method",
                      yaxis={"title": "top sentence is gold", "range": [0, 1], "tickformat": ".0%"},
                      xaxis={"title": "method"}, height=320, margin={"t": 40, "b": 40, "l": 50, "r": 10})
    return fig
