"""`first-order`'s cheaper passes against its full float32 pass: how much faster, and whether it still agrees
with exact LOO as well.

Two parameters make `first-order` cheaper (:mod:`attribot_core.first_order`): ``precision="auto"`` runs the
forward and backward pass with bfloat16 matrix products where the CPU has native bfloat16 (AMX, AVX512-BF16),
and ``layers="upper half"`` takes the effects through the upper half of the layers only, so the backward pass
stops half-way down. This script runs the four combinations and one plain forward pass (the scorer's base
pass, the unit of "passes") on every evaluation example with a stored exact LOO (``bench/results/eval/
eval.sqlite``, batch ``<suite>/loo``: the evaluation set's own responses and reference scores), one after
the other on the same loaded model, and reports per suite (means over examples, 95 % bootstrap intervals):

- seconds of one ``attribute(..., method="first-order")`` call per variant: in total, as a multiple of the
  forward pass, and the speed-up over the float32 pass over every layer;
- each variant's agreement with exact LOO (Spearman, top-1, top-3 overlap) and its Spearman minus the
  float32 pass's, paired by example (an interval covering 0: no measurable change).

    python bench/first_order_variants.py                      # both suites; report to bench/results/estimator/
    python bench/first_order_variants.py --suites smollm2 --limit 5     # a smoke run
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from readme_block import write_report  # noqa: E402  (bench/readme_block.py)
from stored_loo import DB, SUITES, arguments, ci_text, open_store, stored_loo  # noqa: E402  (bench/stored_loo.py)

from attribot_core import attribute  # noqa: E402
from attribot_core.features import bf16_is_faster  # noqa: E402
from attribot_core.metrics import spearman, top_k_overlap  # noqa: E402
from attribot_core.models import load_model  # noqa: E402
from attribot_core.prompt import Response  # noqa: E402
from attribot_core.scoring import LocalScorer  # noqa: E402

OUT = ROOT / "bench" / "results" / "estimator" / "first-order-variants.md"
VARIANTS = {"float32, all layers": {"precision": "model", "layers": "all"},
            "auto, all layers": {"precision": "auto", "layers": "all"},
            "float32, upper half": {"precision": "model", "layers": "upper half"},
            "auto, upper half": {"precision": "auto", "layers": "upper half"}}
REFERENCE = "float32, all layers"


def _timed(fn) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _first_order(lm, record, params: dict) -> list[float]:
    result = attribute(record.request.context, record.request.question, model=lm, response=record.result.response,
                       method="first-order", per_token=False, **params)
    return [s.score for s in result.sentences]


def measure(suite: str, store, limit: int | None) -> str:
    records = stored_loo(store, suite, limit)
    if not records:
        return f"## {suite}\n\nNo stored exact LOO in {DB} (run bench/eval.py first).\n"
    lm = load_model(SUITES[suite])
    for params in VARIANTS.values():  # warm-up: first-call costs (kernels, tokenizer caches) out of the timings
        _first_order(lm, records[0], params)
    rows = []
    for r in records:
        exact = [s.score for s in r.result.sentences]
        scorer = LocalScorer(lm, r.request.question, Response(r.result.response), reuse_prefix=False)
        row = {"id": r.row_id, "forward": _timed(lambda s=scorer, c=r.request.context: s.log_prob(c))[1]}
        for name, params in VARIANTS.items():
            scores, row[f"t {name}"] = _timed(lambda p=params, rec=r: _first_order(lm, rec, p))
            row[f"s {name}"] = spearman(scores, exact)
            row[f"top1 {name}"], row[f"top3 {name}"] = (top_k_overlap(scores, exact, k) for k in (1, 3))
        rows.append(row)
        print(f"{suite} {r.row_id}: forward {row['forward']:.2f} s; " + "; ".join(
            f"{name} {row[f't {name}']:.2f} s, Spearman {row[f's {name}']:.2f}" for name in VARIANTS), flush=True)
    col = {k: np.array([row[k] for row in rows]) for k in rows[0] if k != "id"}
    total = {name: col[f"t {name}"].sum() for name in VARIANTS}
    lines = [f"## {suite}: {lm.model_id}, {len(rows)} examples", "",
             f"bfloat16 used by `precision=auto` here: {bf16_is_faster(lm)}. One forward pass: "
             f"{col['forward'].sum():.1f} s over the {len(rows)} examples.", "",
             "| variant (`precision`, `layers`) | seconds (all examples) | x a forward pass | speed-up | "
             "Spearman with exact LOO | top-1 | top-3 overlap | Spearman − float32 all layers (paired) |",
             "|---|---:|---:|---:|---|---|---|---|"]
    for name in VARIANTS:
        diff = "—" if name == REFERENCE else ci_text(col[f"s {name}"] - col[f"s {REFERENCE}"])
        lines.append(f"| {name} | {total[name]:.1f} | {total[name] / col['forward'].sum():.2f}x | "
                     f"{total[REFERENCE] / total[name]:.2f}x | {ci_text(col[f's {name}'])} | "
                     f"{ci_text(col[f'top1 {name}'])} | {ci_text(col[f'top3 {name}'])} | {diff} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.split("\n\n")[0], OUT).parse_args(argv)
    store = open_store(args.threads)
    load = os.getloadavg()[0]
    parts = [measure(suite, store, args.limit) for suite in args.suites.split(",")]
    text = "\n".join(parts) + (f"\n{args.threads} threads, {os.cpu_count()} cores, load average {load:.1f} at the "
                               f"start and {os.getloadavg()[0]:.1f} at the end.")
    write_report(args.out, "bench/first_order_variants.py", argv, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
