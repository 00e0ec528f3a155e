"""The Agreement view's table rows and scatter draw the figures they are given, and escape user text."""

from __future__ import annotations

import math
from dataclasses import replace

from attribot_core.agreement import METRICS, BatchAgreement, RowAgreement
from attribot_core.metrics import Interval
from attribot_core.viz.agreement import agreement_measure_rows, agreement_scatter_figure, agreement_table_rows

NAN = float("nan")


def row(row_id: str, spearman: float, seconds: float, reference_seconds: float) -> RowAgreement:
    values = {k: NAN for k in METRICS if k != "speedup"}
    return RowAgreement(row_id, {**values, "spearman": spearman, "seconds": seconds}, reference_seconds)


def agreement(batch: str, method: str, rows: list[RowAgreement]) -> BatchAgreement:
    metrics = {k: Interval(None, None, None, 0) for k in METRICS}
    metrics["spearman"] = Interval(0.5, 0.25, 0.75, len(rows))
    metrics["speedup"] = Interval(4.0, 3.0, 5.5, len(rows))
    return BatchAgreement(batch, "exact", method, tuple(rows), metrics, {"gone": "not in the batch"})


def test_table_rows_show_each_metric_as_mean_and_interval():
    (table,) = agreement_table_rows([agreement("fast", "hierarchical", [row("a", 0.5, 1.0, 4.0)])])
    assert table["batch"] == "fast" and table["method"] == "hierarchical"
    assert table["rows compared"] == 1 and table["not compared"] == 1
    assert table["Spearman"] == "0.500 [0.250, 0.750]"
    assert table["speed-up vs reference"] == "4.00x [3.00x, 5.50x]"
    assert table["gold top-1"] == "-"


def test_scatter_puts_each_row_at_its_speed_up_and_leaves_out_rows_without_a_value():
    rows = [row("a", 0.5, 1.0, 4.0), row("b", -0.2, 2.0, 4.0), row("c", NAN, 1.0, 4.0)]
    fig = agreement_scatter_figure([agreement("fast", "hierarchical", rows)], "spearman")
    (trace,) = fig.data
    assert list(trace.x) == [4.0, 2.0] and list(trace.y) == [0.5, -0.2]
    assert list(trace.hovertext) == ["a", "b"] and "1 row(s) without a value" in trace.name
    assert fig.layout.xaxis.type == "log" and fig.layout.title.text == "Spearman against exact, per row"
    assert not any(math.isnan(y) for y in trace.y)
    assert list(fig.layout.yaxis.range) == [-1.05, 1.05]  # a correlation's whole range: 1.0 is not at the edge


def test_scatter_of_an_overlap_starts_its_axis_at_zero():
    fig = agreement_scatter_figure([agreement("fast", "hierarchical", [row("a", 0.5, 1.0, 4.0)])], "top1")
    assert list(fig.layout.yaxis.range) == [-0.05, 1.05]


def test_scatter_escapes_batch_names_and_row_ids():
    fig = agreement_scatter_figure([agreement("<i>b</i>", "", [row("<b>x</b>", 1.0, 1.0, 1.0)])])
    (trace,) = fig.data
    assert trace.name.startswith("&lt;i&gt;b&lt;/i&gt;") and list(trace.hovertext) == ["&lt;b&gt;x&lt;/b&gt;"]


def test_measure_rows_show_the_batch_and_the_reference_on_the_same_rows():
    a = replace(agreement("fast", "hierarchical", [row("a", 0.5, 1.0, 4.0)]),
                measures={"topk_drop@1": Interval(2.0, 1.5, 2.5, 3), "lds": Interval(0.4, 0.1, 0.7, 2)},
                reference_measures={"topk_drop@1": Interval(1.0, 0.5, 1.5, 3), "lds": Interval(0.6, 0.3, 0.9, 2)})
    batch, reference = agreement_measure_rows([a, agreement("plain", "tree", [row("a", 0.5, 1.0, 4.0)])])
    assert (batch["batch"], batch["scores of"], batch["rows measured"]) == ("fast", "the batch (hierarchical)", 3)
    assert (reference["batch"], reference["scores of"]) == ("fast", "the reference (exact)")
    assert batch["top-1 log-prob drop (nats)"] == "2.000 [1.500, 2.500]"  # above the reference's: no ceiling
    assert reference["top-1 log-prob drop (nats)"] == "1.000 [0.500, 1.500]"
    assert (batch["LDS"], reference["LDS"]) == ("0.400 [0.100, 0.700]", "0.600 [0.300, 0.900]")
    assert batch["top-5 log-prob drop (nats)"] == "-"  # not measured: a dash, not a zero


def test_no_measure_rows_where_no_batch_carries_the_measures():
    assert agreement_measure_rows([agreement("plain", "tree", [row("a", 0.5, 1.0, 4.0)])]) == []
