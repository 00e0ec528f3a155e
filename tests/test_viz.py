"""Views: the escaped HTML heatmap, the export document and the plotly figures, checked on content."""

from __future__ import annotations

import dataclasses
import html
import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from attribot_core import AttributionResult, SpanScore, segment
from attribot_core.viz import (
    NEGATIVE_RGB,
    NOT_SCORED_COLOUR,
    POSITIVE_RGB,
    agreement_rows,
    compare_cost_figure,
    compare_scatter_figure,
    facts_html,
    heatmap_document,
    heatmap_html,
    legend_html,
    max_abs_score,
    method_colour,
    overview_figure,
    paragraph_bar_figure,
    response_html,
    run_facts,
    score_colour,
    sentence_bar_figure,
    top_k_table,
)

CONTEXT = (
    "Ada was born in London. She met Babbage in 1833.\n\n"
    "They built the <Engine> & more. It used punched cards.\n\n"
    "The river is wide. A note says <script>alert('x')</script> here. Nobody knows."
)


def make_result(sentence_scores, paragraph_scores=None, *, context=CONTEXT, method="loo", model="m",
                proxy=None, response="She worked with Babbage.", seconds=1.0, passes=None,
                response_span=None) -> AttributionResult:
    doc = segment(context)
    assert len(sentence_scores) == len(doc.sentences)
    paragraph_scores = paragraph_scores or [None] * len(doc.paragraphs)
    by = lambda s: None if s is None else model  # noqa: E731
    return AttributionResult(
        context=context, question="Who did <b>Ada</b> work with?", response=response, method=method, model=model,
        settings={"paragraphs": True}, log_prob_full=-4.25,
        paragraphs=tuple(SpanScore(p.index, p.start, p.end, p.text, paragraph_scores[p.index],
                                   by(paragraph_scores[p.index])) for p in doc.paragraphs),
        sentences=tuple(SpanScore(s.index, s.start, s.end, s.text, sentence_scores[s.index],
                                  by(sentence_scores[s.index]), s.parent) for s in doc.sentences),
        forward_passes={model: passes if passes is not None else len(doc.sentences) + 1},
        timings={"attribute_s": seconds}, proxy_model=proxy, response_span=response_span, response_tokens=6,
        extra={"tokens_computed": 100, "tokens_reused": 40},
    )


SCORES = [1.0, 2.0, -0.5, 0.0, None, None, 0.25]  # 7 sentences; two not scored (a pruned paragraph)
PARAGRAPHS = [2.5, -0.25, 0.1]


