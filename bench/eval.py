"""Faithfulness and speed of every method against exact LOO on the 42-example evaluation set, on the batch layer.

    python bench/eval.py --suite smollm2              # SmolLM2-135M: every method and baseline, top-k drop and LDS
    python bench/eval.py --suite qwen0.5b             # Qwen2.5-Coder-0.5B target, SmolLM2 proxy
    python bench/eval.py --suite smollm2 --examples 2 --db /tmp/eval.sqlite --out /tmp/eval   # a smoke run
    python bench/eval.py --report-only --readme       # tables, figures and the README block from what is stored
    python bench/eval.py --suite smollm2 --redo estimate   # after new estimator weights: its rows made again

Each configuration of a suite is a batch named ``<suite>/<configuration>`` in one SQLite run store (default
``bench/results/eval/eval.sqlite``, kept in git gzipped as ``eval.sqlite.gz``: a new machine starts from what
earlier sessions measured):
rerunning resumes, rows already done are skipped, and the
stored runs open in the app (History, Dataset → Agreement). Examples run one at a time through every
configuration, so a run stopped early leaves the configurations at the same n. The response is generated once
per example by the suite's first batch (exact ``loo``) and handed to the others. The tables are
:func:`attribot_core.agreement.compare` of each batch against the suite's ``loo`` batch (mean over examples,
95 % bootstrap interval) and, for the speed-up, against its ``loo-naive`` batch on the rows both ran.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import shutil
import sqlite3
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribot_core.agreement import BatchAgreement, BatchRow, compare, load_batch  # noqa: E402
from attribot_core.api import InputError  # noqa: E402
from attribot_core.metrics import Interval, bootstrap_ci, pareto_front  # noqa: E402
from attribot_core.runs.batch import BatchSettings  # noqa: E402

EVALSET = ROOT / "bench" / "evalset" / "evalset.jsonl"
DEFAULT_DB = ROOT / "bench" / "results" / "eval" / "eval.sqlite"
KEPT_DB = DEFAULT_DB.with_suffix(".sqlite.gz")
"""The default database as kept in git: gzipped (5 MB of SQLite is 0.6 MB), unpacked before a run, packed after."""
DEFAULT_OUT = ROOT / "bench" / "results" / "eval"
DOCS = ROOT / "docs"
REFERENCE, NAIVE = "loo", "loo-naive"
FIRST_ORDER_QR = "first-order (question and response)"
"""First-order LOO through the rows after the context only: about one forward pass (``rows`` in the Methods)."""
GOAL_STACK_SPEEDUP, GOAL_STACK_OUTLIERS = 10.0, 0.9  # issue 17: full stack on the 0.5B, long examples
FEW = 5  # below this many examples a goal's verdict is said to be provisional


@dataclass(frozen=True)
class Config:
    """One configuration: a method with its parameters (a batch per suite)."""

    name: str
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    family: str = "attribot"  # exact | attribot | baseline | learned | gradient
    only_long: bool = False  # run on the long examples only (naive LOO of a slow target)
    own_proxy: bool = False  # the target is its own proxy (pruning ranked by the target's learned estimate)
    proxy: str | None = None  # another proxy than the suite's (the 1.5B with the 0.5B as proxy)


@dataclass(frozen=True)
class Suite:
    """A target (and its proxy) with the configurations run on it."""

    name: str
    target: str
    proxy: str | None
    configs: tuple[Config, ...]
    measures: tuple[str, ...] = ()
    title: str = ""


_EXACT = (Config(REFERENCE, "loo", {"paragraphs": False}, "exact"),)
SUITES: dict[str, Suite] = {
    "smollm2": Suite(
        "smollm2", "smollm2-135m", None,
        (*_EXACT,
         Config("attention", "attention", family="baseline"),
         Config("estimate", "estimate", family="learned"),
         Config("first-order", "first-order", family="gradient"),
         Config(FIRST_ORDER_QR, "first-order", {"rows": "question and response"}, family="gradient"),
         *(Config(f"hierarchical k={k}", "hierarchical", {"keep_paragraphs": k}) for k in (1, 2, 3)),
         Config("tree", "tree"),
         Config("surrogate N=16", "surrogate", {"n_ablations": 16}, "baseline"),
         Config("surrogate N=64", "surrogate", {"n_ablations": 64}, "baseline"),
         Config(NAIVE, "loo-naive", {"paragraphs": False}, "exact")),
        measures=("topk", "lds"), title="Target SmolLM2-135M"),
    "qwen0.5b": Suite(
        "qwen0.5b", "qwen2.5-coder-0.5b", "smollm2-135m",
        (*_EXACT,
         Config("attention", "attention", family="baseline"),
         Config("estimate", "estimate", family="learned"),
         Config("first-order", "first-order", family="gradient"),
         Config(FIRST_ORDER_QR, "first-order", {"rows": "question and response"}, family="gradient"),
         Config("proxy (SmolLM2)", "proxy", {"paragraphs": False}),
         *(Config(f"pruning m={m} (SmolLM2)", "pruning", {"keep_sentences": m}) for m in (3, 5)),
         Config("full stack k=2 m=3 (SmolLM2)", "pruning", {"keep_sentences": 3, "keep_paragraphs": 2}),
         Config("hierarchical k=2", "hierarchical", {"keep_paragraphs": 2}),
         Config("tree", "tree"),
         # issue 19's ranking stage: the 0.5B's own one-pass estimate ranks, exact LOO for the top ones
         Config("pruning m=3 (0.5B estimate)", "pruning", {"keep_sentences": 3, "proxy_stage": "estimate"},
                own_proxy=True),
         Config("tree (0.5B estimate)", "tree", {"proxy_stage": "estimate"}),
         Config("pruning m=3 (0.5B first-order)", "pruning", {"keep_sentences": 3, "proxy_stage": "first-order"},
                own_proxy=True),
         Config("surrogate N=16", "surrogate", {"n_ablations": 16}, "baseline"),
         Config("surrogate N=64", "surrogate", {"n_ablations": 64}, "baseline"),
         Config(NAIVE, "loo-naive", {"paragraphs": False}, "exact", only_long=True)),
        title="Target Qwen2.5-Coder-0.5B, proxy SmolLM2-135M"),
    "qwen1.5b": Suite(
        "qwen1.5b", "qwen2.5-coder-1.5b", "smollm2-135m",
        (*_EXACT,
         Config("full stack k=2 m=3 (SmolLM2)", "pruning", {"keep_sentences": 3, "keep_paragraphs": 2}),
         Config("full stack k=2 m=3 (0.5B)", "pruning", {"keep_sentences": 3, "keep_paragraphs": 2},
                proxy="qwen2.5-coder-0.5b"),
         Config("hierarchical k=2", "hierarchical", {"keep_paragraphs": 2}),
         Config("tree", "tree"),
         Config(NAIVE, "loo-naive", {"paragraphs": False}, "exact", only_long=True)),
        title="Target Qwen2.5-Coder-1.5B, proxies SmolLM2-135M and Qwen2.5-Coder-0.5B"),
}


def batch_name(suite: Suite, config: Config) -> str:
    return f"{suite.name}/{config.name}"


def batch_settings(suite: Suite, config: Config) -> BatchSettings:
    """The batch settings of ``config`` in ``suite`` (checked: a bad parameter fails here, before any model)."""
    return BatchSettings(suite.target, config.method, tuple(sorted(config.params.items())),
                         suite.target if config.own_proxy else config.proxy or suite.proxy, 64)


# -- data --------------------------------------------------------------------------------------------
def load_examples(ids: str | None = None) -> list[dict]:
    """The evaluation set, long and short examples interleaved (a partial run covers both kinds)."""
    if not EVALSET.exists():
        sys.exit(f"The evaluation set is missing: {EVALSET} (generate it with bench/evalset/generate.py).")
    rows = [json.loads(line) for line in EVALSET.read_text().splitlines() if line.strip()]
    if ids:
        wanted = ids.split(",")
        return [r for r in rows if r["id"] in wanted]
    longs, shorts = [r for r in rows if r.get("long")], [r for r in rows if not r.get("long")]
    out: list[dict] = []
    while longs or shorts:  # two short, one long: the set's own ratio (27 short, 15 long)
        out += shorts[:2] + longs[:1]
        shorts, longs = shorts[2:], longs[1:]
    return out


def batch_rows(examples: Sequence[dict]):
    """The examples as batch rows: id, context, question, gold sentences (no response: the target answers)."""
    from attribot_core.runs.inputs import rows_from_records

    return rows_from_records([{"id": e["id"], "context": e["context"], "question": e["question"],
                               "gold": e["gold_sentences"]} for e in examples])


# -- run ---------------------------------------------------------------------------------------------
def run(suite: Suite, db: Path, examples: list[dict], threads: int | None, measures: tuple[str, ...],
        masks: int, log: Path) -> None:
    """Every configuration of ``suite`` over ``examples``, one example at a time (resumes what is stored)."""
    from attribot_core.models import PRESETS, preset_status
    from attribot_core.runs import RunStore
    from attribot_core.runs.backends import LocalBackend
    from attribot_core.runs.batch import measure_batch, run_batch

    for spec in {s for s in (suite.target, suite.proxy, *(c.proxy for c in suite.configs)) if s}:
        ok, message = preset_status(PRESETS[spec])
        if not ok:
            sys.exit(f"{spec}: {message}")
    db.parent.mkdir(parents=True, exist_ok=True)
    store = RunStore(db)
    backend = LocalBackend(threads=threads)
    settings = {c.name: batch_settings(suite, c) for c in suite.configs}
    rows = batch_rows(examples)
    longs = {e["id"] for e in examples if e.get("long")}
    with log.open("a") as out:
        out.write(json.dumps({"started": time.strftime("%Y-%m-%d %H:%M:%S"), "suite": suite.name,
                              "argv": sys.argv[1:], "load_average_1min": os.getloadavg()[0],
                              "torch_threads": threads, "cpu": platform.processor() or platform.machine()}) + "\n")
    for n, row in enumerate(rows, 1):
        t0 = time.perf_counter()
        line = []
        for config in suite.configs:
            if config.only_long and row.row_id not in longs:
                continue
            name = batch_name(suite, config)
            summary = run_batch(store, name, [row], settings[config.name], backend)
            took = summary.seconds
            if measures:
                m = measure_batch(store, name, measures, models=backend.models, masks=masks)
                took += m.seconds
            if summary.failed:
                line.append(f"{config.name}: FAILED {'; '.join(summary.messages) or ''}")
            elif summary.done:
                line.append(f"{config.name} {took:.1f}s")
        print(f"[{n}/{len(rows)}] {suite.name} {row.row_id} in {time.perf_counter() - t0:.0f}s: "
              + (", ".join(line) or "already done"), flush=True)


def unpack(packed: Path, db: Path) -> None:
    with gzip.open(packed, "rb") as src, db.open("wb") as dst:
        shutil.copyfileobj(src, dst)


def pack(db: Path, packed: Path) -> None:
    """Fold the write-ahead log into ``db`` and write its gzipped copy (what git keeps)."""
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with db.open("rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)


def drop_rows(db: Path, suite: Suite, configs: Sequence[str]) -> None:
    """Delete every stored row of these configurations of ``suite``, so the next run makes them again."""
    from attribot_core.runs import RunStore

    unknown = set(configs) - {c.name for c in suite.configs}
    if unknown:
        sys.exit(f"Suite {suite.name} has no configuration {', '.join(sorted(unknown))}.")
    store = RunStore(db)
    for config in suite.configs:
        if config.name in configs:
            records = store.list(batch=batch_name(suite, config), limit=1_000_000)
            for record in records:
                store.delete(record.id)
            print(f"{batch_name(suite, config)}: dropped {len(records)} stored rows, to run again", flush=True)


# -- report ------------------------------------------------------------------------------------------
@dataclass
class Line:
    """One configuration's row of a table: agreement with exact LOO, and speed-up against naive LOO."""

    config: Config
    agreement: BatchAgreement
    speedup: Interval | None  # vs naive LOO, on the rows both ran
    speedup_n: int


