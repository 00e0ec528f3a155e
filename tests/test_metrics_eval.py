"""Evaluation metrics (outliers, gold recall), aggregation, the Pareto front and figure, one tiny run."""

from __future__ import annotations

import math

import pytest

from attribot_core import attribute, segment
from attribot_core import evaluation as ev
from attribot_core.metrics import gold_recall_at_k, outlier_recall, outliers


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
    m = ev.faithfulness(exact, exact, gold=[1])
    assert m["pearson"] == pytest.approx(1) and m["spearman"] == pytest.approx(1)
    assert m["top1"] == m["top3"] == m["outlier_recall"] == m["gold@1"] == 1.0


def test_match_gold_finds_gold_sentences_by_text(context):
    doc = segment(context)
    assert ev.match_gold(doc, ["She worked with Charles Babbage on the Analytical Engine."]) == [2]
    assert ev.match_gold(doc, ["not in the text"]) == []


def _row(config, family, speedup, spearman, example="a"):
    return {"example": example, "config": config, "family": family, "method": config, "scores": [],
            "long": False, "speedup": speedup, "spearman": spearman, "pearson": spearman, "wall_s": 1.0}


def test_aggregate_uses_geometric_mean_speedups_and_skips_nan():
    rows = [_row("x", "attribot", 10, 0.5, "a"), _row("x", "attribot", 1000, float("nan"), "b")]
    (agg,) = ev.aggregate(rows)
    assert agg["speedup"] == pytest.approx(100)
    assert agg["spearman"] == 0.5 and agg["n_spearman"] == 1 and agg["n_examples"] == 2


def test_pareto_front_drops_dominated_points():
    pts = [{"speedup": 1, "spearman": 1.0}, {"speedup": 10, "spearman": 0.9},
           {"speedup": 5, "spearman": 0.5}, {"speedup": 100, "spearman": 0.2}]
    assert ev.pareto_front(pts) == [0, 1, 3]


def test_pareto_figure_has_log_speedup_axis_and_one_trace_per_method_in_the_shared_order_and_colours():
    from attribot_core.viz import method_colour

    rows = [_row("attention", "baseline", 30, 0.1), _row("full stack", "attribot", 40, 0.8),
            _row("surrogate N=16", "baseline", 2, 0.3), _row("loo", "exact", 1.5, 1.0)]
    rows[1]["method"], rows[2]["method"] = "pruning", "surrogate"
    fig = ev.pareto_figure(rows)
    assert fig.layout.xaxis.type == "log"
    names = [t.name for t in fig.data]
    assert names == ["loo", "pruning", "surrogate", "attention", "Pareto front"]  # the registry's order
    for trace in fig.data[:-1]:
        assert trace.marker.color == method_colour(trace.name)
    labels = [x for t in fig.data if t.text is not None for x in t.text]
    assert "full stack" in labels and "attention" in labels


def test_compare_rows_from_results_feed_the_figure(tiny_lm, context, question):
    results = {m: attribute(context, question, model=tiny_lm, method=m, response="Babbage.")
               for m in ("loo", "hierarchical", "attention")}
    rows = ev.compare_rows(results, results["loo"], gold=[2])
    by = {r["config"]: r for r in rows}
    assert by["loo"]["spearman"] == pytest.approx(1) and by["loo"]["speedup"] == pytest.approx(1)
    assert by["attention"]["family"] == "baseline" and by["hierarchical"]["family"] == "attribot"
    fig = ev.pareto_figure(rows, metric="spearman")
    assert len(fig.data) >= 3


def test_evaluate_example_scores_every_config_against_exact_loo(tiny_lm, context, question):
    example = {"id": "t1", "context": context, "question": question, "long": False,
               "gold_sentences": ["She worked with Charles Babbage on the Analytical Engine."]}
    seen = []
    setup, rows = ev.evaluate_example(example, tiny_lm, {"self": tiny_lm}, ev.quick_configs("self"),
                                      max_new_tokens=8, on_row=seen.append)
    assert setup.gold == [2] and setup.n_sentences == len(segment(context).sentences)
    by = {r["config"]: r for r in rows}
    assert set(by) == {c.name for c in ev.quick_configs("self")} and len(seen) == len(rows)
    assert not [r for r in rows if "error" in r]
    assert by["loo"]["spearman"] == pytest.approx(1)
    assert by["loo-naive"]["spearman"] == pytest.approx(1)  # cached and naive LOO agree
    assert all(r["naive_measured"] for r in rows)
    assert by["loo-naive"]["speedup"] == pytest.approx(1)
    assert by["attention"]["target_equiv_passes"] == 1
    assert all(r["speedup"] > 0 and r["peak_rss_gb"] > 0 for r in rows)


def test_standard_configs_cover_the_issue():
    names = [c.name for c in ev.standard_configs({"0.5B": "q", "SmolLM2": "s"})]
    for expected in ("loo", "loo-naive", "hierarchical k=1", "hierarchical k=3", "proxy (0.5B)",
                     "proxy (SmolLM2)", "pruning m=3 (0.5B)", "pruning m=5 (SmolLM2)",
                     "full stack k=2 m=5 (0.5B)", "surrogate N=16", "surrogate N=64", "attention"):
        assert expected in names
