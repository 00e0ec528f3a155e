"""A result built without a model, for store tests (real segmentation, made-up scores)."""

from __future__ import annotations

from attribot_core import AttributionResult, SpanScore, segment


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
