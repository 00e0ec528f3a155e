"""bench/stored_loo.py: the evaluation store's helpers the one-pass benches share."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import stored_loo  # noqa: E402


def test_an_interval_reads_as_mean_low_high():
    assert stored_loo.ci_text([0.5, 0.5, 0.5]) == "0.500 [0.500, 0.500]"
    mean, low, high = (float(x.strip("[],")) for x in stored_loo.ci_text([0.1, 0.4, 0.7, 1.0]).split())
    assert mean == pytest.approx(0.55) and low <= mean <= high and low < high


def test_a_missing_store_ends_the_bench_with_one_line_saying_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(stored_loo, "DB", tmp_path / "eval.sqlite")
    with pytest.raises(SystemExit, match="eval.py --report-only unpacks it"):
        stored_loo.open_store(threads=1)


def test_the_benches_share_their_options():
    args = stored_loo.arguments("a bench", Path("/tmp/report.md")).parse_args(["--suites", "smollm2", "--limit", "3"])
    assert (args.suites, args.limit, args.threads, args.out) == ("smollm2", 3, 2, Path("/tmp/report.md"))
