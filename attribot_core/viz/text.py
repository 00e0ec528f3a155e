"""User text made safe for each place it is shown: HTML, Markdown labels, plotly labels.

The one rule for Markdown (:func:`markdown_literal`) lives here because every label that Streamlit renders
as Markdown (captions, progress texts, pills, ``st.markdown``) can hold user-controlled text: a model
name from a loaded result, a file name, a question. Backslash escapes alone are not enough there:
Streamlit's renderer (GitHub-flavoured Markdown) finds bare URLs, ``www.`` names and e-mail addresses in
the text *after* escapes are resolved and turns them into live links, and reads ``:red[..]`` and
``:smile:`` as its own directives after that too.
"""

from __future__ import annotations

import html
import re
import string
import textwrap
from typing import Any

__all__ = ["esc", "markdown_literal", "plotly_text", "visible_whitespace", "wrapped"]

_MD_ESCAPES = {c: "\\" + c for c in string.punctuation}
_JOINER = "\u2060"  # WORD JOINER: zero width, no line break; invisible in the label
# Where a link or a directive would start: after a scheme's or directive's colon, an e-mail's @, a leading www.
_LINK_STARTS = re.compile(r"[:@]|(?i:www)(?=\.)")


def esc(text: Any) -> str:
    """``text`` for HTML content or a quoted attribute (``<``, ``>``, ``&`` and both quotes escaped)."""
    return html.escape(str(text), quote=True)


def markdown_literal(text: str) -> str:
    """``text`` as Markdown that shows exactly those characters on one line, and never a link.

    Whitespace runs become one space (a label is one line: no paragraphs, no indented code). Every
    ASCII punctuation character is backslash-escaped (CommonMark lets any be), so nothing becomes
    emphasis, a link, an image, a heading, a table, HTML, code or math. An invisible word joiner
    (U+2060) follows every ``:`` and ``@`` and sits between ``www`` and its dot, so ``http://host/``,
    ``www.host`` and ``name@host`` are not auto-linked and ``:red[x]`` is no Streamlit directive.
    """
    one_line = " ".join(str(text).split())
    broken = _LINK_STARTS.sub(lambda m: m.group(0) + _JOINER, one_line)
    return "".join(_MD_ESCAPES.get(c, c) for c in broken)


def visible_whitespace(text: str) -> str:
    """A token's label with its whitespace made visible (``␣`` for a space-only token, ``↵``, ``⇥``)."""
    shown = text.strip(" ") or "␣" * len(text)
    return shown.replace("\n", "↵").replace("\t", "⇥") or "␣"


def plotly_text(text: str, limit: int | None = None) -> str:
    """User text for plotly labels: on one line, shortened to ``limit`` characters, and HTML-escaped
    (plotly renders a few HTML-like tags)."""
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return html.escape(text, quote=False)


def wrapped(text: str, width: int = 46, lines: int = 3) -> str:
    """User text as an escaped plotly label of at most ``lines`` lines (``<br>`` between them)."""
    parts = textwrap.wrap(" ".join(text.split()), width) or [""]
    if len(parts) > lines:
        parts = parts[: lines - 1] + [textwrap.shorten(" ".join(parts[lines - 1 :]), width, placeholder=" …")]
    return "<br>".join(html.escape(p, quote=False) for p in parts)