def _subset(rows: Mapping[str, BatchRow], ids: set[str] | None) -> dict[str, BatchRow]:
    return dict(rows) if ids is None else {k: v for k, v in rows.items() if k in ids}


def suite_lines(store, suite: Suite, ids: set[str] | None = None) -> list[Line]:
    """Every configuration of ``suite`` that has finished rows, on the examples ``ids`` (None: all)."""
    names = {b["name"] for b in store.batches()}
    loaded: dict[str, dict[str, BatchRow]] = {}
    for config in suite.configs:
        name = batch_name(suite, config)
        if name in names:
            loaded[config.name] = _subset(load_batch(store, name), ids)
    reference, naive = loaded.get(REFERENCE), loaded.get(NAIVE)
    if not reference:
        return []
    lines = []
    for config in suite.configs:
        rows = loaded.get(config.name)
        if not rows or not any(r.result is not None for r in rows.values()):
            continue
        try:
            agreement = compare(reference, rows, batch=config.name, reference_name=REFERENCE)
        except InputError:  # no finished row in common with the reference yet
            continue
        speedup, speedup_n = None, 0
        if naive:
            try:
                vs_naive = compare(naive, rows, batch=config.name, reference_name=NAIVE)
                speedup, speedup_n = vs_naive.metrics["speedup"], vs_naive.n
            except InputError:  # no finished row in common with naive LOO yet
                pass
        lines.append(Line(config, agreement, speedup, speedup_n))
    return lines


