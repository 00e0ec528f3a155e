"""bench/generated_faithfulness.py: what a row is ranked on, and that the table has the rows issue 19 names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import generated_faithfulness as bench  # noqa: E402


def test_only_the_sentences_exact_loo_scored_are_ranked_and_an_unscored_prediction_counts_as_zero():
    exact = [2.0, None, 1.0, -1.0, 0.5]
    spearman, top1, top3 = bench.ranked([9.0, -50.0, 3.0, None, 1.0], exact)  # None -> 0, between -1 and 0.5
    assert spearman == pytest.approx(1.0)
    assert top1 == 1.0 and top3 == pytest.approx(1.0)
    reversed_spearman, top1, _ = bench.ranked([-2.0, 100.0, -1.0, 1.0, -0.5], exact)  # index 1 ignored
    assert reversed_spearman == pytest.approx(-1.0) and top1 == 0.0


def test_the_table_sets_the_estimate_beside_attention_and_the_surrogate_at_16_and_64():
    runs = {label: (method, params) for label, method, params in bench.METHODS}
    assert runs["attention"][0] == "attention" and runs["estimate"][0] == "estimate"
    assert runs["surrogate N=16"] == ("surrogate", {"n_ablations": 16})
    assert runs["surrogate N=64"] == ("surrogate", {"n_ablations": 64})
    assert runs["first-order"] == ("first-order", {})
    assert runs["first-order (question and response)"] == ("first-order", {"rows": "question and response"})
