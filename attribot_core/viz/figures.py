"""Plotly figures of one result: every paragraph and sentence at a glance, and one paragraph's sentences.

Bars and dots take the heatmap's colours (``colours.score_colour``) with a floor, so every bar shows its
sign however small; not-scored spans are hatched, never drawn as a 0. User text in labels is escaped.
"""

from __future__ import annotations

from ..result import AttributionResult, SpanScore
from .colours import BAR_FLOOR, in_nats, max_abs_score, score_colour
from .text import plotly_text, wrapped

__all__ = ["overview_figure", "sentence_bar_figure"]


def _axis(result: AttributionResult) -> str:
    return "LOO score (nats)" if in_nats(result) else f"{result.method} score (not nats)"


def _fmt(score: float | None) -> str:
    return "not scored" if score is None else f"{score:+.3f} nats"


def overview_figure(result: AttributionResult, intensity: float = 1.0):
    """Every paragraph's own LOO (a bar) and each of its sentences' own LOO (dots in its column).

    A paragraph's score is one ablation (the whole paragraph removed) and each sentence's is another:
    sentence scores do not add up to their paragraph's (sentences can repeat or need each other), so they
    are drawn side by side on one axis rather than nested. ``customdata`` of both traces is the paragraph
    index, so a click on a bar or a dot selects that paragraph.
    """
    import plotly.graph_objects as go

    p_max, s_max = max_abs_score(result, "paragraph"), max_abs_score(result, "sentence")
    pars = result.paragraphs
    names = [f"{_tick(result, p.index)}<br>{_fmt(p.score)}" for p in pars]
    fig = go.Figure()
    fig.add_trace(go.Bar(  # numeric x (labelled ¶n) so the sentence dots can sit inside each paragraph's column
        x=[p.index for p in pars], y=[p.score if p.score is not None else 0.0 for p in pars],
        customdata=[p.index for p in pars], cliponaxis=False,
        name="paragraph removed (its own LOO)", marker=_bar_marker(pars, p_max, intensity), width=0.7,
        # the score is written under the axis (tick text), not over the bar, where the ◆ of a sentence that
        # scored about as high would sit on it
        text=[_fmt(p.score) for p in pars], textposition="none",
        hovertext=[f"{_removed(result, p.index)}: {_fmt(p.score)}<br>{wrapped(p.text, 60, 4)}" for p in pars],
        hovertemplate="%{hovertext}<extra></extra>",
    ))
    dots = [s for s in result.sentences if s.score is not None and s.paragraph is not None]
    per_par: dict[int, list[SpanScore]] = {}
    for s in dots:
        per_par.setdefault(s.paragraph, []).append(s)
    offsets = {s.index: (i - (len(group) - 1) / 2) * min(0.5 / max(len(group), 1), 0.12)
               for group in per_par.values() for i, s in enumerate(group)}
    fig.add_trace(go.Scatter(
        x=[s.paragraph + offsets[s.index] for s in dots], y=[s.score for s in dots], mode="markers",
        customdata=[s.paragraph for s in dots], name="one sentence removed (its own LOO)",
        marker={"size": 12, "symbol": "diamond", "color": [score_colour(s.score, s_max, intensity, floor=BAR_FLOOR)
                                                           for s in dots],
                "line": {"color": "#1b1b1b", "width": 1.5}},
        hovertext=[f"S{s.index + 1}: {_fmt(s.score)}<br>{wrapped(s.text, 60, 4)}" for s in dots],
        hovertemplate="%{hovertext}<extra></extra>",
    ))
    unit = "nats" if in_nats(result) else "score"
    fig.update_layout(
        title={"text": f"Each paragraph removed (bar) and each sentence removed (◆), in {unit}: separate "
                       "ablations,<br>so a paragraph's sentences do not add up to its bar", "font": {"size": 16}},
        font={"size": 14}, height=440, margin={"t": 80, "l": 10, "r": 10, "b": 10}, clickmode="event+select",
        yaxis_title=_axis(result), xaxis={"tickmode": "array", "tickvals": list(range(len(pars))), "ticktext": names,
                                          "tickfont": {"size": 15}},
        legend={"orientation": "h", "y": -0.15, "font": {"size": 14}}, bargap=0.25,
        uniformtext={"minsize": 13, "mode": "show"},
    )
    fig.add_hline(y=0, line_color="#555", line_width=1)
    return fig


def _tick(result: AttributionResult, paragraph: int) -> str:
    """A paragraph's axis name: ``¶2``, or a passage's number and the start of its title (escaped), so the
    chart names sources as every other view does (:meth:`AttributionResult.source_label`), in a tick's room."""
    if not result.passages:
        return f"¶{paragraph + 1}"
    name = result.source_label(paragraph).removeprefix(f"source {paragraph + 1}").removeprefix(" · ")
    return f"[{paragraph + 1}]" + (f" {plotly_text(name, 14)}" if name else "")


def _removed(result: AttributionResult, paragraph: int) -> str:
    """The hover name of a removed paragraph: ``¶2 removed``, or ``source 2 · <title> removed`` (escaped)."""
    if not result.passages:
        return f"¶{paragraph + 1} removed"
    return f"{plotly_text(result.source_label(paragraph), 80)} removed"


def _bar_marker(spans, max_abs: float, intensity: float) -> dict:
    """Bar colours by signed score; not-scored spans hatched, so they never look like a 0."""
    return {
        "color": [score_colour(x.score, max_abs, intensity, floor=BAR_FLOOR) for x in spans],
        "line": {"color": "#555", "width": 1},
        "pattern": {"shape": ["/" if x.score is None else "" for x in spans]},
    }


def sentence_bar_figure(result: AttributionResult, paragraph: int, intensity: float = 1.0):
    """The sentences of one paragraph as horizontal bars with their text; not scored = hatched grey."""
    import plotly.graph_objects as go

    s_max = max_abs_score(result, "sentence")
    sents = [s for s in result.sentences if s.paragraph == paragraph]
    labels = [f"<b>S{s.index + 1}</b> ({_fmt(s.score)})<br>{wrapped(s.text)}" for s in sents]
    fig = go.Figure(go.Bar(
        y=labels,
        x=[s.score if s.score is not None else 0.0 for s in sents],
        orientation="h",
        customdata=[s.index for s in sents],
        marker=_bar_marker(sents, s_max, intensity),
        text=[_fmt(s.score) for s in sents],
        textposition="none",
        hovertext=[plotly_text(s.text, 120) for s in sents],
        hovertemplate="%{text}<br>%{hovertext}<extra></extra>",
    ))
    fig.update_layout(
        title={"text": f"Sentences of {plotly_text(result.source_label(paragraph), 80)}", "font": {"size": 16}},
        font={"size": 14},
        xaxis_title=_axis(result), height=max(260, 100 + 80 * len(sents)),
        margin={"t": 50, "l": 10, "r": 10, "b": 10},
        yaxis={"autorange": "reversed", "automargin": True, "tickfont": {"size": 14}},
    )
    fig.add_vline(x=0, line_color="#555", line_width=1)
    return fig
