"""Hand-made results and an HTML reader shared by the view tests (no model needed)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from attribot_core import AttributionResult, SpanScore, segment
from attribot_core.viz import NEGATIVE_RGB, POSITIVE_RGB

CONTEXT = (
    "Ada was born in London. She met Babbage in 1833.\n\n"
    "They built the <Engine> & more. It used punched cards.\n\n"
    "The river is wide. A note says <script>alert('x')</script> here. Nobody knows."
)
SCORES = [1.0, 2.0, -0.5, 0.0, None, None, 0.25]  # 7 sentences; two not scored (a pruned paragraph)
PARAGRAPHS = [2.5, -0.25, 0.1]


def make_result(sentence_scores, paragraph_scores=None, *, context=CONTEXT, method="loo", model="m",
                proxy=None, response="She worked with Babbage.", seconds=1.0, passes=None,
                response_span=None) -> AttributionResult:
    """A result with the given scores, as if ``method`` had scored ``context`` on ``model``."""
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


def strength_of(span: dict) -> float:
    """How far a shaded span's background is from white towards its sign's full colour (0..1)."""
    r, g, b = rgb(span["style"])
    return (255 - b) / (255 - POSITIVE_RGB[2]) if span["data-sign"] == "pos" else (255 - r) / (255 - NEGATIVE_RGB[0])
