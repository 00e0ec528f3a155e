"""The blocks around a heatmap (response, known answer, run facts, top spans) and the export page."""

from __future__ import annotations

import dataclasses
import html

from vizresults import PARAGRAPHS, SCORES, make_result, parse

from attribot_core import AttributionResult, segment
from attribot_core.examples import get_example, known_for
from attribot_core.viz import (
    facts_html,
    heatmap_document,
    known_answer_html,
    response_html,
    run_facts,
    top_k_table,
    truncation_note,
)


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


def test_a_known_wrong_answer_is_said_with_the_expected_one_and_the_example_note():
    example = get_example("quillfeather")
    result = make_result([0.1 * i for i in range(len(segment(example.context).sentences))], context=example.context,
                         response="The Quillfeather is a fountain pen with a glass nib.")
    note = known_answer_html(result, known_for(result))
    assert 'data-known="wrong"' in note and "Mira Orrin" in note and html.escape(example.note) in note
    right = dataclasses.replace(result, response="Mira Orrin founded it.")
    assert 'data-known="wrong"' not in known_answer_html(right, known_for(right))
    assert known_answer_html(result, None) == ""  # nothing passed, nothing looked up


def test_the_export_page_carries_what_is_known_when_it_is_given():
    example = get_example("quillfeather")
    result = make_result([0.1 * i for i in range(len(segment(example.context).sentences))], context=example.context,
                         response="A fountain pen.")
    page = heatmap_document(result, known=known_for(result))
    assert 'data-known="wrong"' in page and "ab-gold" in page
    assert 'data-known="wrong"' not in heatmap_document(result)


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


def test_a_response_cut_off_at_the_token_limit_is_flagged_in_the_views_and_the_export():
    result = make_result(SCORES, PARAGRAPHS).with_extra(response_complete=False)
    assert "cut off" in truncation_note(result)
    assert 'data-truncated="1"' in response_html(result) and "cut off" in heatmap_document(result)
    assert dict(run_facts(result))["Response"].startswith("cut off")
    complete = make_result(SCORES, PARAGRAPHS).with_extra(response_complete=True)
    assert truncation_note(complete) is None and "data-truncated" not in response_html(complete)
