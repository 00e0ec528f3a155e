"""bench/first_order_generated.py: head weights fitted toward the plain sum give the sum back when it is right,
and find the heads that matter when it is not (synthetic data: no model, no timing)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import first_order_generated as bench  # noqa: E402

from attribot_core.estimator import sign_log_within  # noqa: E402


def _synthetic(weights: np.ndarray, examples: int = 24, sentences: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(examples * sentences, len(weights)))
    y = x @ weights + rng.normal(scale=0.05, size=len(x))
    return x, y, np.repeat([f"ex{i:02d}" for i in range(examples)], sentences)


def test_a_large_penalty_gives_the_plain_sum_back_up_to_its_scale():
    x, y, groups = _synthetic(np.ones(6))
    w = bench.fit_toward_sum(x, sign_log_within(y, groups), groups, alpha=1e9)
    np.testing.assert_allclose(w / w[0], np.ones(6), rtol=1e-4)
    assert w[0] > 0


def test_held_out_the_fit_toward_the_sum_finds_heads_the_sum_weighs_wrongly():
    weights = np.array([3.0, 0.0, 0.0, -1.0, 0.0, 0.0])  # the plain sum ranks these badly
    x, y, groups = _synthetic(weights)
    plain = bench.ranking(x.sum(axis=1), y, groups)
    fitted = bench.nested_toward_sum(x, y, groups, folds=4, reps=1)
    assert np.nanmean(fitted[:, 0]) > np.nanmean(plain[:, 0]) + 0.3
    assert np.nanmean(fitted[:, 0]) > 0.9
