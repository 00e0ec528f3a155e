"""The one Markdown rule for user text in labels: shown as typed, never markup, never a link."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from attribot_core.viz.text import markdown_literal, plotly_text, visible_whitespace

JOINER = "\u2060"


def _shown(markdown: str) -> str:
    """What a reader sees: the text of the rendered Markdown (CommonMark), tags dropped, joiners unseen."""
    rendered = MarkdownIt("commonmark").renderInline(markdown)
    assert "<" not in rendered.replace("&lt;", ""), rendered  # no tag of any kind came out
    return rendered.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&") \
        .replace(JOINER, "")


@pytest.mark.parametrize("text", [
    "[x](http://198.51.100.7/) ![i](http://198.51.100.7/p.png)",
    "*em* __strong__ `code` ~~gone~~ <b>bold</b> <!-- c --> &amp; &#x3a;",
    "# heading", "> quote", "- item", "1. item", "| a | b |", "$x^2$", ":red[colour] :material/home: :smile:",
    "<http://198.51.100.7/>", "<mail@example.org>", "a\\*b",
])
def test_markdown_syntax_is_shown_as_typed(text):
    assert _shown(markdown_literal(text)) == text


@pytest.mark.parametrize("text", [
    "http://198.51.100.7/", "see https://example.org/a?b=c.", "HTTP://EXAMPLE.ORG", "ftp://example.org",
    "www.example.org", "go to WWW.example.org now", "mail@example.org", "mailto:mail@example.org",
    "xmpp:me@example.org",
])
def test_bare_urls_www_names_and_e_mail_addresses_are_broken_for_autolinkers(text):
    """GitHub-flavoured Markdown links ``http(s)://``, ``www.`` and ``name@host`` in text after escapes are
    resolved, so the shown text itself must not hold them: a word joiner sits after each ``:`` and ``@``
    and between ``www`` and its dot."""
    seen_by_autolinker = _shown(markdown_literal(text).replace(JOINER, "\x00"))  # keep the joiner in place
    assert not re.search(r"(?i)[a-z]+:/|www\.|[\w.+-]@[\w-]", seen_by_autolinker)
    assert _shown(markdown_literal(text)) == text  # and the reader still sees the text as typed


def test_a_label_is_one_line_with_single_spaces():
    assert markdown_literal("  a\n\n   b\tc  ") == "a b c"
    assert markdown_literal("    indented code") == "indented code"
    assert markdown_literal("") == ""


def test_token_labels_show_their_whitespace():
    assert visible_whitespace(" word") == "word" and visible_whitespace(" ") == "␣"
    assert visible_whitespace("\n") == "↵" and visible_whitespace("\t") == "⇥" and visible_whitespace("") == "␣"


def test_plotly_text_is_escaped_and_shortened():
    assert plotly_text("<b>bold</b>\nline", 12) == "&lt;b&gt;bold&lt;/b&gt;…"
