"""The response token by token: labels for a token picker, the chosen tokens as character ranges, the
tokens as escaped HTML, and the token x sentence matrix of per-token LOO (a table and a plotly heatmap).

Pure functions of a result's stored per-token data (``result.per_token``); no model runs here.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..result import AttributionResult
from .colours import NEGATIVE_RGB, POSITIVE_RGB, Level
from .heatmap import CSS
from .text import esc, markdown_literal, plotly_text, visible_whitespace

__all__ = [
    "attributed_tokens",
    "focus_css",
    "part_note",
    "pill_labels",
    "selection_ranges",
    "token_chips",
    "token_matrix",
    "token_matrix_figure",
    "tokens_html",
]

_TOKEN_CSS = """
.ab-tokens { white-space: pre-wrap; background: #f6f7f9; border-left: 3px solid #1f5fa6; padding: 0.5rem 0.8rem;
  border-radius: 3px; line-height: 1.9; }
.ab-tok { border-radius: 2px; border-bottom: 1px dotted #b0b0b0; }
.ab-tok-on { background: #ffe9a8; border-bottom: 2px solid #b8860b; }
.ab-tok-focus { outline: 2px solid #1b1b1b; }
.ab-tok-end { color: #777; font-size: 0.8em; }
"""


def pill_labels(result: AttributionResult) -> list[str]:
    """One Markdown-safe label per token of :func:`token_chips`, all distinct.

    Widgets that report a choice by its label (Streamlit's pills) need distinct labels; a repeated
    token gets zero-width spaces appended, which nobody sees.
    """
    seen: dict[str, int] = {}
    out = []
    for label, _, _ in token_chips(result):
        shown = markdown_literal(visible_whitespace(label))
        out.append(shown + "\u200b" * seen.get(shown, 0))
        seen[shown] = seen.get(shown, 0) + 1
    return out


def token_chips(result: AttributionResult) -> list[tuple[str, int, int]]:
    """The response token by token (of the model most sentences were scored on): (label, start, end).

    ``start``/``end`` are characters of ``result.response``; the end-of-turn token has the empty range
    at the end and its special-token name as label. Empty without per-token data.
    """
    if result.per_token is None:
        return []
    axis = result.per_token.main_axis(prefer=result.model)
    offsets = axis.response_offsets(result.response)
    return [(label, a, b) for label, (a, b) in zip(axis.labels, offsets, strict=True)]


def selection_ranges(result: AttributionResult, tokens: Sequence[int]) -> tuple[list[tuple[int, int]], bool]:
    """Response character ranges of the chosen tokens (adjacent ones merged) and whether the end token is in.

    Feed them to :meth:`AttributionResult.for_response_chars`; one range is then exactly
    ``attribute(..., response_span=range)``.
    """
    chips = token_chips(result)
    ranges: list[tuple[int, int]] = []
    include_end = False
    for i in sorted(set(tokens)):
        _, a, b = chips[i]
        if a == b:
            include_end = include_end or a >= len(result.response)
        elif ranges and ranges[-1][1] == a:
            ranges[-1] = (ranges[-1][0], b)
        else:
            ranges.append((a, b))
    return ranges, include_end


def attributed_tokens(part: AttributionResult) -> list[bool]:
    """Which tokens of :func:`token_chips` a part result attributes (the end token can join the last word)."""
    if part.per_token is None:
        return []
    ranges = [tuple(r) for r in part.extra.get("response_ranges", [])]
    if not ranges and part.response_span is not None:
        ranges = [part.response_span]
    axis = part.per_token.main_axis(prefer=part.model)
    return axis.mask(ranges, bool(part.extra.get("response_end_token")))  # type: ignore[arg-type]


def tokens_html(result: AttributionResult, attributed: Sequence[bool] = (), focus: int | None = None) -> str:
    """The response shown token by token (escaped); attributed tokens marked, ``focus`` outlined."""
    pieces = []
    on = list(attributed) or [False] * len(token_chips(result))
    for i, ((label, a, b), is_on) in enumerate(zip(token_chips(result), on, strict=True)):
        cls = "ab-tok" + (" ab-tok-on" if is_on else "") + (" ab-tok-focus" if i == focus else "")
        text = result.response[a:b] if b > a else f" {label}"
        cls += "" if b > a else " ab-tok-end"
        pieces.append(f'<span class="{cls}" data-token="{i}" data-on="{int(is_on)}" '
                      f'title="token {i + 1}: {esc(label)}">{esc(text)}</span>')
    return f'<style>{CSS}{_TOKEN_CSS}</style><div class="ab-root"><div class="ab-tokens">{"".join(pieces)}</div></div>'


def focus_css(level: Level, index: int | None) -> str:
    """CSS that outlines one span of :func:`heatmap_html` (the sentence of a clicked matrix cell)."""
    if index is None:
        return ""
    return (f'<style>.ab-heatmap .ab-span[data-level="{level}"][data-index="{int(index)}"] '
            "{ outline: 3px solid #1b1b1b; outline-offset: 1px; }</style>")


def part_note(part: AttributionResult) -> str:
    """One line on how exact a part's scores are (from :meth:`AttributionResult.for_response_chars`)."""
    note = part.extra.get("span_note", "").split(": ", 1)[-1]
    if part.extra.get("span_exact"):
        return (f"Exact for {part.method}: the same scores as re-running it with only these tokens attributed "
                f"({note})")
    return f"Not exact for {part.method}: {note}"


def token_matrix(result: AttributionResult) -> tuple[list[str], list[int], list[list[float | None]]]:
    """Token labels, the sentence indices shown, and ``z[token][sentence]`` per-token LOO (nats, None = none).

    Tokens are those of :func:`token_chips`; a sentence scored on another model's tokens (a proxy of
    another tokenizer in pruning) or not scored has no values here.
    """
    pt = result.per_token
    if pt is None:
        return [], [], []
    axis = pt.main_axis(prefer=result.model)
    cols = [s.index for s in result.sentences]
    z: list[list[float | None]] = [[None] * len(cols) for _ in range(len(axis))]
    for j, values in enumerate(pt.sentences):
        if values is not None and values.model == axis.model:
            for t, v in enumerate(values.values):
                z[t][j] = v
    return list(axis.labels), cols, z


def token_matrix_figure(result: AttributionResult, focus: tuple[int, int] | None = None):
    """Token x sentence heatmap of per-token LOO (nats): rows = response tokens, columns = sentences.

    Diverging colours centred on 0 (blue - white - orange, as the context heatmap), symmetric at
    ±max |value|; hover gives the token, the sentence's text and the value. An invisible marker per cell
    makes cells clickable (Streamlit reports clicks on scatter points, not on heatmap cells); its
    ``customdata`` is ``[token, sentence]``. ``focus`` = (token, sentence) draws an outline on that row
    and column.
    """
    import plotly.graph_objects as go

    labels, cols, z = token_matrix(result)
    finite = [abs(v) for row in z for v in row if v is not None]
    top = max(finite, default=0.0) or 1.0
    ylabels = [f"{i + 1:>3} {plotly_text(visible_whitespace(lab), 18)}" for i, lab in enumerate(labels)]
    xlabels = [f"S{c + 1}" for c in cols]
    sentences = {s.index: s for s in result.sentences}
    hover = [[f"token {i + 1} “{plotly_text(labels[i], 30)}” · sentence {c + 1}: "
              f"{plotly_text(sentences[c].text, 70)}<br>"
              + (f"{v:+.4f} nats" if v is not None else "no per-token value (not scored on these tokens)")
              for c, v in zip(cols, row, strict=True)] for i, row in enumerate(z)]
    neg, pos = f"rgb{NEGATIVE_RGB}", f"rgb{POSITIVE_RGB}"
    fig = go.Figure(go.Heatmap(
        z=z, x=xlabels, y=ylabels, zmin=-top, zmax=top, zmid=0.0,
        colorscale=[[0.0, neg], [0.5, "#ffffff"], [1.0, pos]],
        colorbar={"title": {"text": "nats"}, "thickness": 12}, hoverinfo="skip", xgap=1, ygap=1,
    ))
    # Hover and clicks come from these markers: plotly hit-tests only traces that take hover.
    fig.add_trace(go.Scatter(
        x=[x for _ in ylabels for x in xlabels], y=[y for y in ylabels for _ in xlabels], mode="markers",
        marker={"symbol": "square", "size": 16, "opacity": 0.01, "color": "#000000"},
        customdata=[[t, c] for t in range(len(ylabels)) for c in cols],
        hovertext=[h for row in hover for h in row], hovertemplate="%{hovertext}<extra></extra>",
        showlegend=False, name="cells",
    ))
    if focus is not None and 0 <= focus[0] < len(ylabels) and focus[1] in cols:
        t, c = focus[0], cols.index(focus[1])
        for x0, x1, y0, y1 in ((-0.5, len(cols) - 0.5, t - 0.5, t + 0.5), (c - 0.5, c + 0.5, -0.5, len(ylabels) - 0.5)):
            fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, line={"color": "#1b1b1b", "width": 2},
                          fillcolor="rgba(0,0,0,0)")
    fig.update_layout(
        height=max(260, 22 * len(ylabels) + 90), width=max(420, 34 * len(cols) + 260),
        margin={"t": 30, "l": 10, "r": 10, "b": 10}, clickmode="event+select", dragmode=False,
        hoverlabel={"align": "left"},
    )
    fig.update_yaxes(autorange="reversed", type="category", tickfont={"family": "monospace", "size": 11})
    fig.update_xaxes(type="category", side="top", tickangle=0)
    return fig
