"""The diverging score scale, its strengths, and one colour and one order per method."""

from __future__ import annotations

import pytest
from vizresults import PARAGRAPHS, SCORES, make_result, rgb

from attribot_core.viz import (
    NEGATIVE_RGB,
    NOT_SCORED_COLOUR,
    POSITIVE_RGB,
    max_abs_score,
    method_colour,
    method_order,
    scale_strengths,
    score_colour,
)


def test_scale_is_symmetric_centred_on_zero_and_saturates_at_max_abs():
    assert score_colour(2.0, 2.0) == "rgb({}, {}, {})".format(*POSITIVE_RGB)
    assert score_colour(-2.0, 2.0) == "rgb({}, {}, {})".format(*NEGATIVE_RGB)
    assert score_colour(0.0, 2.0) == "rgb(255, 255, 255)"
    half_pos, half_neg = rgb(score_colour(1.0, 2.0)), rgb(score_colour(-1.0, 2.0))
    for c, white, pos in zip(half_pos, (255,) * 3, POSITIVE_RGB, strict=True):
        assert c == round(white + (pos - white) * 0.5)
    for c, white, neg in zip(half_neg, (255,) * 3, NEGATIVE_RGB, strict=True):
        assert c == round(white + (neg - white) * 0.5)
    assert max_abs_score(make_result(SCORES, PARAGRAPHS)) == 2.0  # |−0.5| < 2; None ignored


def test_intensity_strengthens_small_scores_and_saturates():
    faint, strong = rgb(score_colour(0.2, 2.0, 1.0)), rgb(score_colour(0.2, 2.0, 4.0))
    assert strong[2] < faint[2]  # more orange: less blue
    assert score_colour(1.5, 2.0, 10.0) == score_colour(2.0, 2.0, 1.0)


def test_not_scored_has_its_own_grey_apart_from_zero():
    assert score_colour(None, 1.0) == NOT_SCORED_COLOUR != score_colour(0.0, 1.0)


def test_scale_strengths_keep_the_runner_up_visible_except_on_the_linear_scale():
    scores = [16.8, 1.3, 0.0, None]
    assert scale_strengths(scores, "linear")[:2] == pytest.approx([1.0, 1.3 / 16.8])
    assert scale_strengths(scores, "sqrt")[1] == pytest.approx((1.3 / 16.8) ** 0.5)
    assert scale_strengths(scores, "log")[1] > 0.5 and scale_strengths(scores, "rank")[:2] == [1.0, 0.5]
    for scale in ("linear", "sqrt", "log", "rank"):
        assert scale_strengths(scores, scale)[2:] == [0.0, 0.0]  # zero and not scored stay white
    with pytest.raises(ValueError, match="Unknown colour scale"):
        scale_strengths(scores, "cubic")  # type: ignore[arg-type]


def test_each_method_has_one_colour_and_the_registry_order():
    assert method_colour("loo") != method_colour("hierarchical")
    assert method_colour("my-method") == method_colour("my-method")  # an unknown one is stable too
    assert method_order(["pruning", "loo-naive", "attention", "loo", "custom", "hierarchical"]) == [
        "loo", "loo-naive", "hierarchical", "pruning", "attention", "custom"]
    assert method_order(["b", "a"], {"a": "loo", "b": "hierarchical"}) == ["a", "b"]
