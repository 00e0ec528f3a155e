"""What `first-order` costs against a forward pass, the one-pass `estimate` and the surrogate at N = 64, in one run.

Issue 19 asks for an estimate that matches the surrogate at N = 64 "at 1/64 of its passes". `first-order`
is one forward and one backward pass; this measures what that is in time, on this machine, in one run
(ratios, not seconds, are what carry over): per example, the best of ``--repeats`` timings of

* one forward pass over prompt + response (the scorer's base pass: ``log p(response | context)``),
* ``estimate`` (its own pass: the shipped weights' layers, bfloat16 where faster),
* ``first-order`` (forward + backward) in float32 (``precision=model``), as shipped (``precision=auto``:
  bfloat16 where the CPU has it natively) and with ``layers="upper half"`` too (the backward pass stops
  half-way down; how far from the full sum: ``bench/first_order_variants.py``),
* ``first-order`` through the rows after the context only (``rows="question and response"``: the context's
  pass without a backward pass),
* the same on the keys of a scorer's base pass (the app's preview before exact LOO: only the rows after the
  context run),
* ``surrogate`` with N = 64 (65 passes; best of 1: it is the slow one),

on the three built-in examples and one long evaluation example, for SmolLM2-135M and Qwen2.5-Coder-0.5B,
with a fixed response (the model's own greedy answer, generated once first).

    python bench/first_order_cost.py                 # both models, built-in examples + ex029
    python bench/first_order_cost.py --long none     # the built-in examples only

Prints a Markdown table and writes it to ``--out`` (default ``bench/results/estimator/first-order-cost.md``).
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

from readme_block import write_report  # noqa: E402  (bench/readme_block.py)

from attribot_core import attribute, generate_response, load_model  # noqa: E402
from attribot_core.examples import EXAMPLES  # noqa: E402
from attribot_core.features import bf16_is_faster  # noqa: E402
from attribot_core.scoring import LocalScorer  # noqa: E402

METHODS = {"estimate": ("estimate", {}),
           "first-order float32": ("first-order", {"precision": "model"}),
           "first-order": ("first-order", {}),
           "first-order upper half": ("first-order", {"layers": "upper half"}),
           "first-order q&a": ("first-order", {"rows": "question and response"})}
"""Column -> (method, parameters) timed besides the forward pass and the surrogate."""


def best(repeats: int, fn) -> float:
    """The fastest of ``repeats`` timings of ``fn()`` (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def on_base_pass(lm, context: str, question: str, fixed) -> float:
    """Seconds of first-order LOO through the question and response after a scorer's base pass, on its keys
    (the app's preview before exact LOO): the rows after the context, forward and backward."""
    from attribot_core.methods.first_order import first_order
    from attribot_core.segment import segment

    scorer = LocalScorer(lm, question, fixed)
    scorer.log_prob(context)
    start = time.perf_counter()
    first_order(segment(context), scorer, rows="question and response")
    return time.perf_counter() - start


def row(lm, name: str, context: str, question: str, repeats: int) -> dict:
    """Timings of one example on one model: forward pass, each method, surrogate N = 64; ratios to the forward."""
    fixed = generate_response(lm, context, question, max_new_tokens=48)  # a Response with the model's token ids
    forward = best(repeats, lambda: LocalScorer(lm, question, fixed, reuse_prefix=False).log_prob(context))
    out = {"example": name, "model": lm.model_id, "forward": forward}
    for column, (method, params) in METHODS.items():
        out[column] = best(repeats, lambda m=method, p=params: attribute(context, question, model=lm, method=m,
                                                                         response=fixed, **p))
    out["q&a on the base pass"] = min(on_base_pass(lm, context, question, fixed) for _ in range(repeats))
    out["surrogate N=64"] = best(1, lambda: attribute(context, question, model=lm, method="surrogate",
                                                      response=fixed, n_ablations=64))
    return out


def table(rows: list[dict]) -> str:
    lines = ["| model | example | forward pass (s) | `estimate` (s) | `first-order` float32 (s) | `first-order` (s) | "
             "`first-order` upper half (s) | `first-order` question and response (s) | the same on a base pass's keys "
             "(s) | surrogate N = 64 (s) | first-order / forward | upper half / forward | question and response / "
             "forward | surrogate / upper half | surrogate / question and response |", "|---|---|" + "---:|" * 13]
    for r in rows:
        qa = r["first-order q&a"]
        lines.append(f"| {r['model']} | {r['example']} | {r['forward']:.2f} | {r['estimate']:.2f} | "
                     f"{r['first-order float32']:.2f} | {r['first-order']:.2f} | {r['first-order upper half']:.2f} | "
                     f"{qa:.2f} | {r['q&a on the base pass']:.2f} | {r['surrogate N=64']:.1f} | "
                     f"{r['first-order'] / r['forward']:.2f}x | "
                     f"{r['first-order upper half'] / r['forward']:.2f}x | {qa / r['forward']:.2f}x | "
                     f"{r['surrogate N=64'] / r['first-order upper half']:.1f}x | {r['surrogate N=64'] / qa:.1f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-coder-0.5b")
    ap.add_argument("--long", default="ex029", help="a long evaluation example's id, or 'none'")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "estimator" / "first-order-cost.md")
    args = ap.parse_args(argv)
    cases = [(ex.key, ex.context, ex.question) for ex in EXAMPLES]
    if args.long != "none":
        long = next(e for e in map(json.loads, (ROOT / "bench/evalset/evalset.jsonl").open()) if e["id"] == args.long)
        cases.append((long["id"], long["context"], long["question"]))
    rows = []
    start_load = os.getloadavg()[0]
    for model in args.models.split(","):
        lm = load_model(model)
        for name, context, question in cases:
            rows.append(row(lm, name, context, question, args.repeats))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = (f"{table(rows)}\n\nBest of {args.repeats} (surrogate: of 1), {os.cpu_count()} cores, bfloat16 for "
            f"precision=auto: {bf16_is_faster(lm)}, load average "
            f"{start_load:.1f} at the start and {os.getloadavg()[0]:.1f} at the end.")
    write_report(args.out, "bench/first_order_cost.py", argv, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
