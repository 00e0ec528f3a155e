"""The one rule that turns gold evidence strings into sentence indices.

Gold labels arrive as text (a batch row's ``gold`` column, an evaluation example's gold sentences, a
built-in example's evidence), while every view and metric speaks of sentence indices. Matching them
in one place keeps the benchmark, the Dataset page, agreement figures and the heatmap's outlines
marking the same sentences for the same labels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

__all__ = ["gold_sentences"]


class _Sentence(Protocol):
    index: int
    start: int
    end: int
    text: str


class HasSentences(Protocol):
    """A result or a document: sentences with character offsets into one context text."""

    @property
    def sentences(self) -> Sequence[_Sentence]: ...


def _text_of(source: HasSentences) -> str:
    text = getattr(source, "context", None)
    return text if isinstance(text, str) else source.text  # a result has .context, a Document .text


_SPACE = re.compile(r"\s+")


def _fold(c: str) -> str:
    low = c.casefold()
    return low if len(low) == 1 else c  # keep one character per character, so offsets map back


def _normalised(text: str) -> tuple[str, list[int]]:
    """``text`` with whitespace runs collapsed to one space and case folded, and for each character
    of it the offset in ``text`` it came from (so a match maps back to the original offsets)."""
    out, where = [], []
    for i, c in enumerate(text):
        if c.isspace():
            if out and out[-1] == " ":
                continue
            c = " "
        out.append(_fold(c))
        where.append(i)
    return "".join(out), where


def _needle(text: str) -> str:
    return "".join(_fold(c) for c in _SPACE.sub(" ", str(text)).strip())


def gold_sentences(result: HasSentences, gold: Sequence[str] | None) -> set[int]:
    """Indices of the sentences of ``result`` (an :class:`AttributionResult` or a segmented
    :class:`~attribot_core.segment.Document`) that are gold evidence.

    A sentence is gold when it overlaps an occurrence of a gold string in the context, both compared
    with whitespace collapsed and case folded (so evidence spanning two sentences marks both), or,
    for a gold string not found in the context, when the sentence's text lies inside it.
    """
    if not gold:
        return set()
    context, where = _normalised(_text_of(result))
    found: set[int] = set()
    for g in gold:
        needle = _needle(g)
        if not needle:
            continue
        hits = [m.start() for m in re.finditer(re.escape(needle), context)]
        for at in hits:
            start, end = where[at], where[at + len(needle) - 1] + 1
            found |= {s.index for s in result.sentences if s.start < end and start < s.end}
        if not hits:
            found |= {s.index for s in result.sentences
                      if (t := _needle(s.text)) and t in needle}
    return found
