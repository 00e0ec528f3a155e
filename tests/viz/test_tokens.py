"""Per-token views: Markdown-safe token labels, token selections as response ranges, the token x sentence matrix."""

import math
import re

import pytest

from attribot_core import attribute
from attribot_core.viz import (
    attributed_tokens,
    focus_css,
    part_note,
    pill_labels,
    selection_ranges,
    token_chips,
    token_matrix,
    token_matrix_figure,
    tokens_html,
)
from tests.conftest import CONTEXT, QUESTION

RESPONSE = "Babbage *and* [Ada](x) :red[met] <b>her</b> the the."


@pytest.fixture(scope="module")
def result(tiny_lm):
    return attribute(CONTEXT, QUESTION, model=tiny_lm, method="loo", response=RESPONSE)


def test_pill_labels_are_distinct_even_for_repeated_tokens(result):
    labels = pill_labels(result)
    assert len(labels) == len(token_chips(result)) == len(set(labels))
    assert [lab.rstrip("\u200b") for lab in labels].count("the") >= 2


def test_token_chips_cover_the_response_and_end_with_the_end_of_turn(result):
    chips = token_chips(result)
    assert "".join(RESPONSE[a:b] for _, a, b in chips) == RESPONSE
    assert chips[-1] == ("<|im_end|>", len(RESPONSE), len(RESPONSE))


def test_adjacent_tokens_become_one_range_and_the_end_token_a_flag(result):
    chips = token_chips(result)
    ranges, end = selection_ranges(result, [2, 0, 1])
    assert ranges == [(chips[0][1], chips[2][2])] and not end
    ranges, end = selection_ranges(result, [0, len(chips) - 1])
    assert ranges == [(chips[0][1], chips[0][2])] and end
    part = result.for_response_chars(ranges, include_end=end)
    on = attributed_tokens(part)
    assert on[0] and on[-1] and sum(on) == 2


def test_tokens_html_escapes_the_response_and_marks_attributed_tokens(result):
    import html
    import re

    markup = tokens_html(result, [True] + [False] * (len(token_chips(result)) - 1), focus=1)
    body = markup.split("</style>", 1)[1]
    assert "<b" not in body  # the response's <b> is text
    shown = html.unescape(re.sub(r"<[^>]+>", "", body))
    assert shown == RESPONSE + " <|im_end|>"
    assert 'data-token="0" data-on="1"' in markup and 'ab-tok-focus" data-token="1"' in markup


def test_matrix_holds_each_sentences_per_token_values(result):
    labels, cols, z = token_matrix(result)
    assert len(labels) == len(z) == len(token_chips(result)) and cols == [s.index for s in result.sentences]
    for j, s in enumerate(result.sentences):
        assert math.fsum(row[j] for row in z) == pytest.approx(s.score, abs=1e-4)


def test_matrix_figure_is_diverging_around_zero_and_clickable(result):
    fig = token_matrix_figure(result, focus=(1, 2))
    heat, cells = fig.data
    assert heat.type == "heatmap" and heat.zmid == 0 and heat.zmin == -heat.zmax
    assert heat.colorscale[1][1] in ("#ffffff", "rgb(255,255,255)")
    assert cells.type == "scatter" and len(cells.customdata) == len(heat.y) * len(heat.x)
    assert list(cells.customdata[len(heat.x) + 2]) == [1, 2]  # row 1, sentence 2
    hover = "".join(cells.hovertext)
    assert "&lt;" in hover and re.search(r"<(?!br>)", hover) is None  # user text escaped; only our <br>
    assert len(fig.layout.shapes) == 2 and fig.layout.yaxis.autorange == "reversed"
    assert fig.layout.height >= 22 * len(heat.y)  # a row per token: tall (scrolled) when long


def test_focus_css_outlines_one_sentence_and_part_note_says_how_exact():
    assert 'data-index="3"' in focus_css("sentence", 3) and focus_css("sentence", None) == ""


def test_part_note_names_the_method_and_exactness(result):
    assert part_note(result.for_response_span(0, 7)).startswith("Exact for loo")
