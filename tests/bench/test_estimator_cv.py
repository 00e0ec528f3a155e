"""bench/estimator_cv.py: the aggregates over response tokens, and nested cross-validation that scores a recipe
only on examples its fit never saw (synthetic data: no model, no timing)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import estimator_cv  # noqa: E402

from attribot_core.estimator import sign_log_within  # noqa: E402


def test_the_aggregates_over_response_tokens_are_the_mean_max_top3_and_probability_weighted_mean():
    per_token = np.array([[[1.0]], [[2.0]], [[3.0]], [[6.0]]])  # 4 tokens, 1 span, 1 head
    log_probs = np.log([0.5, 0.5, 0.0 + 1e-300, 0.0 + 1e-300])
    agg = estimator_cv.aggregates(per_token, log_probs)
    assert agg["mean"][0, 0] == pytest.approx(3.0)
    assert agg["max"][0, 0] == 6.0
    assert agg["top3"][0, 0] == pytest.approx(11 / 3)
    assert agg["confident"][0, 0] == pytest.approx(1.5)  # only the two sure tokens weigh


def _synthetic(signal: float, examples: int = 24, sentences: int = 12, heads: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((examples * sentences, heads))
    true_w = rng.normal(size=heads)
    y = signal * (x @ true_w) + rng.normal(scale=0.05, size=len(x)) * (1 - signal)
    groups = np.repeat([f"ex{i:02d}" for i in range(examples)], sentences)
    return x, y, groups


def test_nested_cv_recovers_a_linear_signal_on_held_out_examples():
    x, y, groups = _synthetic(signal=1.0)
    cv = estimator_cv.nested_cv(x, y, groups, None, folds=4, reps=1)
    assert list(cv["examples"]) == sorted(set(groups))
    assert np.nanmean(cv["scores"][:, 0]) > 0.95  # Spearman
    assert np.nanmean(cv["scores"][:, 1]) > 0.8  # top-1


def test_nested_cv_finds_nothing_in_noise_and_a_fixed_seed_repeats():
    x, y, groups = _synthetic(signal=0.0)
    first = estimator_cv.nested_cv(x, y, groups, sign_log_within, folds=4, reps=2)
    assert abs(np.nanmean(first["scores"][:, 0])) < 0.15
    again = estimator_cv.nested_cv(x, y, groups, sign_log_within, folds=4, reps=2)
    np.testing.assert_array_equal(first["scores"], again["scores"])


def test_the_report_has_every_recipe_and_a_learning_curve_from_cached_aggregates(tmp_path):
    x, y, groups = _synthetic(signal=1.0, examples=24)
    data = {name: x for name in estimator_cv.AGGREGATES} | {"y": y, "groups": groups, "feature_seconds": np.array(1.0),
                                                             "layers": np.array(2), "heads": np.array(3)}  # 6 heads
    np.savez_compressed(tmp_path / "cache.npz", **data)
    out = tmp_path / "cv.md"
    assert estimator_cv.main(["--cache", str(tmp_path / "cache.npz"), "--out", str(out), "--folds", "3",
                              "--reps", "1"]) == 0
    text = out.read_text()
    assert all(recipe.name in text for recipe in estimator_cv.RECIPES)
    assert "`attention` baseline" in text and "training examples): 10: " in text and ", 16: " in text


def test_the_depth_table_reads_the_first_layers_heads_and_sees_where_the_signal_is():
    rng = np.random.default_rng(3)
    examples, sentences, layers, heads = 24, 12, 4, 3
    mass = rng.random((examples * sentences, layers * heads))  # layer-major, as the features are
    groups = np.repeat([f"ex{i:02d}" for i in range(examples)], sentences)
    last_layer_only = np.sqrt(mass[:, -heads:]) @ rng.normal(size=heads)  # only layer 4 predicts LOO
    data = {"mean": mass, "y": last_layer_only, "groups": groups, "layers": np.array(layers),
            "heads": np.array(heads)}
    rows = [line.split("|") for line in estimator_cv.depth_table(data, np.sqrt(mass), folds=4, reps=1)
            if line.startswith("| ") and line[2].isdigit()]
    spearman = {int(r[1]): float(r[3]) for r in rows}
    assert sorted(spearman) == [2, 4]  # every second layer, and all of them
    assert spearman[4] > 0.9 > 0.3 > spearman[2]
    assert rows[-1][4].strip() == "+0.000 [+0.000, +0.000]"  # every layer against itself
