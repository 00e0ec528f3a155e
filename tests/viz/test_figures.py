"""Plotly figures of one result: the overview and one paragraph's sentences."""

from __future__ import annotations

import json

from vizresults import PARAGRAPHS, SCORES, make_result, rgb

from attribot_core.viz import overview_figure, sentence_bar_figure


def test_overview_draws_paragraph_and_sentence_loo_side_by_side_not_nested():
    result = make_result(SCORES, PARAGRAPHS)
    fig = overview_figure(result)
    bars, dots = fig.data
    assert {t.type for t in fig.data} == {"bar", "scatter"}  # no treemap: nothing implies sentences sum up
    assert list(bars.y) == PARAGRAPHS and list(bars.customdata) == [0, 1, 2]
    scored = [s for s in result.sentences if s.score is not None]
    assert list(dots.y) == [s.score for s in scored]
    assert list(dots.customdata) == [s.paragraph for s in scored]  # a click on a dot selects its paragraph
    assert all(abs(x - s.paragraph) < 0.5 for x, s in zip(dots.x, scored, strict=True))  # in its column
    assert "do not add up" in fig.layout.title.text
    r, _, b = rgb(dots.marker.color[2])
    assert b > r  # the negative sentence is blue


def test_chart_labels_are_legible():
    result = make_result(SCORES, PARAGRAPHS)
    for fig in (overview_figure(result), sentence_bar_figure(result, 0)):
        assert fig.layout.font.size >= 14
    assert sentence_bar_figure(result, 0).layout.yaxis.tickfont.size >= 14


def test_sentence_bars_show_one_paragraph_with_text_and_hatch_not_scored():
    result = make_result(SCORES, PARAGRAPHS)
    fig = sentence_bar_figure(result, 2)
    trace = fig.data[0]
    assert list(trace.customdata) == [4, 5, 6]
    assert trace.y[0] == "<b>S5</b> (not scored)<br>The river is wide."
    assert trace.y[1] == "<b>S6</b> (not scored)<br>A note says &lt;script&gt;alert('x')&lt;/script&gt; here."
    assert trace.y[2].startswith("<b>S7</b> (+0.250 nats)")
    assert list(trace.marker.pattern.shape) == ["/", "/", ""]
    assert list(trace.text)[:2] == ["not scored", "not scored"]
    assert fig.layout.title.text == "Sentences of paragraph 3"


def test_plotly_labels_escape_user_markup():
    result = make_result(SCORES, PARAGRAPHS)
    figures = [sentence_bar_figure(result, 2), overview_figure(result)]
    spec = "".join(json.dumps(f.to_plotly_json()) for f in figures)
    assert "<script>" not in spec and "&lt;script&gt;" in spec


def test_overview_writes_paragraph_scores_under_the_axis_where_no_sentence_marker_can_cover_them():
    fig = overview_figure(make_result(SCORES, PARAGRAPHS))
    bars = fig.data[0]
    assert bars.textposition == "none"  # nothing drawn over the bars, where the ◆ sit
    assert list(fig.layout.xaxis.ticktext) == ["¶1<br>+2.500 nats", "¶2<br>-0.250 nats", "¶3<br>+0.100 nats"]


def test_overview_names_each_passage_by_its_number_and_title_start_escaped():
    from attribot_core.result import AttributionResult, SpanScore
    from attribot_core.segment import segment_passages

    doc = segment_passages([{"id": "a", "title": "Harbour board minutes of 1901", "text": "The pier opened."},
                            {"id": "2", "text": "Gulls nest there."},
                            {"id": "c", "title": "<b>Bold</b> claim", "text": "It closed."}])
    result = AttributionResult(
        context=doc.text, question="When?", response="1901.", method="loo", model="tiny", settings={},
        log_prob_full=-3.0,
        paragraphs=tuple(SpanScore(p.index, p.start, p.end, p.text, 0.5, "tiny") for p in doc.paragraphs),
        sentences=tuple(SpanScore(s.index, s.start, s.end, s.text, 0.1, "tiny", s.parent) for s in doc.sentences),
        forward_passes={"tiny": 3}, timings={"total_s": 0.1}, passages=doc.passages)
    ticks = [t.split("<br>")[0] for t in overview_figure(result).layout.xaxis.ticktext]
    assert ticks == ["[1] Harbour board…", "[2]", "[3] &lt;b&gt;Bold&lt;/b&gt; c…"]  # title text, never markup
