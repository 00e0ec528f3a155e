"""Which sentence made which word: pick tokens of the response and the context recolours, from stored values.

No model runs here. A result of schema 2 keeps each scored sentence's per-token LOO deltas, so the
attribution of any part of the response is a sum over that part's tokens
(:meth:`AttributionResult.for_response_chars`); a note says whether that equals a re-run for the
method. The token x sentence matrix shows the same values for every token at once; clicking a cell
outlines that token and that sentence.

Widgets: ``st.pills(selection_mode="multi")`` for the tokens (one pill per token, several at once; it
is a plain Streamlit widget, so AppTest and a real browser drive it alike) and ``st.plotly_chart``
with ``on_select`` for the matrix (clicks land on invisible per-cell markers: Streamlit reports no
selection on heatmap traces). Both run on the app's own server; nothing loads from elsewhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import streamlit as st

from attribot_core import AttributionResult
from attribot_core.csvsafe import frame_to_csv
from attribot_core.examples import known_for
from attribot_core.viz import (
    DEFAULT_SCALE,
    attributed_tokens,
    focus_css,
    heatmap_html,
    markdown_literal,
    part_note,
    pill_labels,
    selection_ranges,
    token_chips,
    token_matrix_figure,
    tokens_html,
)

__all__ = ["PartView", "heatmap", "part_view"]


@dataclass(frozen=True)
class PartView:
    """What the context view shows: the result for the picked part (or the whole), and a sentence to outline."""

    result: AttributionResult
    focus_sentence: int | None = None


def _key(result: AttributionResult) -> str:
    """Widget keys per result: token indices mean nothing for another response or run."""
    digest = hashlib.sha1("\x00".join((result.response, result.context, result.method, result.model,
                                       str(result.timings.get("total_s")))).encode()).hexdigest()
    return digest[:10]


def _focus(key: str) -> tuple[int, int] | None:
    """(token, sentence) of the last clicked matrix cell, from the chart's selection state."""
    state: Any = st.session_state.get(key)
    try:
        points = state["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for p in points:
        data = p.get("customdata")
        if isinstance(data, list | tuple) and len(data) == 2:
            return int(data[0]), int(data[1])
    return None


def part_view(result: AttributionResult) -> PartView:
    """The response token by token: pick tokens and get their attribution (no run), plus the matrix.

    Returns what the page's context heatmap and top-k table should show.
    """
    rk = _key(result)
    why = result.why_no_parts()
    chips = token_chips(result)
    if not chips:
        st.caption(markdown_literal(f"Token-level view: {why}"))  # why names the method: text, not Markdown
        return PartView(result)
    focus = _focus(f"tok_matrix_{rk}")
    labels = pill_labels(result)
    picked = st.pills(
        "Explain part of the response: pick one or more tokens", list(range(len(chips))),
        format_func=labels.__getitem__, selection_mode="multi", key=f"tok_pick_{rk}",
        help="The context above recolours by the attribution of just these tokens, summed from the per-token "
             "values kept by the run (no new forward pass). Adjacent tokens form one part of the response.",
        disabled=why is not None,
    )
    shown, attributed = result, []
    if why is not None:
        st.caption(markdown_literal(f"Showing the whole response: {why}"))
    elif picked:
        ranges, include_end = selection_ranges(result, picked)
        try:
            shown = result.for_response_chars(ranges, include_end=include_end)
            attributed = attributed_tokens(shown)
        except ValueError as exc:
            st.warning(str(exc))
    st.html(tokens_html(result, attributed, focus[0] if focus else None))
    if shown is not result:
        st.caption(markdown_literal(f"The context above is shaded by these tokens only. {part_note(shown)} · "
                                    "no model run."))
        st.button("Back to the whole response", key=f"tok_clear_{rk}",
                  on_click=lambda: st.session_state.update({f"tok_pick_{rk}": []}))
    with st.expander("Token × sentence matrix (per-token LOO, nats)", expanded=False):
        _matrix(result, rk, focus)
    return PartView(shown, focus[1] if focus else None)


def _matrix(result: AttributionResult, rk: str, focus: tuple[int, int] | None) -> None:
    fig = token_matrix_figure(result, focus)
    st.caption("Each cell: how much that sentence supports that response token (log p(token | context) − "
               "log p(token | context without the sentence), nats). Click a cell to outline the token above "
               "and the sentence in the context.")
    with st.container(height=min(620, int(fig.layout.height) + 30)):
        st.plotly_chart(fig, key=f"tok_matrix_{rk}", on_select="rerun", selection_mode="points",
                        width="content", config={"displayModeBar": False})
    st.download_button("Download per-token CSV", frame_to_csv(result.to_token_dataframe()),
                       file_name=f"attribot-per-token-{rk}.csv", mime="text/csv", key=f"tok_csv_{rk}",
                       on_click="ignore")


def heatmap(view: PartView, level: str, intensity: float, scale: str = DEFAULT_SCALE) -> str:
    """The context heatmap of ``view`` with the clicked matrix cell's sentence outlined."""
    return focus_css("sentence", view.focus_sentence) + heatmap_html(view.result, level, intensity,  # type: ignore[arg-type]
                                                                     scale=scale, known=known_for(view.result))
