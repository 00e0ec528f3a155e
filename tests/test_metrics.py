"""Agreement metrics (correlations, outliers, gold recall), the Pareto front, and finished results compared."""

from __future__ import annotations

import math

import pytest

from attribot_core import attribute
from attribot_core.metrics import (
    compare_rows,
    faithfulness,
    gold_recall_at_k,
    outlier_recall,
    outliers,
    pareto_front,
    pearson,
    spearman,
)


def test_outliers_are_two_std_above_the_mean():
    exact = [0.0] * 9 + [10.0]
    assert outliers(exact) == {9}
    assert outliers([1.0] * 5) == set()
    assert outliers([None, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 5.0]) == {9}


def test_outlier_recall_counts_outliers_in_the_approximate_top():
    exact = [0.0] * 18 + [9.0, 10.0]
    assert outliers(exact) == {18, 19}
    assert outlier_recall(exact, exact) == 1.0
    swapped = [0.0] * 18 + [0.0, 10.0]
    swapped[0] = 5.0
    assert outlier_recall(swapped, exact) == 0.5
    assert math.isnan(outlier_recall(exact, [1.0] * 20))


def test_outlier_recall_is_scale_free():
    exact = [0.0] * 9 + [10.0]
    attention_like = [0.01] * 9 + [0.2]
    assert outlier_recall(attention_like, exact) == 1.0


def test_gold_recall_is_normalised_by_what_fits_in_k():
    scores = [0.1, 0.9, 0.5, 0.2]
    assert gold_recall_at_k(scores, [1, 3], 1) == 1.0  # top-1 is one of two gold sentences
    assert gold_recall_at_k(scores, [1, 3], 3) == 1.0  # both inside the top-3
    assert gold_recall_at_k(scores, [0], 1) == 0.0
    assert gold_recall_at_k(scores, [0, 2], 3) == 0.5
    assert math.isnan(gold_recall_at_k(scores, [], 1))
    assert gold_recall_at_k([None, 1.0, None], [0], 1) == 0.0  # an unscored span never ranks


def test_faithfulness_of_the_reference_to_itself_is_perfect():
    exact = [0.1, 3.0, 0.2, -0.1, 0.0, 0.3, 0.1, 0.0, 0.2, 0.1]
    m = faithfulness(exact, exact, gold=[1])
    assert m["pearson"] == pytest.approx(1) and m["spearman"] == pytest.approx(1)
    assert m["top1"] == m["top3"] == m["outlier_recall"] == m["gold@1"] == 1.0


def test_pareto_front_drops_dominated_points():
    pts = [{"speedup": 1, "spearman": 1.0}, {"speedup": 10, "spearman": 0.9},
           {"speedup": 5, "spearman": 0.5}, {"speedup": 100, "spearman": 0.2}]
    assert pareto_front(pts) == [0, 1, 3]


def test_compare_rows_score_finished_results_against_the_reference(tiny_lm, context, question):
    results = {m: attribute(context, question, model=tiny_lm, method=m, response="Babbage.")
               for m in ("loo", "hierarchical", "attention")}
    rows = compare_rows(results, results["loo"], gold=[2])
    by = {r["config"]: r for r in rows}
    assert by["loo"]["spearman"] == pytest.approx(1) and by["loo"]["speedup"] == pytest.approx(1)
    assert by["attention"]["family"] == "baseline" and by["hierarchical"]["family"] == "attribot"
    assert all(r["n_examples"] == 1 and r["forward_passes"] > 0 for r in rows)
    assert by["hierarchical"]["forward_passes"] == results["hierarchical"].total_forward_passes


def test_a_span_the_method_left_unscored_counts_as_zero_in_the_correlations_not_as_left_out():
    exact = [3.0, 2.0, 1.0, -0.5, 0.2]
    pruned = [3.0, 2.0, None, None, None]  # its two scores are exact: alone they would correlate perfectly
    m = faithfulness(pruned, exact)
    assert m["spearman"] == pytest.approx(spearman([3.0, 2.0, 0.0, 0.0, 0.0], exact)) and m["spearman"] < 1
    assert m["pearson"] == pytest.approx(pearson([3.0, 2.0, 0.0, 0.0, 0.0], exact))
    assert m["top1"] == 1.0 and m["top3"] == pytest.approx(2 / 3)  # unscored spans rank below every scored one
