"""A LOO round's order when its scores are shown as they arrive: the cheapest ablation first, same scores."""

from __future__ import annotations

import pytest

from attribot_core import attribute, segment
from attribot_core.methods.base import _report_order, reporting_partial
from tests.conftest import CONTEXT

RESPONSE = "She worked with Charles Babbage."


def test_the_group_starting_last_comes_first_and_alone_then_the_rest_in_order():
    groups = [[0], [1], [2], [0, 1], [2]]  # three sentences, then two paragraphs
    assert _report_order(groups, step=2) == [[2], [0, 1], [3, 4]]
    assert _report_order(groups, step=1) == [[2], [0], [1], [3], [4]]
    assert _report_order([], step=4) == []


def test_a_shown_round_reports_the_last_sentence_first_and_scores_as_an_unshown_one(tiny_lm):
    doc = segment(CONTEXT)
    quiet = attribute(CONTEXT, "Who?", model=tiny_lm, response=RESPONSE)
    reports: list[tuple[str, dict[int, float]]] = []
    passes: list[tuple[int, int]] = []
    with reporting_partial(lambda level, scores: reports.append((level, dict(scores)))):
        shown = attribute(CONTEXT, "Who?", model=tiny_lm, response=RESPONSE,
                          progress=lambda done, total, *_: passes.append((done, total)))
    assert reports[0] == ("sentence", {len(doc.sentences) - 1: pytest.approx(shown.scores()[-1])})
    assert shown.scores() == pytest.approx(quiet.scores(), abs=1e-6)
    assert shown.scores("paragraph") == pytest.approx(quiet.scores("paragraph"), abs=1e-6)
    assert [done for done, _ in passes] == sorted(done for done, _ in passes)  # progress only grows
    assert passes[-1][0] == passes[-1][1]
