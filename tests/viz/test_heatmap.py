"""The context as an escaped HTML heatmap and its legend, checked on content."""

from __future__ import annotations

import html

import pytest
from vizresults import CONTEXT, PARAGRAPHS, SCORES, make_result, parse, rgb, strength_of

from attribot_core import AttributionResult, segment
from attribot_core.examples import Known, get_example, known_for
from attribot_core.viz import heatmap_document, heatmap_html, legend_html, response_html, sentence_bar_figure


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


def test_one_dominant_sentence_leaves_the_runner_up_visible_on_a_sqrt_log_or_rank_scale():
    scores = [16.8, 1.3, 0.2, 0.0, -0.4, 0.05, 0.1]
    result = make_result(scores)
    strength = {scale: strength_of(parse(heatmap_html(result, scale=scale)).spans[1])
                for scale in ("linear", "sqrt", "log", "rank")}
    assert strength["linear"] == pytest.approx(1.3 / 16.8, abs=0.01)  # nearly white
    assert strength["sqrt"] == pytest.approx((1.3 / 16.8) ** 0.5, abs=0.01)
    assert strength["log"] > 0.5 and strength["rank"] == pytest.approx(5 / 6, abs=0.01)
    for scale in ("linear", "sqrt", "log", "rank"):
        spans = parse(heatmap_html(result, scale=scale)).spans
        assert strength_of(spans[0]) == pytest.approx(1.0, abs=0.01)  # the max is full colour on every scale
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


def test_evidence_sentences_of_a_built_in_example_are_outlined():
    example = get_example("quillfeather")
    n = len(segment(example.context).sentences)
    result = make_result([0.1 * i for i in range(n)], context=example.context)
    known = known_for(result)
    spans = parse(heatmap_html(result, known=known)).spans
    outlined = [s["text"] for s in spans if "ab-gold" in s["class"]]
    assert outlined == list(example.evidence)
    assert "known evidence" in legend_html(result, known=known) and "known evidence" in spans[2]["title"]
    assert not [s for s in parse(heatmap_html(make_result(SCORES, PARAGRAPHS))).spans if "ab-gold" in s["class"]]


def test_the_heatmap_outlines_only_what_it_is_given_and_looks_nothing_up():
    example = get_example("quillfeather")
    result = make_result([0.1] * len(segment(example.context).sentences), context=example.context)
    assert not [s for s in parse(heatmap_html(result)).spans if "ab-gold" in s["class"]]  # a built-in, not passed
    assert "known evidence" not in legend_html(result)
    given = Known(evidence=(0, 2), answers=(), source="a test")
    spans = parse(heatmap_html(result, known=given)).spans
    assert [s["data-index"] for s in spans if "ab-gold" in s["class"]] == ["0", "2"]
    paragraphs = parse(heatmap_html(result, "paragraph", known=given)).spans
    assert not [s for s in paragraphs if "ab-gold" in s["class"]]  # evidence is sentences


def test_gold_labels_carried_by_a_result_are_outlined_too():
    result = make_result(SCORES, PARAGRAPHS).with_extra(gold_evidence=["She met Babbage in 1833."],
                                                       gold_answers=["Babbage"])
    spans = parse(heatmap_html(result, known=known_for(result))).spans
    assert [s["data-index"] for s in spans if "ab-gold" in s["class"]] == ["1"]


def test_text_carries_dir_auto_for_right_to_left_scripts():
    context = "القاهرة هي عاصمة مصر. يعيش فيها الملايين.\n\nThe Nile is long. It floods."
    result = make_result([0.5, 0.1, 0.2, 0.3], context=context)
    markup = heatmap_html(result)
    assert '<div class="ab-text" dir="auto">' in markup
    assert not [s for s in parse(markup).spans if "dir" in s]  # an isolated span would hide its script
    assert 'class="ab-response" dir="auto"' in response_html(result)
    assert "unicode-bidi: plaintext" in markup  # each paragraph takes its own direction and alignment


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


def test_every_heatmap_view_uses_the_one_default_scale_unless_told_otherwise():
    from attribot_core.viz import DEFAULT_SCALE

    result = make_result(SCORES, PARAGRAPHS)
    assert DEFAULT_SCALE == "sqrt"
    for markup in (heatmap_html(result), legend_html(result), heatmap_document(result)):
        assert f'data-scale="{DEFAULT_SCALE}"' in markup
    assert 'data-scale="linear"' in heatmap_html(result, scale="linear")


def test_the_legend_of_a_runs_scores_so_far_says_its_maximum_is_provisional():
    from dataclasses import replace

    final = make_result(SCORES, PARAGRAPHS)
    live = replace(final, extra={"provisional": True})
    assert "Provisional scale" in legend_html(live) and "+2.00 nats so far" in legend_html(live)
    assert "Provisional" not in legend_html(final) and "so far" not in legend_html(final)


# -- estimate first, then exact ------------------------------------------------------------------------
ESTIMATES = [0.5, 1.5, -3.0, 0.1, 0.2, -0.1, 0.3]  # the run's one-pass estimate of each of the 7 sentences


