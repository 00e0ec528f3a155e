"""The benchmark harness (bench/harness.py): gold matching, aggregation over examples, one tiny evaluation."""

from __future__ import annotations

import pytest

from attribot_core import segment
from bench.harness import aggregate, evaluate_example, match_gold, quick_configs, standard_configs


def test_match_gold_finds_gold_sentences_by_text(context):
    doc = segment(context)
    assert match_gold(doc, ["She worked with Charles Babbage on the Analytical Engine."]) == [2]
    assert match_gold(doc, ["not in the text"]) == []


def _row(config, family, speedup, spearman, example="a"):
    return {"example": example, "config": config, "family": family, "method": config, "scores": [],
            "long": False, "speedup": speedup, "spearman": spearman, "pearson": spearman, "wall_s": 1.0}


def test_aggregate_uses_geometric_mean_speedups_and_skips_nan():
    rows = [_row("x", "attribot", 10, 0.5, "a"), _row("x", "attribot", 1000, float("nan"), "b")]
    (agg,) = aggregate(rows)
    assert agg["speedup"] == pytest.approx(100)
    assert agg["spearman"] == 0.5 and agg["n_spearman"] == 1 and agg["n_examples"] == 2


def test_evaluate_example_scores_every_config_against_exact_loo(tiny_lm, context, question):
    example = {"id": "t1", "context": context, "question": question, "long": False,
               "gold_sentences": ["She worked with Charles Babbage on the Analytical Engine."]}
    seen = []
    setup, rows = evaluate_example(example, tiny_lm, {"self": tiny_lm}, quick_configs("self"),
                                      max_new_tokens=8, on_row=seen.append)
    assert setup.gold == [2] and setup.n_sentences == len(segment(context).sentences)
    by = {r["config"]: r for r in rows}
    assert set(by) == {c.name for c in quick_configs("self")} and len(seen) == len(rows)
    assert not [r for r in rows if "error" in r]
    assert by["loo"]["spearman"] == pytest.approx(1)
    assert by["loo-naive"]["spearman"] == pytest.approx(1)  # cached and naive LOO agree
    assert all(r["naive_measured"] for r in rows)
    assert by["loo-naive"]["speedup"] == pytest.approx(1)
    assert by["attention"]["target_equiv_passes"] == 1
    assert all(r["speedup"] > 0 and r["peak_rss_gb"] > 0 for r in rows)


def test_standard_configs_cover_the_issue():
    names = [c.name for c in standard_configs({"0.5B": "q", "SmolLM2": "s"})]
    for expected in ("loo", "loo-naive", "hierarchical k=1", "hierarchical k=3", "proxy (0.5B)",
                     "proxy (SmolLM2)", "pruning m=3 (0.5B)", "pruning m=5 (SmolLM2)",
                     "full stack k=2 m=5 (0.5B)", "surrogate N=16", "surrogate N=64", "attention"):
        assert expected in names
