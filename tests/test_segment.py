"""Segmentation: paragraphs and sentences with exact offsets into the user's text."""

from hypothesis import given, settings
from hypothesis import strategies as st

from attribot_core.segment import ZERO_WIDTH, is_blank, segment


def test_abbreviations_do_not_split_sentences():
    doc = segment("Dr. Smith moved to the U.S. on Jan. 5, 1900. He stayed. Mr. Jones left.")
    assert [s.text for s in doc.sentences] == [
        "Dr. Smith moved to the U.S. on Jan. 5, 1900.",
        "He stayed.",
        "Mr. Jones left.",
    ]


def test_blank_lines_separate_paragraphs_and_single_newlines_do_not():
    doc = segment("One. Two.\nStill first.\n\n  \nSecond paragraph.")
    assert [p.text for p in doc.paragraphs] == ["One. Two.\nStill first.", "Second paragraph."]
    assert [s.parent for s in doc.sentences] == [0, 0, 0, 1]


def test_without_blank_lines_every_nonempty_line_is_a_paragraph():
    doc = segment("first line\nsecond line\n\n".rstrip() + "\n  \nthird")
    assert len(doc.paragraphs) == 2  # the "  " line is blank, so blank-line mode
    doc = segment("first line\nsecond line\r\nthird line")
    assert [p.text.strip() for p in doc.paragraphs] == ["first line", "second line", "third line"]


def test_empty_and_whitespace_contexts_have_no_spans():
    for text in ["", "   \n\n \t"]:
        doc = segment(text)
        assert doc.paragraphs == () and doc.sentences == ()


def test_removing_a_sentence_deletes_it_and_one_separator():
    doc = segment("A one. B two.  C three!\n\nD four. E five.")
    assert doc.without([0]) == "B two.  C three!\n\nD four. E five."
    assert doc.without([1]) == "A one. C three!\n\nD four. E five."
    assert doc.without([2]) == "A one. B two.\n\nD four. E five."  # last of its paragraph
    assert doc.without([4]) == "A one. B two.  C three!\n\nD four."
    assert doc.without_paragraphs([0]) == "D four. E five."
    assert doc.without_paragraphs([1]) == "A one. B two.  C three!"
    assert doc.without([]) == doc.text


def test_removing_everything_keeps_only_outer_whitespace():
    doc = segment("\n A. B.\n")
    assert doc.without([0, 1]) == "\n \n"


unicode_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300
) | st.lists(
    st.sampled_from(["Dr. Who", "é", "日本語。", "U.S.", " ", "\n", "\n\n", ".", "?!", "a", "😀", "\u200b", "\r\n"]),
    max_size=60,
).map("".join)


def _visible(text: str) -> str:
    """The text without whitespace and zero-width characters (what a reader sees)."""
    return "".join(c for c in text if not c.isspace() and c not in ZERO_WIDTH)


@settings(max_examples=300, deadline=None)
@given(unicode_text)
def test_offsets_are_exact_on_arbitrary_unicode(text):
    doc = segment(text)
    for spans in (doc.paragraphs, doc.sentences):
        prev_end = 0
        for i, s in enumerate(spans):
            assert s.index == i
            assert text[s.start : s.end] == s.text
            assert s.text == s.text.strip() and s.text
            assert prev_end <= s.start < s.end <= len(text)
            prev_end = s.end
    for s in doc.sentences:  # each sentence lies inside its paragraph
        p = doc.paragraphs[s.parent]
        assert p.start <= s.start and s.end <= p.end
    covered = [False] * len(text)
    for s in doc.sentences:
        covered[s.start : s.end] = [True] * (s.end - s.start)
    assert all(c.isspace() or c in ZERO_WIDTH for c, cov in zip(text, covered, strict=True) if not cov)
    assert doc.without([]) == text
    for s in doc.sentences[:3]:  # deleting a sentence deletes its text and only whitespace besides
        gone = doc.without([s.index])
        assert len(text) - len(gone) >= len(s.text)
        assert _visible(gone) == _visible(text[: s.start] + text[s.end :])


def test_zero_width_characters_after_a_full_stop_do_not_hide_a_sentence_break():
    text = "Ada wrote notes.\u200b She met Babbage.\u200b\u200bThe engine ran.\u2060 It stopped."
    doc = segment(text)
    assert [s.text for s in doc.sentences] == ["Ada wrote notes.", "She met Babbage.", "The engine ran.", "It stopped."]
    assert all(text[s.start : s.end] == s.text for s in doc.sentences)


def test_a_context_of_only_zero_width_characters_is_empty():
    assert segment("\u200b\u200c\n\n\u200d\ufeff").sentences == ()
    assert is_blank("\u200b \u2060\n") and not is_blank("\u200bA")
