"""bench/eval.py end to end on the real default model (a smoke test of the harness: no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_harness_writes_tables_and_plot(tmp_path):
    out = tmp_path / "quick"
    cmd = [sys.executable, str(ROOT / "bench" / "eval.py"), "--quick", "--examples", "1",
           "--configs", "full stack,attention,surrogate", "--max-new-tokens", "16", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]

    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    configs = {r["config"] for r in rows}
    assert {"loo", "loo-naive", "attention", "surrogate N=16", "full stack k=2 m=3 (self)"} <= configs
    assert not [r for r in rows if "error" in r]

    results = json.loads((out / "results.json").read_text())
    agg = {a["config"]: a for a in results["aggregate"]}
    assert agg["loo"]["spearman"] == pytest.approx(1.0)
    assert agg["loo-naive"]["naive_measured"] == 1
    for a in agg.values():
        assert a["speedup"] > 0 and a["target_equiv_passes"] >= 1 and a["peak_rss_gb"] > 0

    md = (out / "results.md").read_text()
    assert "| configuration | family |" in md and "## Goals" in md and "surrogate N=16" in md
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Spearman" in done.stdout
