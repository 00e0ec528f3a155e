"""``bench/gpu.py --tiny``: the GPU benchmark's code runs on the CPU, with its exactness check and every row."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import gpu  # noqa: E402


def test_tiny_run_measures_every_configuration_and_batched_scoring_is_exact(tmp_path):
    report = gpu.main(["--tiny", "--out", str(tmp_path)])

    assert report["exactness"]["ok"], report["exactness"]
    assert all(d <= 1e-4 for d in report["exactness"]["max_abs_diff_vs_loo_batch1"].values())
    labels = [label for label, *_ in gpu.RUNS]
    for ctx in report["contexts"]:
        assert [row["label"] for row in ctx["rows"]] == labels
        rows = {row["label"]: row for row in ctx["rows"]}
        n = ctx["sentences"]
        assert rows["loo-naive batch=1"]["forward_passes"] == {"tiny-target (random)": n + 1}
        assert rows["loo batch=1"]["model_calls"] == n + 1
        assert rows["loo auto"]["max_abs_diff_vs_loo"] <= 1e-4  # batching is a speed trick, not an approximation
        stack = rows["full stack (proxy hier. k=2, target top-3)"]["forward_passes"]
        assert stack["tiny-target (random)"] == 4  # the pruned context plus its top 3
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved["contexts"][-1]["rows"][-1]["label"] == "loo-naive batch=1"
    assert "| loo auto |" in (tmp_path / "gpu.md").read_text()


def test_rows_past_the_time_budget_are_skipped_and_said_to_be(tmp_path):
    report = gpu.main(["--tiny", "--out", str(tmp_path), "--budget-s", "0"])

    assert all(row == {"label": row["label"], "skipped": "time budget spent"}
               for ctx in report["contexts"] for row in ctx["rows"])
    assert "skipped: time budget spent" in (tmp_path / "gpu.md").read_text()
