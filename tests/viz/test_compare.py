"""Drawings of a method comparison: they draw the rows of ``evaluation.compare_rows`` and compute nothing."""

from __future__ import annotations

import pytest
from vizresults import PARAGRAPHS, SCORES, make_result

from attribot_core.metrics import compare_rows
from attribot_core.viz import agreement_table, compare_cost_figure, compare_scatter_figure, method_colour


def test_each_method_keeps_its_colour_across_charts():
    exact = make_result(SCORES, PARAGRAPHS, method="loo")
    hier = make_result(SCORES, PARAGRAPHS, method="hierarchical")
    scatter = compare_scatter_figure({"loo": exact, "hierarchical": hier})
    cost = compare_cost_figure({"hierarchical": hier, "loo": exact})
    assert scatter.data[1].marker.color == cost.data[0].marker.color[1] == method_colour("hierarchical")
    assert cost.data[0].marker.color[0] == method_colour("loo") != method_colour("hierarchical")


def test_compare_figures_plot_each_method_against_the_reference():
    exact = make_result(SCORES, PARAGRAPHS, method="loo", seconds=1.0, passes=8)
    naive = make_result(SCORES, PARAGRAPHS, method="loo-naive", seconds=4.0, passes=8)
    hier = make_result([1.0, 2.0, -0.5, 0.0, None, None, None], PARAGRAPHS, method="hierarchical", passes=5)
    results = {"loo": exact, "loo-naive": naive, "hierarchical": hier}
    scatter = compare_scatter_figure(results, "loo", compare_rows(results, exact))
    names = [t.name for t in scatter.data]
    assert names[0] == "y = x" and names[1].startswith("loo-naive (r = 1.000)") and len(names) == 3
    assert len(scatter.data[2].x) == 4  # only sentences both scored
    cost = compare_cost_figure(results)
    assert list(cost.data[0].x) == ["loo", "loo-naive", "hierarchical"]
    assert list(cost.data[1].y) == [8, 8, 5]
    assert cost.data[0].text[0] == "1.00 s (×4.0)"


def test_every_chart_and_the_table_order_methods_as_the_registry_does():
    results = {m: make_result(SCORES, PARAGRAPHS, method=m) for m in ("hierarchical", "loo-naive", "loo")}
    assert list(compare_cost_figure(results).data[0].x) == ["loo", "loo-naive", "hierarchical"]
    assert [t.name.split(" ")[0] for t in compare_scatter_figure(results).data[1:]] == ["loo-naive", "hierarchical"]
    rows = compare_rows(results, results["loo"])
    assert list(agreement_table(rows)["method"]) == ["loo", "loo-naive", "hierarchical"]


def test_the_agreement_table_draws_the_rows_of_compare_rows_and_computes_nothing():
    exact = make_result(SCORES, PARAGRAPHS, method="loo", seconds=1.0)
    naive = make_result(SCORES, PARAGRAPHS, method="loo-naive", seconds=4.0)
    noisy = make_result([2.0, 1.0, -0.5, 0.0, None, None, 0.25], PARAGRAPHS, method="hierarchical", seconds=0.5)
    results = {"loo": exact, "loo-naive": naive, "hierarchical": noisy}
    rows = compare_rows(results, exact, k=2, baseline_seconds=4.0)
    table = agreement_table(rows, k=2, speedup_over="loo-naive").set_index("method")
    assert list(table.columns) == ["seconds", "forward passes", "pearson", "spearman", "top-2 overlap",
                                   "speed-up vs loo-naive"]
    assert table.loc["loo-naive", "pearson"] == pytest.approx(1.0)
    assert table.loc["loo-naive", "top-2 overlap"] == 1.0
    assert table.loc["hierarchical", "spearman"] < 1.0
    assert table.loc["hierarchical", "speed-up vs loo-naive"] == pytest.approx(8.0)
    assert table.loc["loo", "speed-up vs loo-naive"] == pytest.approx(4.0)
    doctored = [{**row, "pearson": 0.123} for row in rows]  # a view shows the rows' numbers, whatever they are
    assert set(agreement_table(doctored, k=2)["pearson"]) == {0.123}
    assert "speed-up vs loo-naive" not in agreement_table(rows, k=2).columns


def test_the_scatter_names_r_only_from_rows_it_is_given():
    results = {m: make_result(SCORES, PARAGRAPHS, method=m) for m in ("loo", "hierarchical")}
    assert compare_scatter_figure(results).data[1].name == "hierarchical"
    rows = [{**row, "pearson": 0.5} for row in compare_rows(results, results["loo"])]
    assert compare_scatter_figure(results, "loo", rows).data[1].name == "hierarchical (r = 0.500)"


def test_a_scatter_of_two_inexact_runs_never_calls_either_exact():
    results = {"tree": make_result(SCORES, PARAGRAPHS, method="tree"),
               "hierarchical": make_result([1.0, 2.0, -0.5, 0.0, None, None, None], PARAGRAPHS, method="hierarchical")}
    fig = compare_scatter_figure(results, "tree", reference_is_exact=False)
    assert "exact" not in fig.layout.title.text.replace("neither is exact", "")
    assert all("exact" not in (t.hovertemplate or "") for t in fig.data)


def test_cost_bar_labels_are_readable_and_have_room_above_the_tallest_bar():
    results = {m: make_result(SCORES, PARAGRAPHS, method=m, seconds=s, passes=p)
               for m, s, p in [("loo", 1.0, 8), ("loo-naive", 4.0, 8), ("hierarchical", 0.5, 5)]}
    cost = compare_cost_figure(results)
    assert cost.layout.uniformtext.minsize >= 12 and cost.layout.uniformtext.mode == "show"  # never shrunk to 6 px
    assert all(t.textfont.size >= 13 and t.cliponaxis is False for t in cost.data)
    assert cost.layout.yaxis.range[1] > 4.0 and cost.layout.yaxis2.range[1] > 8
