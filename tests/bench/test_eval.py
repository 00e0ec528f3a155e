"""bench/eval.py end to end on the real default model: each configuration a batch in a run store, resumed on rerun,
compared with exact LOO (a smoke test of the driver and the report: no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from attribot_core.agreement import BatchAgreement, RowAgreement
from attribot_core.metrics import Interval
from attribot_core.runs import RunStore

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import eval as bench_eval  # noqa: E402

SHORTEST = "ex037"  # the evaluation set's shortest context (~1,700 characters)


def _eval(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "bench" / "eval.py"), "--suite", "smollm2", "--ids", SHORTEST,
           "--configs", "attention,hierarchical k=1,loo-naive", "--lds-masks", "4",
           "--db", str(tmp_path / "eval.sqlite"), "--out", str(tmp_path / "out"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)


@pytest.mark.slow
def test_each_configuration_is_a_batch_compared_with_exact_loo_and_a_rerun_resumes(tmp_path):
    done = _eval(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    batches = {b["name"]: b for b in RunStore(tmp_path / "eval.sqlite").batches()}
    assert set(batches) == {"smollm2/loo", "smollm2/attention", "smollm2/hierarchical k=1", "smollm2/loo-naive"}
    assert all(b["done"] == 1 and not b["failed"] for b in batches.values())

    results = json.loads((tmp_path / "out" / "results.json").read_text())["smollm2"]["all"]
    by_config = {r["config"]: r for r in results}
    assert by_config["loo"]["metrics"]["spearman"]["mean"] == pytest.approx(1.0)
    assert by_config["loo-naive"]["metrics"]["spearman"]["mean"] == pytest.approx(1.0, abs=1e-3)  # exact, too
    assert by_config["attention"]["metrics"]["forward_passes"]["mean"] == 1
    assert set(by_config["hierarchical k=1"]["measures"]) == {"topk_drop@1", "topk_drop@3", "topk_drop@5", "lds"}
    assert by_config["loo-naive"]["speedup_vs_naive"]["mean"] == pytest.approx(1.0)

    report = (tmp_path / "out" / "report.md").read_text()
    assert "| hierarchical k=1 | 1 |" in report and "top-5 drop" in report
    assert (tmp_path / "out" / "eval-smollm2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = _eval(tmp_path)  # every row is stored: nothing is computed again
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already done" in again.stdout

    redo = _eval(tmp_path, "--redo", "attention")  # e.g. after new weights: that configuration's rows run again
    assert redo.returncode == 0, redo.stderr[-3000:]
    assert "smollm2/attention: dropped 1 stored rows" in redo.stdout
    line = next(ln for ln in redo.stdout.splitlines() if ln.startswith("[1/1]"))
    assert "attention " in line and "hierarchical" not in line  # only it was computed again
    assert RunStore(tmp_path / "eval.sqlite").list(batch="smollm2/attention")[0].status == "done"


def test_every_configuration_of_every_suite_is_a_valid_batch_and_each_uses_the_proxy_it_names():
    for suite in bench_eval.SUITES.values():
        for config in suite.configs:
            settings = bench_eval.batch_settings(suite, config)  # raises on a bad parameter or a missing proxy
            assert settings.model == suite.target
    suite = bench_eval.SUITES["qwen0.5b"]
    own = next(c for c in suite.configs if c.name == "pruning m=3 (0.5B estimate)")
    assert bench_eval.batch_settings(suite, own).models() == [suite.target, suite.target]
    stack = next(c for c in suite.configs if c.name.startswith("full stack"))
    assert bench_eval.batch_settings(suite, stack).models() == [suite.target, suite.proxy]
    big = bench_eval.SUITES["qwen1.5b"]
    by_05b = next(c for c in big.configs if c.name == "full stack k=2 m=3 (0.5B)")
    assert bench_eval.batch_settings(big, by_05b).models() == [big.target, "qwen2.5-coder-0.5b"]


def test_labels_of_points_close_together_do_not_overlap_and_none_runs_off_the_right_edge():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.set_xscale("log")
    ax.set_xlim(1, 100)
    ax.set_ylim(0, 1)
    xy = [(4.0, 0.50), (4.1, 0.50), (4.2, 0.49), (20.0, 0.9), (95.0, 0.2)]
    offsets = bench_eval.label_offsets(ax, xy, ["pruning m=3", "pruning m=5", "proxy", "tree", "estimate"])
    plt.close(fig)
    assert len({dy for _, dy in offsets[:3]}) == 3  # the three crowded labels on three lines
    assert offsets[3] == (4.0, 4.0)  # alone: right of its point, a little above
    assert offsets[4][0] < 0  # at the right edge: left of its point


def test_the_full_stack_goal_is_judged_on_its_means_and_other_configurations_over_the_bar_are_named():
    def line(name: str, family: str, recall: float, speedup: float) -> bench_eval.Line:
        rows = tuple(object() for _ in range(6))  # n = 6 compared rows
        agreement = BatchAgreement(name, "loo", "m", rows, {"outlier_recall": Interval(recall, recall, recall, 6)})
        return bench_eval.Line(bench_eval.Config(name, "m", family=family), agreement,
                               Interval(speedup, speedup - 1, speedup + 1, 6), 6)

    lines = [line("loo", "exact", 1.0, 1.7), line("full stack k=2 m=3 (SmolLM2)", "attribot", 0.8, 18.6),
             line("tree", "attribot", 1.0, 10.0), line("hierarchical k=2", "attribot", 1.0, 8.0),
             line("attention", "baseline", 0.5, 28.0)]
    goal, others = bench_eval.stack_goal(lines).splitlines()
    assert "**not met**" in goal and "0.80 over 6" in goal
    assert "`tree` 1.00 at 10.0x [9.0x, 11.0x] (n = 6)" in others
    assert "hierarchical" not in others and "attention" not in others and "`loo`" not in others
    lines[1] = line("full stack k=2 m=3 (SmolLM2)", "attribot", 0.9, 18.6)
    assert "**met**" in bench_eval.stack_goal(lines)


def test_the_one_pass_methods_are_paired_by_example_with_attention_and_the_surrogate_on_the_rows_both_have():
    def line(name: str, spearman: dict[str, float]) -> bench_eval.Line:
        rows = tuple(RowAgreement(rid, {"spearman": v, "top3": 0.5}, 1.0) for rid, v in spearman.items())
        return bench_eval.Line(bench_eval.Config(name, "m"), BatchAgreement(name, "loo", "m", rows, {}), None, 0)

    lines = [line("attention", {"a": 0.1, "b": 0.3, "c": 0.3}), line("surrogate N=64", {"a": 0.5, "b": 0.5}),
             line(bench_eval.FIRST_ORDER_QR, {"a": 0.4, "b": 0.5, "c": float("nan")}), line("tree", {"a": 1.0})]
    table = bench_eval.paired_table(lines).splitlines()
    assert table[0] == ("| configuration | Spearman − attention (n) | top-3 − attention (n) | Spearman − surrogate "
                        "N=64 (n) | top-3 − surrogate N=64 (n) |")
    (row,) = table[2:]  # only the one-pass configurations that have rows
    # a NaN Spearman (row c) is left out of that column only; the surrogate's columns pair rows a and b
    assert row == (f"| {bench_eval.FIRST_ORDER_QR} | +0.25 [+0.20, +0.30] (2) | +0.00 (3) | "
                   "-0.05 [-0.10, +0.00] (2) | +0.00 (2) |")
    assert bench_eval.paired_table([line("tree", {"a": 1.0})]) == ""


def test_a_figure_is_linked_from_where_each_markdown_file_lives():
    parts = ["### Target", ("speed-up vs faithfulness", ROOT / "docs" / "eval-smollm2.png"), ""]
    assert bench_eval._markdown(parts, ROOT) == "### Target\n![speed-up vs faithfulness](docs/eval-smollm2.png)\n"
    beside = bench_eval._markdown(parts, ROOT / "bench" / "results" / "eval")
    assert "![speed-up vs faithfulness](../../../docs/eval-smollm2.png)" in beside
