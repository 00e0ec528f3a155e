"""The one gold-matching rule: gold evidence strings -> sentence indices, for results and documents alike."""

from __future__ import annotations

from attribot_core import AttributionResult, SpanScore, segment
from attribot_core.examples import EXAMPLES, known_for
from attribot_core.gold import gold_sentences

CONTEXT = ("The tower is old.  It was\nbuilt in 1874 by Renn. Renn lived nearby.\n\n"
           "The lamp burned paraffin. Today it is automatic.")


def fake_result(context: str, question: str) -> AttributionResult:
    doc = segment(context)
    return AttributionResult(
        context=context, question=question, response="An answer.", method="loo", model="tiny",
        settings={}, log_prob_full=-3.0,
        paragraphs=tuple(SpanScore(p.index, p.start, p.end, p.text, 0.0, "tiny") for p in doc.paragraphs),
        sentences=tuple(SpanScore(s.index, s.start, s.end, s.text, 0.0, "tiny", s.parent) for s in doc.sentences),
        forward_passes={"tiny": 1}, timings={"total_s": 0.1})


def test_a_gold_string_marks_the_sentences_it_overlaps_whitespace_and_case_aside():
    result = fake_result(CONTEXT, "When was it built?")
    assert gold_sentences(result, ["it was built in 1874"]) == {1}  # the newline and double space collapse
    assert gold_sentences(result, ["by Renn. Renn lived"]) == {1, 2}  # evidence across two sentences
    assert gold_sentences(result, ["Nothing like this"]) == set()
    assert gold_sentences(result, []) == set() and gold_sentences(result, None) == set()
    # not in the context as such, but a sentence lies inside it (e.g. evidence joined from two places)
    assert gold_sentences(result, ["The lamp burned paraffin. And more text elsewhere."]) == {3}


def test_a_document_and_a_result_of_the_same_context_get_the_same_sentences():
    result, doc = fake_result(CONTEXT, "q"), segment(CONTEXT)
    for gold in (["it was built in 1874"], ["by Renn. Renn lived"], ["TODAY it is automatic."]):
        assert gold_sentences(doc, gold) == gold_sentences(result, gold)


def test_the_heatmap_outlines_what_the_benchmark_and_the_dataset_page_count():
    for example in EXAMPLES:
        result = fake_result(example.context, example.question)
        assert known_for(result).evidence == tuple(sorted(gold_sentences(result, example.evidence)))
        assert known_for(result).evidence  # every built-in example's evidence is found
