"""bench/default_model.py: the table of setups, from stored rows (no model, no timing)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import default_model  # noqa: E402


def _row(setup: str, example: str, right: bool, first: float | None, run: str | None) -> dict:
    row = {"setup": setup, "id": example, "answer_right": right, "gold_first": right, "seconds": 10.0,
           "load": [1.0, 1.0], "first_score_s": first}
    return row | ({"run": run} if run else {})


def test_first_scores_are_compared_with_smollm2s_only_when_measured_in_the_same_run():
    rows = [_row("smollm2", "lighthouse", True, 2.0, None), _row("qwen", "lighthouse", True, 8.0, None),
            _row("qwen1.5b+smollm2", "lighthouse", True, 0.5, "2026-12-05T09:26")]
    lines = {line.split("|")[1].strip(): line.split("|") for line in default_model.table(rows, 1).splitlines()[2:]}
    assert lines[default_model.describe("qwen")][6].strip() == "4.00x"  # same run (the first three setups)
    assert lines[default_model.describe("qwen1.5b+smollm2")][6].strip() == "–"  # another run, another load
    assert lines[default_model.describe("qwen1.5b+smollm2")][3].strip() == "1/1 (100%)"
    assert "not measured" in lines[default_model.describe("qwen+smollm2")][3]