class Spans(HTMLParser):
    """Collects the heatmap's spans (attributes and text) and every tag seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.spans: list[dict] = []
        self.tags: list[str] = []
        self._open: dict | None = None
        self.text: list[str] = []
        self._in_text = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "div" and "ab-text" in (a.get("class") or ""):
            self._in_text = 1
        elif tag == "span" and "ab-span" in (a.get("class") or ""):
            self._open = {**a, "text": ""}

    def handle_endtag(self, tag):
        if tag == "span" and self._open is not None:
            self.spans.append(self._open)
            self._open = None
        elif tag == "div" and self._in_text:
            self._in_text = 0

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data
        if self._in_text:
            self.text.append(data)


def parse(markup: str) -> Spans:
    p = Spans()
    p.feed(markup)
    return p


def rgb(css: str) -> tuple[int, int, int]:
    return tuple(int(x) for x in re.findall(r"\d+", css)[:3])  # type: ignore[return-value]


# -- heatmap ---------------------------------------------------------------------------------------
def test_heatmap_has_one_span_per_sentence_in_order():
    result = make_result(SCORES, PARAGRAPHS)
    spans = parse(heatmap_html(result, "sentence")).spans
    assert [int(s["data-index"]) for s in spans] == list(range(len(result.sentences)))
    assert [s["text"] for s in spans] == [s.text for s in result.sentences]


def test_heatmap_text_is_the_context_exactly_with_its_paragraph_breaks():
    result = make_result(SCORES, PARAGRAPHS)
    for level in ("sentence", "paragraph"):
        assert "".join(parse(heatmap_html(result, level)).text) == CONTEXT


def test_paragraph_level_has_one_span_per_paragraph():
    result = make_result(SCORES, PARAGRAPHS)
    spans = parse(heatmap_html(result, "paragraph")).spans
    assert [s["text"] for s in spans] == [p.text for p in result.paragraphs]
    assert [s["data-sign"] for s in spans] == ["pos", "neg", "pos"]


def test_heatmap_escapes_pasted_markup_so_it_is_shown_not_run():
    nasty = ('First <script>alert(1)</script> sentence. Second <img src=x onerror="alert(2)"> one.\n\n'
             'A "quoted" & <b>bold</b> claim. Last one.')
    result = make_result([1.0, -1.0, 0.5, None], [1.0, None], context=nasty)
    markup = heatmap_html(result) + response_html(result) + heatmap_document(result)
    assert "<script" not in markup.lower() and "<img" not in markup.lower() and "<b>bold" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
    assert "onerror=&quot;alert(2)&quot;" in markup
    assert set(parse(heatmap_html(result)).tags) <= {"style", "div", "span", "b"}  # only our own markup
    assert [s["text"] for s in parse(heatmap_html(result)).spans][0] == "First <script>alert(1)</script> sentence."


def test_colours_follow_the_sign_of_the_score():
    result = make_result(SCORES, PARAGRAPHS)
    spans = parse(heatmap_html(result)).spans
    signs = [s["data-sign"] for s in spans]
    assert signs == ["pos", "pos", "neg", "zero", "none", "none", "pos"]
    for span in spans:
        style = span.get("style", "")
        if span["data-sign"] == "pos":
            r, _, b = rgb(style.split("background-color:")[1])
            assert r > b
        elif span["data-sign"] == "neg":
            r, _, b = rgb(style.split("background-color:")[1])
            assert b > r
        elif span["data-sign"] == "zero":
            assert "rgb(255, 255, 255)" in style


def test_not_scored_is_visibly_different_from_zero():
    result = make_result(SCORES, PARAGRAPHS)
    spans = parse(heatmap_html(result)).spans
    zero, none = spans[3], spans[4]
    assert "ab-none" in none["class"] and "ab-none" not in zero["class"]
    assert "background-color" not in none.get("style", "") and none["data-score"] == ""
    assert "not scored" in none["title"] and "not scored" not in zero["title"]
    assert score_colour(None, 1.0) == NOT_SCORED_COLOUR != score_colour(0.0, 1.0)


def test_scale_is_symmetric_centred_on_zero_and_saturates_at_max_abs():
    assert score_colour(2.0, 2.0) == "rgb({}, {}, {})".format(*POSITIVE_RGB)
    assert score_colour(-2.0, 2.0) == "rgb({}, {}, {})".format(*NEGATIVE_RGB)
    assert score_colour(0.0, 2.0) == "rgb(255, 255, 255)"
    half_pos, half_neg = rgb(score_colour(1.0, 2.0)), rgb(score_colour(-1.0, 2.0))
    for c, white, pos in zip(half_pos, (255,) * 3, POSITIVE_RGB, strict=True):
        assert c == round(white + (pos - white) * 0.5)
    for c, white, neg in zip(half_neg, (255,) * 3, NEGATIVE_RGB, strict=True):
        assert c == round(white + (neg - white) * 0.5)
    assert max_abs_score(make_result(SCORES, PARAGRAPHS)) == 2.0  # |−0.5| < 2; None ignored


def test_intensity_strengthens_small_scores_and_saturates():
    faint, strong = rgb(score_colour(0.2, 2.0, 1.0)), rgb(score_colour(0.2, 2.0, 4.0))
    assert strong[2] < faint[2]  # more orange: less blue
    assert score_colour(1.5, 2.0, 10.0) == score_colour(2.0, 2.0, 1.0)


def test_tooltip_says_score_rank_and_who_scored_it():
    result = make_result(SCORES, PARAGRAPHS, model="smol")
    spans = parse(heatmap_html(result)).spans
    top = spans[1]["title"]
    assert "+2.000 nats" in top and "rank 1 of 5" in top and "scored by smol (target)" in top
    assert "lowers log p(answer) by 2.000 nats" in top
    assert "raises log p(answer) by 0.500 nats" in spans[2]["title"]


def test_legend_says_what_colour_means_in_nats():
    result = make_result(SCORES, PARAGRAPHS)
    legend = legend_html(result, "sentence")
    assert "removing this sentence lowers log p(answer) by up to 2.00 nats" in legend
    assert "not scored" in legend
    assert "not scored" not in legend_html(result, "paragraph")
    assert "removing this paragraph lowers log p(answer) by up to 2.50 nats" in legend_html(result, "paragraph")


def test_response_is_escaped_and_the_attributed_part_is_marked():
    result = make_result(SCORES, PARAGRAPHS, response="Babbage <3 & Ada.", response_span=(0, 7))
    markup = response_html(result)
    assert '<mark class="ab-part" title="the attributed part">Babbage</mark> &lt;3 &amp; Ada.' in markup


def test_export_document_is_a_complete_self_contained_page():
    result = make_result(SCORES, PARAGRAPHS)
    doc = heatmap_document(result)
    assert doc.startswith("<!DOCTYPE html>") and doc.rstrip().endswith("</html>")
    assert '<meta charset="utf-8">' in doc
    lowered = doc.lower()
    for external in ("<script", "http://", "https://", "src=", "@import", "url(", "<link"):
        assert external not in lowered
    assert 'data-level="sentence"' in doc and 'data-level="paragraph"' in doc
    assert "Who did &lt;b&gt;Ada&lt;/b&gt; work with?" in doc
    assert len(parse(doc).spans) == len(result.sentences) + len(result.paragraphs)


def test_top_k_table_ranks_scored_spans_with_their_paragraph():
    table = top_k_table(make_result(SCORES, PARAGRAPHS), 3)
    assert list(table.columns) == ["rank", "score (nats)", "paragraph", "text", "scored by"]
    assert table["rank"].tolist() == [1, 2, 3]
    assert table["score (nats)"].tolist() == [2.0, 1.0, 0.25]
    assert table["paragraph"].tolist() == [1, 1, 3]
    assert len(top_k_table(make_result(SCORES, PARAGRAPHS), 50)) == 5  # not-scored spans never rank


def test_run_facts_name_model_method_passes_time_and_log_p():
    result = make_result(SCORES, PARAGRAPHS, model="<m>", proxy="p", seconds=2.5, passes=9)
    facts = dict(run_facts(result))
    assert facts["Model"] == "<m> · proxy p"
    assert facts["Method"] == "loo (paragraphs=True)"
    assert facts["Forward passes"].startswith("9")
    assert facts["Attribution time"] == "2.50 s"
    assert "-4.250 nats" in facts["log p(answer | full context)"]
    assert "&lt;m&gt;" in facts_html(result) and "<m>" not in facts_html(result)


def test_run_facts_say_when_the_full_context_log_p_was_not_computed():
    result = dataclasses.replace(make_result(SCORES, PARAGRAPHS, method="pruning"), log_prob_full=None)
    assert facts_html(result)  # renders
    assert dict(run_facts(result))["log p(answer | full context)"].startswith("not computed")
    assert AttributionResult.from_json(result.to_json()).log_prob_full is None


# -- figures ---------------------------------------------------------------------------------------
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


def test_paragraph_bars_carry_the_paragraph_index_and_sign_colours():
    result = make_result(SCORES, PARAGRAPHS)
    trace = paragraph_bar_figure(result).data[0]
    assert list(trace.customdata) == [0, 1, 2]
    assert list(trace.y) == PARAGRAPHS
    colours = [rgb(c) for c in trace.marker.color]
    assert colours[0][0] > colours[0][2] and colours[1][2] > colours[1][0]
    assert all(c != (255, 255, 255) for c in colours)  # every bar shows its sign, however small


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
    figures = [sentence_bar_figure(result, 2), overview_figure(result), paragraph_bar_figure(result)]
    spec = "".join(json.dumps(f.to_plotly_json()) for f in figures)
    assert "<script>" not in spec and "&lt;script&gt;" in spec


def test_agreement_rows_compare_each_method_with_exact_loo_and_naive_cost():
    exact = make_result(SCORES, PARAGRAPHS, method="loo", seconds=1.0)
    naive = make_result(SCORES, PARAGRAPHS, method="loo-naive", seconds=4.0)
    noisy = make_result([2.0, 1.0, -0.5, 0.0, None, None, 0.25], PARAGRAPHS, method="hierarchical", seconds=0.5)
    rows = {r["method"]: r for r in agreement_rows({"loo": exact, "loo-naive": naive, "hierarchical": noisy}, k=2)}
    assert rows["loo-naive"]["pearson"] == pytest.approx(1.0)
    assert rows["loo-naive"]["top-2 overlap"] == 1.0
    assert rows["hierarchical"]["spearman"] < 1.0
    assert rows["hierarchical"]["speed-up vs loo-naive"] == pytest.approx(8.0)
    assert rows["loo"]["speed-up vs loo-naive"] == pytest.approx(4.0)


def test_each_method_keeps_its_colour_across_charts():
    exact = make_result(SCORES, PARAGRAPHS, method="loo")
    hier = make_result(SCORES, PARAGRAPHS, method="hierarchical")
    scatter = compare_scatter_figure({"loo": exact, "hierarchical": hier})
    cost = compare_cost_figure({"hierarchical": hier, "loo": exact})
    assert scatter.data[1].marker.color == cost.data[0].marker.color[1] == method_colour("hierarchical")
    assert cost.data[0].marker.color[0] == method_colour("loo") != method_colour("hierarchical")


def test_compare_figures_plot_each_method_against_the_reference():
    exact = make_result(SCORES, PARAGRAPHS, method="loo", seconds=1.0, passes=8)
    naive = make_result(SCORES, PARAGRAPHS, method="loo-naive", seconds=4.0, passes=8)
    hier = make_result([1.0, 2.0, -0.5, 0.0, None, None, None], PARAGRAPHS, method="hierarchical", passes=5)
    results = {"loo": exact, "loo-naive": naive, "hierarchical": hier}
    scatter = compare_scatter_figure(results)
    names = [t.name for t in scatter.data]
    assert names[0] == "y = x" and names[1].startswith("loo-naive (r = 1.000)") and len(names) == 3
    assert len(scatter.data[2].x) == 4  # only sentences both scored
    cost = compare_cost_figure(results)
    assert list(cost.data[0].x) == ["loo", "loo-naive", "hierarchical"]
    assert list(cost.data[1].y) == [8, 8, 5]
    assert cost.data[0].text[0] == "1.00 s (×4.0)"


def test_views_of_a_real_tiny_model_result(tiny_lm, context, question):
    from attribot_core import attribute

    result = attribute(context, question, model=tiny_lm, method="hierarchical", keep_paragraphs=1,
                       response="She worked with Babbage.")
    spans = parse(heatmap_html(result)).spans
    assert len(spans) == len(result.sentences)
    assert {s["data-sign"] for s in spans} & {"none"}  # hierarchical leaves pruned sentences unscored
    assert AttributionResult.from_json(result.to_json()) == result
    for p in range(len(result.paragraphs)):
        assert len(sentence_bar_figure(result, p).data[0].y) == len(segment(context).sentences_of(p))
    assert html.escape(question) in heatmap_document(result)


def test_viz_never_imports_streamlit():
    code = "import sys, attribot_core.viz, attribot_core.examples; sys.exit('streamlit' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# -- colour scales, evidence, truncation, scripts, method order ------------------------------------
def _strength_of(span: dict) -> float:
    r, g, b = rgb(span["style"])
    return (255 - b) / (255 - POSITIVE_RGB[2]) if span["data-sign"] == "pos" else (255 - r) / (255 - NEGATIVE_RGB[0])


def test_one_dominant_sentence_leaves_the_runner_up_visible_on_a_sqrt_log_or_rank_scale():
    scores = [16.8, 1.3, 0.2, 0.0, -0.4, 0.05, 0.1]
    result = make_result(scores)
    strength = {scale: _strength_of(parse(heatmap_html(result, scale=scale)).spans[1])
                for scale in ("linear", "sqrt", "log", "rank")}
    assert strength["linear"] == pytest.approx(1.3 / 16.8, abs=0.01)  # nearly white
    assert strength["sqrt"] == pytest.approx((1.3 / 16.8) ** 0.5, abs=0.01)
    assert strength["log"] > 0.5 and strength["rank"] == pytest.approx(5 / 6, abs=0.01)
    for scale in ("linear", "sqrt", "log", "rank"):
        spans = parse(heatmap_html(result, scale=scale)).spans
        assert _strength_of(spans[0]) == pytest.approx(1.0, abs=0.01)  # the max is full colour on every scale
        assert spans[3]["style"].startswith("background-color: rgb(255, 255, 255)")  # 0 stays white


@pytest.mark.parametrize(("scale", "words"), [("linear", "linear"), ("sqrt", "signed square root"),
                                              ("log", "signed log"), ("rank", "rank")])
def test_the_legend_names_the_colour_scale(scale, words):
    result = make_result(SCORES, PARAGRAPHS)
    legend = legend_html(result, "sentence", scale)
    assert f'data-scale="{scale}"' in legend and f"Colour scale: <b>{words}</b>" in legend
    assert f"Colour scale: <b>{words}</b>" in heatmap_document(result, scale=scale)


def test_unknown_scale_is_an_error():
    with pytest.raises(ValueError, match="Unknown colour scale"):
        heatmap_html(make_result(SCORES, PARAGRAPHS), scale="cubic")


def test_evidence_sentences_of_a_built_in_example_are_outlined_and_a_wrong_answer_is_said():
    from attribot_core.examples import get_example
    from attribot_core.viz import known_answer_html

    example = get_example("quillfeather")
    n = len(segment(example.context).sentences)
    result = make_result([0.1 * i for i in range(n)], context=example.context,
                         response="The Quillfeather is a fountain pen with a glass nib.")
    spans = parse(heatmap_html(result)).spans
    outlined = [s["text"] for s in spans if "ab-gold" in s["class"]]
    assert outlined == list(example.evidence)
    assert "known evidence" in legend_html(result) and "known evidence" in spans[2]["title"]
    note = known_answer_html(result)
    assert 'data-known="wrong"' in note and "Mira Orrin" in note and html.escape(example.note) in note
    right = dataclasses.replace(result, response="Mira Orrin founded it.")
    assert 'data-known="wrong"' not in known_answer_html(right)
    assert not [s for s in parse(heatmap_html(make_result(SCORES, PARAGRAPHS))).spans if "ab-gold" in s["class"]]


def test_gold_labels_carried_by_a_result_are_outlined_too():
    result = make_result(SCORES, PARAGRAPHS).with_extra(gold_evidence=["She met Babbage in 1833."],
                                                       gold_answers=["Babbage"])
    spans = parse(heatmap_html(result)).spans
    assert [s["data-index"] for s in spans if "ab-gold" in s["class"]] == ["1"]


def test_a_response_cut_off_at_the_token_limit_is_flagged_in_the_views_and_the_export():
    from attribot_core.viz import truncation_note

    result = make_result(SCORES, PARAGRAPHS).with_extra(response_complete=False)
    assert "cut off" in truncation_note(result)
    assert 'data-truncated="1"' in response_html(result) and "cut off" in heatmap_document(result)
    assert dict(run_facts(result))["Response"].startswith("cut off")
    complete = make_result(SCORES, PARAGRAPHS).with_extra(response_complete=True)
    assert truncation_note(complete) is None and "data-truncated" not in response_html(complete)


def test_text_carries_dir_auto_for_right_to_left_scripts():
    context = "القاهرة هي عاصمة مصر. يعيش فيها الملايين.\n\nThe Nile is long. It floods."
    result = make_result([0.5, 0.1, 0.2, 0.3], context=context)
    markup = heatmap_html(result)
    assert '<div class="ab-text" dir="auto">' in markup
    assert not [s for s in parse(markup).spans if "dir" in s]  # an isolated span would hide its script
    assert 'class="ab-response" dir="auto"' in response_html(result)
    assert "unicode-bidi: plaintext" in markup  # each paragraph takes its own direction and alignment


def test_every_chart_orders_methods_as_the_registry_does():
    from attribot_core.viz import method_order

    assert method_order(["pruning", "loo-naive", "attention", "loo", "custom", "hierarchical"]) == [
        "loo", "loo-naive", "hierarchical", "pruning", "attention", "custom"]
    results = {m: make_result(SCORES, PARAGRAPHS, method=m) for m in ("hierarchical", "loo-naive", "loo")}
    assert list(compare_cost_figure(results).data[0].x) == ["loo", "loo-naive", "hierarchical"]
    assert [t.name.split(" ")[0] for t in compare_scatter_figure(results).data[1:]] == ["loo-naive", "hierarchical"]
    assert [r["method"] for r in agreement_rows(results)] == ["loo", "loo-naive", "hierarchical"]
