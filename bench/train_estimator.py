"""Make the shipped estimator weights: fictional examples -> exact LOO (a resumable batch) -> head weights.

1. ``bench/evalset/generate.py`` makes fictional examples with seeds other than the evaluation set's
   (``--seeds``); the long contexts are left out (they cost 3x the passes for a few more rows; ``--long``
   takes only them, for a batch of their own: README, *Why the estimator weighs what it weighs*), and any
   example whose context or question also appears in ``bench/evalset/evalset.jsonl`` is dropped, so the
   42 evaluation examples are never trained on.
2. The default model generates a response to each and exact ``loo`` scores every sentence, through the
   batch layer into ``--db`` (batch ``--batch``): rerunning skips the rows already done.
3. :func:`attribot_core.runs.estimator_train.train_from_store` fits the head weights and writes ``--out``.

The shipped SmolLM2-135M weights came from (80 examples of seeds 1001-1003; exact LOO 61 min on one
busy core; the run database is kept in the repository, so a later session adds rows with a larger
``--limit`` and trains again instead of starting over):

    python bench/train_estimator.py --limit 80 --db bench/results/estimator/smollm2-135m-train.sqlite
    python bench/train_estimator.py --skip-loo --depth 20 \
        --db bench/results/estimator/smollm2-135m-train.sqlite  # train again (the shipped file: 20 layers)

and the Qwen2.5-Coder-0.5B weights from:

    python bench/train_estimator.py --model qwen2.5-coder-0.5b --limit 36 --depth 20 \
        --db bench/results/estimator/qwen2.5-coder-0.5b-train.sqlite --batch estimator-train-qwen0.5b \
        --out attribot_core/estimators/qwen2.5-coder-0.5b.json

``--depth 20``: the shipped weights read the first 20 layers (``bench/estimator_cv.py``'s depth table says why).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "evalset"))

import generate as evalset_generator  # noqa: E402  (bench/evalset/generate.py)

EVALSET = ROOT / "bench" / "evalset" / "evalset.jsonl"
MODEL = "smollm2-135m"  # the model the defaults (--db, --batch, --out) are for; the app's default model is another
SHIPPED = ROOT / "attribot_core" / "estimators" / f"{MODEL}.json"
TRAIN_DB = ROOT / "bench" / "results" / "estimator" / f"{MODEL}-train.sqlite"
DEFAULT_SEEDS = tuple(range(1001, 1010))  # the evaluation set is seed 20240611


def training_rows(seeds: tuple[int, ...], limit: int | None = None, *, long: bool = False) -> list[dict]:
    """Generated examples of ``seeds`` (normal length, or with ``long`` the long ones only), none sharing a
    context or question with the eval set."""
    held = [json.loads(line) for line in EVALSET.read_text().splitlines() if line.strip()]
    seen_contexts = {ex["context"] for ex in held}
    seen_questions = {ex["question"] for ex in held}
    rows = []
    for seed in seeds:
        try:
            examples = evalset_generator.generate(seed)
        except (KeyError, RuntimeError) as exc:  # the generator cannot build every seed (e.g. 100 miles)
            print(f"seed {seed} skipped: the generator failed ({exc!r})", file=sys.stderr)
            continue
        for ex in examples:
            if ex["long"] != long or ex["context"] in seen_contexts or ex["question"] in seen_questions:
                continue
            seen_contexts.add(ex["context"])
            rows.append({"id": f"s{seed}-{ex['id']}", "context": ex["context"], "question": ex["question"],
                         "gold": ex["gold_sentences"]})
    return rows[:limit] if limit else rows


def run_loo(db: Path, batch: str, rows: list[dict], model: str, max_new_tokens: int) -> None:
    """Exact LOO of every row (resumable: rows already done with these settings are skipped)."""
    from attribot_core.runs.backends import LocalBackend
    from attribot_core.runs.batch import BatchSettings, run_batch
    from attribot_core.runs.inputs import rows_from_records
    from attribot_core.runs.store import RunStore

    settings = BatchSettings(model, "loo", (("paragraphs", False),), None, max_new_tokens)
    store = RunStore(db)
    start = time.perf_counter()

    def on_row(row, summary) -> None:
        if row.status != "skipped":
            print(f"[{time.perf_counter() - start:7.0f} s] row {row.row_id}: {row.status} "
                  f"({summary.done} done, {summary.failed} failed, {summary.skipped} skipped of {summary.rows})",
                  flush=True)

    with LocalBackend() as backend:
        summary = run_batch(store, batch, rows_from_records(rows), settings, backend, source="train_estimator",
                            on_row=on_row)
    print(summary.line, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, default=TRAIN_DB)
    ap.add_argument("--batch", default="estimator-train")
    ap.add_argument("--seeds", default=",".join(map(str, DEFAULT_SEEDS)), help="generator seeds, comma-separated")
    ap.add_argument("--limit", type=int, default=None, help="at most this many examples")
    ap.add_argument("--long", action="store_true",
                    help="the generator's long examples only (1,500-1,900 tokens; give them a batch of their own)")
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--out", type=Path, default=SHIPPED)
    ap.add_argument("--skip-loo", action="store_true", help="train on the rows already stored")
    ap.add_argument("--skip-train", action="store_true", help="only compute the exact LOO rows")
    ap.add_argument("--depth", type=int, default=None,
                    help="weigh the first N layers only (the shipped weights: 20, see bench/estimator_cv.py)")
    args = ap.parse_args(argv)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    args.db.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if not args.skip_loo:
        rows = training_rows(seeds, args.limit, long=args.long)
        print(f"{len(rows)} {'long ' if args.long else ''}training examples from seeds {seeds}", flush=True)
        run_loo(args.db, args.batch, rows, args.model, args.max_new_tokens)
    loo_s = time.perf_counter() - t0
    if not args.skip_train:
        from attribot_core.runs.estimator_train import train_from_store

        report = train_from_store(args.db, [args.batch], args.model, args.out, depth=args.depth, log=print)
        print(report.line)
    print(f"exact LOO {loo_s:.0f} s, total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
