"""The estimate's pass in bfloat16 against float32: how much faster, how far apart, and whether it still agrees
with exact LOO as well.

``precision="auto"`` (the default of ``estimate`` and of the ``proxy_stage="estimate"`` ranking) autocasts the
pass's matrix products to bfloat16 where that is faster: a float32 model on a CPU with native bfloat16 (AMX,
AVX512-BF16) (:func:`attribot_core.features.bf16_is_faster`); ``precision="model"`` keeps float32. This script
runs both on every example of the evaluation set with a stored exact LOO (``bench/results/eval/eval.sqlite``, batch
``<suite>/loo``: the evaluation set's own responses and reference scores), one after the other on the same
loaded model, and reports per suite (means over examples, 95 % bootstrap intervals):

- seconds of one ``attribute(..., method="estimate")`` call in each precision and their ratio;
- how far apart the two estimates are: Spearman between them, the largest difference in estimated nats,
  the share of examples whose top sentence is the same;
- each precision's agreement with exact LOO (Spearman, top-1, top-3 overlap) and the bf16 - fp32 difference
  in Spearman, paired by example (an interval covering 0: no measurable change).

    python bench/estimate_precision.py                      # both suites, report to bench/results/estimator/
    python bench/estimate_precision.py --suites smollm2 --limit 5     # a smoke run
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stored_loo import DB, SUITES, arguments, ci_text, open_store, stored_loo  # noqa: E402  (bench/stored_loo.py)

from attribot_core import attribute  # noqa: E402
from attribot_core.features import bf16_is_faster  # noqa: E402
from attribot_core.metrics import spearman, top_k_overlap  # noqa: E402
from attribot_core.models import load_model  # noqa: E402

OUT = ROOT / "bench" / "results" / "estimator" / "precision.md"
PRECISIONS = ("model", "auto")


def _estimate(lm, record, precision: str) -> tuple[list[float], float]:
    start = time.perf_counter()
    result = attribute(record.request.context, record.request.question, model=lm, response=record.result.response,
                       method="estimate", precision=precision, per_token=False)
    return [s.score for s in result.sentences], time.perf_counter() - start


def measure(suite: str, store, limit: int | None) -> str:
    records = stored_loo(store, suite, limit)
    if not records:
        return f"## {suite}\n\nNo stored exact LOO in {DB} (run bench/eval.py first).\n"
    lm = load_model(SUITES[suite])
    if not bf16_is_faster(lm):
        print(f"note: {lm.model_id} on this machine is not a float32 model on a CPU with native bfloat16; "
              "'auto' then equals 'model'.", flush=True)
    for p in PRECISIONS:  # warm-up: first-call costs (kernels, tokenizer caches) out of the timings
        _estimate(lm, records[0], p)
    rows = []
    for r in records:
        exact = [s.score for s in r.result.sentences]
        (fp32, t32), (bf16, t16) = (_estimate(lm, r, p) for p in PRECISIONS)
        rows.append({"id": r.row_id, "sentences": len(exact), "t32": t32, "t16": t16,
                     "between": spearman(fp32, bf16), "max_diff": float(np.max(np.abs(np.subtract(fp32, bf16)))),
                     "same_top": float(int(np.argmax(fp32)) == int(np.argmax(bf16))),
                     "s32": spearman(fp32, exact), "s16": spearman(bf16, exact),
                     "top1_32": top_k_overlap(fp32, exact, 1), "top1_16": top_k_overlap(bf16, exact, 1),
                     "top3_32": top_k_overlap(fp32, exact, 3), "top3_16": top_k_overlap(bf16, exact, 3)})
        print(f"{suite} {r.row_id}: {t32:.2f} s -> {t16:.2f} s, Spearman between {rows[-1]['between']:.3f}, "
              f"max diff {rows[-1]['max_diff']:.3f}", flush=True)
    col = {k: [row[k] for row in rows] for k in rows[0]}
    ratio = sum(col["t32"]) / sum(col["t16"])
    lines = [f"## {suite}: {lm.model_id}, {len(rows)} examples ({sum(col['sentences'])} sentences)", "",
             f"bf16 matrix products used by 'auto' here: {bf16_is_faster(lm)}. Seconds per estimate (median): "
             f"float32 {np.median(col['t32']):.2f}, bf16 {np.median(col['t16']):.2f}; "
             f"**{ratio:.2f}x** faster in total ({sum(col['t32']):.1f} s vs {sum(col['t16']):.1f} s).", "",
             "| measure | float32 (`precision=model`) | bf16 (`precision=auto`) |", "|---|---|---|",
             f"| Spearman with exact LOO | {ci_text(col['s32'])} | {ci_text(col['s16'])} |",
             f"| top-1 with exact LOO | {ci_text(col['top1_32'])} | {ci_text(col['top1_16'])} |",
             f"| top-3 overlap with exact LOO | {ci_text(col['top3_32'])} | {ci_text(col['top3_16'])} |", "",
             f"- bf16 - float32 Spearman with exact LOO, paired: "
             f"{ci_text(np.subtract(col['s16'], col['s32']))}",
             f"- Spearman between the two estimates: {ci_text(col['between'])} (lowest {min(col['between']):.3f})",
             f"- largest difference in estimated nats: mean {np.mean(col['max_diff']):.3f}, "
             f"worst {max(col['max_diff']):.3f}",
             f"- same top sentence: {sum(col['same_top']):.0f} of {len(rows)}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__.split("\n\n")[0], OUT).parse_args(argv)
    store = open_store(args.threads)
    report = [f"# The estimate's pass in bfloat16 vs float32 ({time.strftime('%Y-%m-%d')}, "
              f"{args.threads} threads, `python bench/estimate_precision.py`)", ""]
    for suite in args.suites.split(","):
        report.append(measure(suite, store, args.limit))
    text = "\n".join(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