def _iv(iv: Interval | None, fmt: str = "{:.2f}") -> str:
    if iv is None or iv.mean is None or (isinstance(iv.mean, float) and math.isnan(iv.mean)):
        return "–"
    if iv.lo is None or iv.hi is None or iv.lo == iv.hi:
        return fmt.format(iv.mean)
    return f"{fmt.format(iv.mean)} [{fmt.format(iv.lo)}, {fmt.format(iv.hi)}]"


def faithfulness_table(lines: Sequence[Line]) -> str:
    head = ["configuration", "n", "Spearman", "Pearson", "top-1", "top-3", "outlier recall", "gold@1",
            "forward passes / row (all models)", "s / row", "speed-up vs naive LOO (n)"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for line in lines:
        m = line.agreement.metrics
        speed = f"{_iv(line.speedup, '{:.1f}x')} ({line.speedup_n})" if line.speedup else "–"
        out.append("| " + " | ".join([
            line.config.name, str(line.agreement.n), _iv(m["spearman"]), _iv(m["pearson"]), _iv(m["top1"]),
            _iv(m["top3"]), _iv(m["outlier_recall"]), _iv(m["gold@1"]), _iv(m["forward_passes"], "{:.1f}"),
            _iv(m["seconds"], "{:.2f}"), speed]) + " |")
    return "\n".join(out)


MEASURE_KEYS = ("topk_drop@1", "topk_drop@3", "topk_drop@5", "lds")


ONE_PASS = ("estimate", FIRST_ORDER_QR, "first-order", "surrogate N=16")
"""The configurations issue 19's goal sets against ``attention`` and the surrogate at N = 64, paired by example."""
PAIRED_WITH = ("attention", "surrogate N=64")


def paired_table(lines: Sequence[Line]) -> str:
    """Issue 19's comparison: each of :data:`ONE_PASS`'s per-example Spearman against exact LOO minus that of
    each of :data:`PAIRED_WITH` on the same examples, mean [95 % bootstrap interval] (n), and the same for
    the top-3 overlap; empty when neither baseline has rows."""
    by_name = {ln.config.name: {r.row_id: r.values for r in ln.agreement.rows} for ln in lines}
    bases = [b for b in PAIRED_WITH if b in by_name]
    if not bases:
        return ""
    head = ["configuration", *(f"{what} − {b} (n)" for b in bases for what in ("Spearman", "top-3"))]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in ONE_PASS:
        if name not in by_name:
            continue
        cells = []
        for base in bases:
            common = sorted(by_name[name].keys() & by_name[base].keys())
            for key in ("spearman", "top3"):
                diffs = [by_name[name][r][key] - by_name[base][r][key] for r in common
                         if not (math.isnan(by_name[name][r][key]) or math.isnan(by_name[base][r][key]))]
                ci = bootstrap_ci(diffs) if diffs else None
                cells.append(f"{_iv(ci, '{:+.2f}')} ({len(diffs)})" if ci else "–")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def measures_table(lines: Sequence[Line]) -> str:
    """Top-k log-prob drops (nats) and LDS, each configuration beside exact LOO on the same rows."""
    measured = [line for line in lines if line.agreement.measures]
    if not measured:
        return ""
    head = ["configuration", "n", "top-1 drop", "top-3 drop", "top-5 drop", "LDS"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for line in measured:
        a = line.agreement
        n = sum(1 for r in a.rows if not math.isnan(r.values.get("lds", float("nan"))))
        out.append("| " + " | ".join([line.config.name, str(n), *(_iv(a.measures.get(k)) for k in MEASURE_KEYS)])
                   + " |")
    return "\n".join(out)


def label_offsets(ax: Any, xy: Sequence[tuple[float, float]], names: Sequence[str],
                  size: float = 8.0) -> list[tuple[float, float]]:
    """Offsets (points) that keep the labels of nearby points from printing over each other.

    A label goes right of its point, or left of it where it would run past the plot's right edge; one that
    would overlap a label already placed moves down a line at a time (drawn with a thin leader line).
    Placement runs from the top of the plot down, in points on the page.
    """
    ax.figure.canvas.draw()  # settle the limits
    to_pt = ax.transData + ax.figure.dpi_scale_trans.inverted()
    right_edge = ax.get_window_extent().x1 * 72 / ax.figure.dpi
    placed: list[tuple[float, float, float]] = []  # (left, bottom, right)
    line, char = size * 1.25, size * 0.55
    offsets = [(4.0, 4.0)] * len(xy)
    for i in sorted(range(len(xy)), key=lambda i: (-xy[i][1], xy[i][0])):
        px, py = (v * 72 for v in to_pt.transform(xy[i]))
        width = char * len(names[i])
        dx = 4.0 if px + 4 + width < right_edge else -4.0 - width
        left, right, dy = px + dx, px + dx + width, 4.0
        while any(left < r and x0 < right and abs((py + dy) - b) < line for x0, b, r in placed):
            dy -= line
        placed.append((left, py + dy, right))
        offsets[i] = (dx, dy)
    return offsets


def pareto_png(lines: Sequence[Line], path: Path, title: str) -> None:
    """Speed-up against naive LOO (x) vs Spearman and outlier recall (y), 95 % intervals drawn on both axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"exact": "#636efa", "attribot": "#00a36c", "baseline": "#ef553b", "learned": "#ab63fa",
              "gradient": "#ffa15a"}
    pts = [ln for ln in lines if ln.speedup is not None and ln.speedup.mean]
    fig, axes = plt.subplots(1, 2, figsize=(15, 6))
    for ax, metric, label in zip(axes, ("spearman", "outlier_recall"), ("Spearman", "outlier recall"), strict=True):
        shown = [ln for ln in pts if ln.agreement.metrics[metric].mean is not None
                 and not math.isnan(ln.agreement.metrics[metric].mean)]
        for ln in shown:
            x, y = ln.speedup, ln.agreement.metrics[metric]
            ax.errorbar([x.mean], [y.mean], xerr=[[x.mean - x.lo], [x.hi - x.mean]],
                        yerr=[[y.mean - y.lo], [y.hi - y.mean]], fmt="o", capsize=3,
                        color=colors.get(ln.config.family, "gray"), alpha=0.85)
        ax.set_xscale("log")
        ax.set_ylim(-0.55 if metric == "spearman" else -0.05, 1.05)
        xy = [(ln.speedup.mean, ln.agreement.metrics[metric].mean) for ln in shown]
        names = [ln.config.name for ln in shown]
        for name, (x, y), (dx, dy) in zip(names, xy, label_offsets(ax, xy, names), strict=True):
            ax.annotate(name, (x, y), fontsize=8, xytext=(dx, dy), textcoords="offset points",
                        arrowprops={"arrowstyle": "-", "color": "gray", "lw": 0.5} if dy < -4 else None)
        agg = [{"speedup": x, "y": y} for x, y in xy]
        front = sorted((agg[i] for i in pareto_front(agg, "speedup", "y")), key=lambda a: a["speedup"])
        ax.plot([a["speedup"] for a in front], [a["y"] for a in front], "--", color="gray", label="Pareto front")
        for fam, colour in colors.items():
            ax.scatter([], [], color=colour, label=fam)
        ax.set_xlabel("speed-up vs the target's naive LOO (log scale; bars: 95 % bootstrap interval)")
        ax.set_ylabel(f"{label} vs exact LOO (bars: 95 % bootstrap interval)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _meets_bar(line: Line) -> bool:
    recall, speed = line.agreement.metrics["outlier_recall"], line.speedup
    return speed is not None and (recall.mean or 0) >= GOAL_STACK_OUTLIERS and (speed.mean or 0) >= GOAL_STACK_SPEEDUP


def stack_goal(lines_long: Sequence[Line]) -> str:
    """Issue 17's goal for the full stack on the long examples, checked on the measured numbers, and which
    other configurations clear the same bar (a user who needs it can pick one of them)."""
    stack = next((ln for ln in lines_long if ln.config.name.startswith("full stack")), None)
    if stack is None or stack.speedup is None:
        return "- Full-stack goal: not measured yet (needs the full stack and naive LOO on long examples)."
    recall, speed = stack.agreement.metrics["outlier_recall"], stack.speedup
    verdict = "met" if _meets_bar(stack) else "not met"
    if min(stack.agreement.n, stack.speedup_n) < FEW:
        verdict += f" so far, on fewer than {FEW} examples: not yet evidence"
    others = [ln for ln in lines_long if ln is not stack and ln.config.family != "exact" and _meets_bar(ln)]
    also = "; ".join(f"`{ln.config.name}` {_iv(ln.agreement.metrics['outlier_recall'])} at "
                     f"{_iv(ln.speedup, '{:.1f}x')} (n = {ln.agreement.n})" for ln in others) or "none"
    return (f"- Goal (full stack on the long examples: outlier recall ≥ {GOAL_STACK_OUTLIERS} at ≥ "
            f"{GOAL_STACK_SPEEDUP:.0f}x over naive LOO): outlier recall {_iv(recall)} over {stack.agreement.n} "
            f"example(s), {_iv(speed, '{:.1f}x')} over {stack.speedup_n}: **{verdict}**.\n"
            f"- Other configurations over the same bar (mean recall ≥ {GOAL_STACK_OUTLIERS} at mean ≥ "
            f"{GOAL_STACK_SPEEDUP:.0f}x, same long examples): {also}.")


def report(db: Path, out: Path, readme: bool) -> str:
    """Tables and figures of every suite stored in ``db``, into ``out``; with ``readme`` the figures go to
    ``docs/`` and the README's ``bench:eval`` block is rewritten."""
    from attribot_core.runs import RunStore

    store = RunStore(db)
    examples = {e["id"]: e for e in load_examples()}
    longs = {i for i, e in examples.items() if e.get("long")}
    parts: list[str | tuple[str, Path]] = []
    data: dict[str, Any] = {}
    for suite in SUITES.values():
        lines = suite_lines(store, suite)
        if not lines:
            continue
        long_lines = suite_lines(store, suite, longs)
        figure = (DOCS if readme else out) / f"eval-{suite.name}.png"
        ns = sorted({ln.agreement.n for ln in lines})
        shown = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
        pareto_png(lines, figure, f"{suite.title}: {shown} of {len(examples)} examples per configuration")
        parts += [f"### {suite.title}", "",
                  f"Each cell: mean over the examples, [95 % bootstrap interval]. n = examples with both this "
                  f"configuration and exact `loo` done (of {len(examples)}).", "", faithfulness_table(lines), ""]
        if paired := paired_table(lines):
            parts += ["Paired by example (issue 19's goal: the one-pass estimate against `attention` and against "
                      "the surrogate at N = 64, each on the examples both have):", "", paired, ""]
        if measures := measures_table(lines):
            parts += ["Faithfulness measures (higher is better; the `loo` row is exact LOO's own value on the "
                      "same rows, not a ceiling):", "", measures, ""]
        if long_lines:
            has_stack = any(c.name.startswith("full stack") for c in suite.configs)
            parts += [f"Long examples only (≥ 1,500 tokens, {len(longs)} in the set):", "",
                      faithfulness_table(long_lines), "", *([stack_goal(long_lines), ""] if has_stack else [])]
        parts += [(f"{suite.title}: speed-up vs faithfulness", figure), ""]
        data[suite.name] = {"all": [_line_dict(ln) for ln in lines], "long": [_line_dict(ln) for ln in long_lines]}
    if not parts:
        sys.exit(f"No finished suite in {db}: nothing to report.")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(data, indent=1, default=float))
    (out / "report.md").write_text(_markdown(parts, out) + "\n")
    text = _markdown(parts, ROOT)
    if readme:
        from bench.readme_block import write_block

        if not write_block("eval", text):
            print("README.md has no <!-- bench:eval --> markers: block not written", file=sys.stderr)
    return text


def _markdown(parts: Sequence[str | tuple[str, Path]], folder: Path) -> str:
    """The report's lines, each figure (alt text, path) linked relative to ``folder``, where the Markdown lives:
    the README links ``docs/…``, ``report.md`` beside the results the same image by another path."""
    return "\n".join(p if isinstance(p, str) else f"![{p[0]}]({os.path.relpath(p[1], folder)})" for p in parts)


def _line_dict(line: Line) -> dict[str, Any]:
    return {"config": line.config.name, "family": line.config.family, **line.agreement.to_dict(),
            "speedup_vs_naive": line.speedup.to_dict() if line.speedup else None, "speedup_n": line.speedup_n}


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=sorted(SUITES), action="append",
                    help="suite(s) to run (repeat for several); without it: report only")
    ap.add_argument("--db", type=Path, default=DEFAULT_DB)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for results.json, report.md, run log")
    ap.add_argument("--examples", type=int, default=None, help="the first N examples (long and short interleaved)")
    ap.add_argument("--ids", default=None, help="comma-separated example ids")
    ap.add_argument("--configs", default=None, help="comma-separated configuration names (loo always runs)")
    ap.add_argument("--redo", default=None,
                    help="comma-separated configuration names whose stored rows are dropped first and run again "
                         "(e.g. estimate, after new estimator weights: its rows were made with the old ones)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads")
    ap.add_argument("--measures", default=None, help="override the suite's measures (topk,lds or none)")
    ap.add_argument("--lds-masks", type=int, default=32)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--readme", action="store_true", help="write the README's bench:eval block")
    args = ap.parse_args(argv)
    kept = args.db.resolve() == DEFAULT_DB
    if kept and not DEFAULT_DB.exists() and KEPT_DB.exists():
        unpack(KEPT_DB, DEFAULT_DB)
    if not args.report_only:
        examples = load_examples(args.ids)[: args.examples] if args.examples else load_examples(args.ids)
        args.out.mkdir(parents=True, exist_ok=True)
        for name in args.suite or []:
            suite = SUITES[name]
            if args.configs:
                keep = {c.strip() for c in args.configs.split(",")} | {REFERENCE}
                unknown = keep - {c.name for c in suite.configs}
                if unknown:
                    sys.exit(f"Suite {name} has no configuration {', '.join(sorted(unknown))}.")
                suite = replace(suite, configs=tuple(c for c in suite.configs if c.name in keep))
            if args.redo:
                drop_rows(args.db, suite, [c.strip() for c in args.redo.split(",") if c.strip()])
            measures = suite.measures if args.measures is None else tuple(
                m for m in args.measures.split(",") if m and m != "none")
            run(suite, args.db, examples, args.threads, measures, args.lds_masks, args.out / "runs.jsonl")
        if kept:
            pack(DEFAULT_DB, KEPT_DB)
    print(report(args.db, args.out, args.readme))


if __name__ == "__main__":
    main()
