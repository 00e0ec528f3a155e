"""The speed-vs-faithfulness figure draws the rows it is given, in the methods' shared order and colours."""

from __future__ import annotations

from attribot_core.viz import method_colour, pareto_figure


def _row(config: str, family: str, speedup: float, spearman: float) -> dict:
    return {"config": config, "family": family, "method": config, "n_examples": 1, "speedup": speedup,
            "spearman": spearman}


def test_pareto_figure_has_log_speedup_axis_and_one_trace_per_method_in_the_shared_order_and_colours():
    rows = [_row("attention", "baseline", 30, 0.1), _row("full stack", "attribot", 40, 0.8),
            _row("surrogate N=16", "baseline", 2, 0.3), _row("loo", "exact", 1.5, 1.0)]
    rows[1]["method"], rows[2]["method"] = "pruning", "surrogate"
    fig = pareto_figure(rows)
    assert fig.layout.xaxis.type == "log"
    names = [t.name for t in fig.data]
    assert names == ["loo", "pruning", "surrogate", "attention", "Pareto front"]  # the registry's order
    for trace in fig.data[:-1]:
        assert trace.marker.color == method_colour(trace.name)
    labels = [x for t in fig.data if t.text is not None for x in t.text]
    assert "full stack" in labels and "attention" in labels


def test_pareto_figure_draws_the_front_through_the_undominated_points():
    rows = [_row("loo", "exact", 1.0, 1.0), _row("hierarchical", "attribot", 10, 0.9),
            _row("attention", "baseline", 5, 0.5), _row("surrogate", "baseline", 0, 0.3)]
    fig = pareto_figure(rows)
    front = next(t for t in fig.data if t.name == "Pareto front")
    assert list(front.x) == [1.0, 10] and list(front.y) == [1.0, 0.9]
    assert "surrogate" not in [t.name for t in fig.data]  # no speed-up measured: nothing to place on a log axis
