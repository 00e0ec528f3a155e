"""Results built without a model, for store and export tests (real segmentation, made-up scores)."""

from __future__ import annotations

from attribot_core import AttributionResult, SpanScore, segment
from attribot_core.prompt import DEFAULT_PASSAGE_TEMPLATE
from attribot_core.segment import segment_passages


def fake_result(context: str, question: str, method: str = "loo") -> AttributionResult:
    doc = segment(context)
    return AttributionResult(
        context=context, question=question, response="An answer.", method=method, model="tiny",
        settings={"paragraphs": True}, log_prob_full=-3.0,
        paragraphs=tuple(SpanScore(p.index, p.start, p.end, p.text, 0.5 * p.index, "tiny") for p in doc.paragraphs),
        sentences=tuple(SpanScore(s.index, s.start, s.end, s.text, 1.0 - s.index, "tiny", s.parent)
                        for s in doc.sentences),
        forward_passes={"tiny": 3}, timings={"total_s": 0.1},
    )


def fake_passage_result(passages: list[dict], question: str, scores: list[float]) -> AttributionResult:
    """A result over retrieved ``passages`` (real rendering and segmentation), with the sentence ``scores`` given."""
    doc = segment_passages(passages)
    return AttributionResult(
        context=doc.text, question=question, response="An answer.", method="loo", model="tiny", settings={},
        log_prob_full=-3.0,
        paragraphs=tuple(SpanScore(p.index, p.start, p.end, p.text, None, None) for p in doc.paragraphs),
        sentences=tuple(SpanScore(s.index, s.start, s.end, s.text, v, "tiny", s.parent)
                        for s, v in zip(doc.sentences, scores, strict=True)),
        forward_passes={"tiny": 3}, timings={"total_s": 0.1}, passages=doc.passages,
        passage_template=DEFAULT_PASSAGE_TEMPLATE,
    )