def _live(scores) -> AttributionResult:
    from dataclasses import replace

    return replace(make_result(scores), extra={"provisional": True, "estimate": {"sentences": ESTIMATES}})


def test_a_live_heatmap_draws_pending_sentences_in_their_estimates_colour_marked_as_estimate():
    from attribot_core.viz.heatmap import estimate_key

    live = _live([1.0, None, None, None, None, None, None])  # one sentence scored exactly so far
    markup = heatmap_html(live)
    spans = parse(markup).spans
    assert [s["data-kind"] for s in spans] == ["exact"] + ["estimate"] * 6
    assert [s["data-sign"] for s in spans] == ["pos"] + ["pending"] * 6  # the exact score is still to come
    assert all("style" in s for s in spans)  # the whole heatmap is coloured
    assert "ab-estimate" in spans[2]["class"] and "ab-neg" in spans[2]["class"]  # by the estimate's sign
    assert strength_of({**spans[2], "data-sign": "neg"}) == pytest.approx(1.0, abs=0.02)  # -3.0: the scale's end
    assert "estimate -3.000 nats" in spans[2]["title"] and "not scored yet" in spans[2]["title"]
    assert estimate_key() in html.unescape(markup) and "3.00 nats so far" in markup
    assert "not scored yet" not in legend_html(live) and "pruned" not in legend_html(live)  # all coloured
    assert "Estimate vs exact" not in markup  # the summary is for the finished run


def test_a_live_heatmap_without_an_estimate_is_as_before():
    from dataclasses import replace

    live = replace(make_result([1.0, None, None, None, None, None, None]), extra={"provisional": True})
    spans = parse(heatmap_html(live)).spans
    assert all("data-kind" not in s for s in spans) and [s["data-sign"] for s in spans][1:] == ["pending"] * 6
    assert "estimate (one pass)" not in heatmap_html(live)


def test_a_finished_heatmap_compares_estimate_and_exact_in_tooltips_and_one_summary_line():
    from dataclasses import replace

    final = make_result(SCORES, PARAGRAPHS)
    final = replace(final, extra={**final.extra, "estimate": {
        "sentences": ESTIMATES, "paragraphs": [2.0, 0.5, 0.1], "seconds": 0.04, "passes": 1,
        "spearman": 0.8123, "top3": 2 / 3}})
    markup = heatmap_html(final)
    spans = parse(markup).spans
    assert "estimate +1.50 vs exact +2.00" in spans[1]["title"]
    assert [s["data-kind"] for s in spans] == ["exact"] * 4 + ["none", "none", "exact"]  # two pruned
    assert "estimate +0.20 nats (one pass)" in spans[4]["title"]
    assert 'class="ab-estimate-summary"' in markup and 'data-spearman="0.8123"' in markup
    assert "Spearman 0.81 · top-3 overlap 0.67" in html.unescape(markup) and "0.04 s" in markup
    assert "estimate +2.00 vs exact +2.50" in parse(heatmap_html(final, "paragraph")).spans[0]["title"]
    part = replace(final, extra={**final.extra, "span_from_stored": True})  # a part of the response: other target
    assert "Estimate vs exact" not in heatmap_html(part) and "estimate +" not in heatmap_html(part)


def test_a_first_order_preview_says_so_in_the_live_legend_and_its_tooltips():
    from dataclasses import replace

    from attribot_core.viz.heatmap import estimate_key

    live = replace(make_result([1.0, None, None, None, None, None, None]),
                   extra={"provisional": True, "estimate": {"by": "first-order", "sentences": ESTIMATES}})
    markup = heatmap_html(live)
    assert estimate_key("first-order") in html.unescape(markup) and estimate_key() not in html.unescape(markup)
    assert "first-order LOO: a forward and a backward pass, not measured" in parse(markup).spans[1]["title"]


def test_a_finished_heatmap_sums_up_each_preview_the_last_first():
    from dataclasses import replace

    final = make_result(SCORES, PARAGRAPHS)
    final = replace(final, extra={**final.extra, "estimate": {
        "by": "first-order", "sentences": ESTIMATES, "paragraphs": [2.0, 0.5, 0.1], "seconds": 2.5, "passes": 1,
        "spearman": 0.5, "top3": 1.0,
        "before": [{"by": "estimate", "seconds": 0.25, "spearman": 0.125, "top3": 1 / 3},
                   {"by": "first-order-qr", "seconds": 0.5, "spearman": 0.25, "top3": 2 / 3}]}})
    summary = html.unescape(heatmap_html(final))
    assert ("(first-order LOO: a forward and a backward pass, 2.50 s): Spearman 0.50 · top-3 overlap 1.00 over the "
            "sentences; before it, the estimate (first-order LOO through the question and answer: one pass, 0.50 s): "
            "Spearman 0.25 · top-3 overlap 0.67; before it, the estimate (one pass, 0.25 s): Spearman 0.12 · top-3 "
            "overlap 0.33") in summary
    assert 'data-by="first-order"' in summary and 'data-spearman="0.5000"' in summary
