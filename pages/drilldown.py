"""Drill-down: the hierarchy paragraph → sentence of the current result, as charts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from attribot_core.viz import overview_figure, paragraph_bar_figure, sentence_bar_figure
from studio import state, ui

state.init()  # idempotent; app.py calls it too (a page also works when run on its own)

ss = st.session_state
st.title("Drill-down")
ui.show_notice()
result, _ = state.current()
if result is None:
    st.info("No result yet: run an attribution on the Attribute page (or open a saved JSON in the sidebar).")
    st.page_link("pages/attribute.py", label="Go to Attribute", icon=":material/edit_note:")
    st.stop()

ui.text_block("Question:", result.question)
ui.text_block("Response:", result.response)
st.plotly_chart(overview_figure(result), key="drill_overview", width="stretch")

n = len(result.paragraphs)
if ss.get("in_drill_paragraph", 0) not in range(n):
    ss["in_drill_paragraph"] = 0

if all(p.score is None for p in result.paragraphs):
    st.caption("This run did not score whole paragraphs; pick a paragraph below to see its sentences.")
else:
    st.caption("Click a paragraph's bar to see its sentences (or use the selector below).")
    event = st.plotly_chart(paragraph_bar_figure(result), key="drill_bars", on_select="rerun",
                            selection_mode="points", width="stretch")
    points = event.selection.points if event is not None else []
    if points:
        clicked = points[0].get("customdata", points[0].get("point_index"))
        if isinstance(clicked, list):
            clicked = clicked[0]
        if clicked != ss.get("_drill_clicked") and clicked in range(n):
            ss["in_drill_paragraph"] = int(clicked)  # a new click wins over the selector
        ss["_drill_clicked"] = clicked


def _label(i: int) -> str:
    p = result.paragraphs[i]
    score = "not scored" if p.score is None else f"{p.score:+.3f} nats"
    return f"¶{i + 1} ({score}): {p.text[:70]}"


paragraph = st.selectbox("Paragraph", range(n), key="in_drill_paragraph", format_func=_label)
st.plotly_chart(sentence_bar_figure(result, paragraph), key="drill_sentences", width="stretch")
ranks = result.rank_of("sentence")
rows = [
    {"sentence": s.index + 1, "score (nats)": s.score, "rank": ranks.get(s.index),
     "scored by": s.scored_by or "not scored", "text": s.text}
    for s in result.sentences if s.paragraph == paragraph
]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
             column_config={"text": st.column_config.TextColumn(width="large")})

st.markdown("**Export this result**")
ui.exports(result, "exp_drill")
