"""Issue 19's faithfulness table on generated examples: the fast methods against stored exact LOO, at their cost.

Reads a training database of ``bench/train_estimator.py`` (exact LOO of examples from the evaluation-set
generator, never the 42 evaluation examples) and runs each shipped method on every example's stored response:
``attention``, ``estimate``, ``first-order`` (every row, and the rows after the context only) and the
ContextCite-style surrogate at N = 16 and N = 64 ablations. Per example Spearman and top-3 overlap against
exact LOO; means over examples with 95 % bootstrap intervals, differences to ``attention`` and to the
surrogate at N = 64 paired by example; forward passes and seconds per example (median).

``estimate``'s shipped weights were fitted on some of these very examples, so its *ranking* here is the
held-out one of the shipped recipe (ridge on √mass at the shipped depth, sign-log target) by nested
cross-validation (``bench/estimator_cv.py``'s folds: every example scored by weights fitted without it);
its cost is the shipped method's own pass, timed on the same example.

    python bench/generated_faithfulness.py                           # SmolLM2, its training database
    python bench/generated_faithfulness.py --model qwen2.5-coder-0.5b \\
        --db bench/results/estimator/qwen2.5-coder-0.5b-train.sqlite --batch estimator-train-qwen0.5b

Resumable: each example's row is appended to ``--rows`` (JSON lines) as soon as it is measured, and a rerun
measures only the examples missing there (``--limit N``: the next N of one fixed shuffled order) and the
methods a row measured before they joined lacks. Timings compare only within one run on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from estimator_cv import SHIPPED, example_scores, features, load_rows, nested_cv, shipped_depth  # noqa: E402
from readme_block import write_report  # noqa: E402

from attribot_core.metrics import bootstrap_ci  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "estimator"
METHODS = (("attention", "attention", {}), ("estimate", "estimate", {}), ("first-order", "first-order", {}),
           ("first-order (question and response)", "first-order", {"rows": "question and response"}),
           ("surrogate N=16", "surrogate", {"n_ablations": 16}), ("surrogate N=64", "surrogate", {"n_ablations": 64}))
"""(label, method, params): what runs on every example, in this order."""
METHODS_BY_LABEL = {label: (method, params) for label, method, params in METHODS}


def measure(db: Path, batch: str, model: str, rows: Path, limit: int | None) -> None:
    """Append one JSON row per example not yet in ``rows``: each method's sentence scores, passes and seconds.
    A row measured before a method joined :data:`METHODS` gets that method added (the file rewritten)."""
    from attribot_core.models import load_model
    from attribot_core.runs.estimator_train import training_runs
    from attribot_core.runs.store import RunStore

    measured = [json.loads(line) for line in rows.read_text().splitlines()] if rows.exists() else []
    store, lm = RunStore(db), load_model(model)
    records = store.list(batch=batch, statuses=["done"], limit=1_000_000)
    todo = sorted(training_runs(store, records, lm.model_id), key=lambda run: run[0].row_id or run[0].id)
    random.Random(0).shuffle(todo)  # one fixed order: a --limit takes examples of every generator seed
    by_example = {r["example"]: r for r in measured}
    lacking = [(r, resp) for r, resp in todo if (r.row_id or r.id) in by_example
               and set(METHODS_BY_LABEL) - set(by_example[r.row_id or r.id]["methods"])]
    for i, (record, response) in enumerate(lacking, 1):
        row = by_example[record.row_id or record.id]
        new = [m for m in METHODS if m[0] not in row["methods"]]
        row["methods"] |= run_methods(lm, record.result, response, new)
        row.setdefault("added_loadavg", os.getloadavg()[0])
        rewritten = rows.with_suffix(".tmp")  # after every row: a stopped run keeps what it added
        rewritten.write_text("".join(json.dumps(r) + "\n" for r in measured))
        rewritten.replace(rows)
        print(f"added {i}/{len(lacking)} {row['example']}: " + ", ".join(m[0] for m in new), flush=True)
    todo = [(r, resp) for r, resp in todo if (r.row_id or r.id) not in by_example][:limit]
    rows.parent.mkdir(parents=True, exist_ok=True)
    for i, (record, response) in enumerate(todo, 1):
        row: dict = {"example": record.row_id or record.id, "exact": record.result.scores("sentence"),
                     "methods": run_methods(lm, record.result, response, METHODS), "loadavg": os.getloadavg()[0]}
        with rows.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{i}/{len(todo)} {row['example']}: " + ", ".join(
            f"{k} {v['seconds']:.1f} s" for k, v in row["methods"].items()), flush=True)


def run_methods(lm, result, response, methods) -> dict:
    """{label: sentence scores, seconds, forward passes} of each of ``methods`` on one stored example."""
    from attribot_core.api import attribute
    from attribot_core.prompt import DEFAULT_TEMPLATE

    out: dict = {}
    for label, method, params in methods:
        start = time.perf_counter()
        r = attribute(result.context, result.question, model=lm, method=method, response=response,
                      template=result.template or DEFAULT_TEMPLATE, per_token=False, **params)
        out[label] = {"scores": r.scores("sentence"), "seconds": time.perf_counter() - start,
                      "passes": r.total_forward_passes}
    return out


def ranked(pred: list, exact: list) -> tuple[float, float, float]:
    """(Spearman, top-1, top-3) over the sentences exact LOO scored (a method's unscored sentence counts 0)."""
    keep = [i for i, y in enumerate(exact) if y is not None]
    return example_scores(np.array([pred[i] or 0.0 for i in keep]), np.array([exact[i] for i in keep]))


def ci(values: np.ndarray) -> str:
    c = bootstrap_ci(values)
    return f"{c.mean:.3f} [{c.lo:.3f}, {c.hi:.3f}]"


def report(rows: list[dict], db: Path, batch: str, model: str, folds: int, reps: int) -> str:
    data = load_rows(db, batch, model, RESULTS / f"{model}-aggregates.npz")
    depth = shipped_depth(model) or int(data["layers"])
    x = features(data, SHIPPED)[:, :depth * int(data["heads"])]
    cv = nested_cv(x, data["y"].astype(np.float64), data["groups"], SHIPPED.target, folds=folds, reps=reps)
    held_out = dict(zip(cv["examples"], cv["scores"], strict=True))
    rows = sorted((r for r in rows if r["example"] in held_out), key=lambda r: r["example"])  # >= 2 scored
    per = {label: np.array([ranked(r["methods"][label]["scores"], r["exact"]) for r in rows])
           for label, _, _ in METHODS}
    per["estimate"] = np.array([held_out[r["example"]] for r in rows])
    base, best = per["attention"][:, 0], per["surrogate N=64"][:, 0]
    load = [r["loadavg"] for r in rows]
    lines = [f"Model {model}: {len(rows)} generated examples (batch `{batch}`), "
             f"{sum(sum(y is not None for y in r['exact']) for r in rows)} sentences with exact LOO, each method on "
             f"the stored response; load average {min(load):.1f}–{max(load):.1f} on {os.cpu_count()} cores. "
             f"Means over examples, [95 % bootstrap interval]; `estimate`'s ranking is held out (nested "
             f"cross-validation of the shipped recipe on its {depth} layers, {folds} folds x {reps} shufflings), its "
             "cost the shipped method's pass.", "",
             "| method | Spearman | − attention (paired) | − surrogate N=64 (paired) | top-1 | top-3 overlap "
             "| forward passes | s / example (median) |", "|---|---|---|---|---:|---|---:|---:|"]
    for label, _, _ in METHODS:
        s = per[label]
        passes = np.median([r["methods"][label]["passes"] for r in rows])
        seconds = np.median([r["methods"][label]["seconds"] for r in rows])
        diffs = ["" if label == other else ci(s[:, 0] - values)
                 for other, values in (("attention", base), ("surrogate N=64", best))]
        lines.append(f"| {label} | {ci(s[:, 0])} | {' | '.join(diffs)} | {np.nanmean(s[:, 1]):.2f} | {ci(s[:, 2])} "
                     f"| {passes:g} | {seconds:.2f} |")
    lines += ["", "Forward passes as each result counts them (`first-order`'s one forward pass has one backward pass "
              "besides; the surrogate's passes share the cached prefix before the first ablated sentence)."]
    added = [r["added_loadavg"] for r in rows if "added_loadavg" in r]
    if added:
        lines[-1] += (f" A method that joined after these rows were measured was added to them in a later run (load "
                      f"average {min(added):.1f}–{max(added):.1f}): its seconds compare with the others' only roughly.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, default=RESULTS / "smollm2-135m-train.sqlite")
    ap.add_argument("--batch", default="estimator-train")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rows", type=Path, default=None,
                    help="per-example JSON lines (default: bench/results/estimator/generated-MODEL.jsonl)")
    ap.add_argument("--out", type=Path, default=None,
                    help="Markdown report (default: bench/results/estimator/generated-MODEL.md)")
    ap.add_argument("--limit", type=int, default=None, help="measure at most this many new examples")
    ap.add_argument("--report-only", action="store_true", help="the report from the rows already measured")
    ap.add_argument("--folds", type=int, default=6)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args(argv)
    rows_file = args.rows or RESULTS / f"generated-{args.model}.jsonl"
    if not args.report_only:
        measure(args.db, args.batch, args.model, rows_file, args.limit)
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.exists() else []
    if not rows:
        sys.exit(f"No measured examples in {rows_file}.")
    text = report(rows, args.db, args.batch, args.model, args.folds, args.reps)
    write_report(args.out or RESULTS / f"generated-{args.model}.md", "bench/generated_faithfulness.py", argv, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
