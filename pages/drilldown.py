"""Drill-down: the hierarchy paragraph → sentence of the current result, as charts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from attribot_core.viz import overview_figure, sentence_bar_figure
from studio import runs, state, ui

state.init()  # idempotent; app.py calls it too (a page also works when run on its own)

ss = st.session_state
st.title("Drill-down")
ui.show_notice()
result, _ = state.current()
live = runs.group("attribute")
record = runs.store().get(next(iter(live.ids.values()))) if live is not None else None
if record is not None and record.active and record.partial:  # during a run: its scores so far
    result = record.provisional()
    ui.message("info", "A run is in progress: these are its scores so far (spans not scored yet are empty). "
                       "This page shows the full result when the run ends.")
    st.button("Show the latest scores", key="drill_refresh")
elif result is None:
    st.info("No result yet: run an attribution on the Attribute page (or open a saved JSON in the sidebar).")
    st.page_link("pages/attribute.py", label="Go to Attribute", icon=":material/edit_note:")
    st.stop()
provisional = bool(result.extra.get("provisional"))
missing = "not scored yet" if provisional else "not scored (pruned)"

runs.dataset_steps("drill_rows")
ui.text_block("Question:", result.question)
ui.text_block("Response:", result.response)


def _top_paragraph() -> int:
    """The paragraph to open on: the best-scored paragraph, else the paragraph of the best sentence."""
    scored = [p for p in result.paragraphs if p.score is not None]
    if scored:
        return max(scored, key=lambda p: p.score).index
    top = result.top_k(1)
    return top[0].paragraph if top and top[0].paragraph is not None else 0


n = len(result.paragraphs)
if ss["result_serial"] != ss.get("_drill_opened_for"):  # a new result opens on its top paragraph
    ss["_drill_opened_for"] = ss["result_serial"]
    state.put("in_drill_paragraph", _top_paragraph())

if all(p.score is None for p in result.paragraphs):
    st.caption("This run did not score whole paragraphs (only sentences, the ◆). Click a sentence or use the "
               "selector below to see a paragraph's sentences.")
else:
    st.caption("A bar is the LOO of removing the whole paragraph; a ◆ is the LOO of removing one of its sentences. "
               "They are separate ablations: a paragraph's score is not the sum of its sentences' (sentences can "
               "repeat each other, or only matter together). Click a bar or a ◆ to see that paragraph's sentences.")
event = st.plotly_chart(overview_figure(result), key="drill_overview", on_select="rerun", selection_mode="points",
                        width="stretch")
points = event.selection.points if event is not None else []
if points:
    clicked = points[0].get("customdata", points[0].get("point_index"))
    if isinstance(clicked, list):
        clicked = clicked[0]
    if clicked != ss.get("_drill_clicked") and clicked in range(n):
        state.put("in_drill_paragraph", int(clicked))  # a new click wins over the selector
    ss["_drill_clicked"] = clicked


def _label(i: int) -> str:
    """A paragraph as the selector lists it; a passage by its source name (``source 2 · Harbour board minutes``,
    the name every view gives it). Plain text: a selectbox shows its options as text, never as Markdown."""
    p = result.paragraphs[i]
    score = "not scored" if p.score is None else f"{p.score:+.3f} nats"  # whole paragraphs: only if asked
    if result.passages:
        return f"{result.source_label(i)} ({score}): {' '.join(result.passages[i].text.split())[:70]}"
    return f"¶{i + 1} ({score}): {p.text[:70]}"


paragraph = state.widget(st.selectbox, "Passage" if result.passages else "Paragraph", "in_drill_paragraph",
                         _top_paragraph(), options=list(range(n)), format_func=_label)
in_paragraph = [s for s in result.sentences if s.paragraph == paragraph]
if in_paragraph and all(s.score is None for s in in_paragraph):  # no chart of empty bars
    ui.message("info", f"The sentences of {result.source_label(paragraph)} are {missing}"
               + ("." if provisional else ": the method scored this paragraph as a whole and did not open it."))
else:
    st.plotly_chart(sentence_bar_figure(result, paragraph), key="drill_sentences", width="stretch")
ranks = result.rank_of("sentence")
rows = [
    {"sentence": s.index + 1, "score (nats)": missing if s.score is None else f"{s.score:+.3f}",
     "rank": str(ranks[s.index]) if s.index in ranks else "",
     "scored by": s.scored_by or ("" if s.score is not None else missing), "text": s.text}
    for s in in_paragraph
]
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
             column_config={"text": st.column_config.TextColumn(width="large")})

if not provisional:
    st.markdown("**Export this result**")
    ui.exports(result, "exp_drill")
