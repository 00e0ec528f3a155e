"""What keeping per-token vectors costs (time, JSON size), and what it saves (a part of the response, no run).

For each method the same attribution runs with ``per_token=True`` and ``per_token=False``, interleaved,
``--repeats`` times each; the table compares the fastest of each (ratios measured in this one run:
the machine is shared and noisy). Then, on the per-token result: its JSON size against the same result
without per-token data (schema-1 size), ``to_json`` time, and ``for_response_span`` against a re-run
with ``response_span``.

    python bench/per_token_overhead.py                  # SmolLM2-135M, eval-set example ex025
    python bench/per_token_overhead.py --repeats 5 --max-new-tokens 60
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribot_core import LocalScorer, attribute, generate_response, load_model, segment  # noqa: E402
from attribot_core.pertoken import TokenValues  # noqa: E402

METHODS = [("loo", "loo", {}), ("hierarchical k=2", "hierarchical", {"keep_paragraphs": 2}),
           ("proxy (= target)", "proxy", {})]


def timed(fn, repeats: int = 5) -> float:
    """Fastest of ``repeats`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def direct_extra_s(result, scorer: LocalScorer) -> float:
    """The work per-token keeping adds, timed alone (immune to machine load): one fp32 delta vector per
    scored span, and the response tokens' character offsets of each model."""
    base = list(result.per_token.full.values)
    n_vectors = sum(v is not None for v in (*result.per_token.sentences, *result.per_token.paragraphs))
    return timed(lambda: [TokenValues.delta("m", base, base) for _ in range(n_vectors)]) + timed(
        scorer.response_axis) * len(result.per_token.axes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--example", default="ex025", help="id in bench/evalset/evalset.jsonl")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=60)
    args = ap.parse_args()

    examples = [json.loads(line) for line in (ROOT / "bench/evalset/evalset.jsonl").open()]
    ex = next(e for e in examples if e["id"] == args.example)
    doc = segment(ex["context"])
    lm = load_model(args.model)
    response = generate_response(lm, ex["context"], ex["question"], max_new_tokens=args.max_new_tokens)
    n_tokens = len(response.token_ids or ())
    print(f"response ({n_tokens} tokens): {response.text!r}", file=sys.stderr)

    def run(method: str, params: dict, per_token: bool, **kw):
        return attribute(ex["context"], ex["question"], model=lm, method=method, response=response,
                         proxy_model=lm if method == "proxy" else None, per_token=per_token, **params, **kw)

    rows = []
    for label, method, params in METHODS:
        print(f"  {label} ...", file=sys.stderr, flush=True)
        on, off = [], []
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
            off.append(run(method, params, False).timings["total_s"])
            kept = run(method, params, True)
            on.append(kept.timings["total_s"])
        v2 = kept.to_json()
        v1 = replace(kept, per_token=None, schema_version=1).to_json()
        json_v2_s = timed(kept.to_json)
        json_v1_s = timed(replace(kept, per_token=None).to_json)
        n = len(response.text)
        part = (n // 3, 2 * n // 3)
        span_s = timed(lambda k=kept, p=part: k.for_response_span(*p))
        t = time.perf_counter()
        run(method, params, False, response_span=part)
        rerun_s = time.perf_counter() - t
        extra_s = direct_extra_s(kept, LocalScorer(lm, ex["question"], response))
        rows.append((label, min(off), min(on), len(v1), len(v2), json_v1_s, json_v2_s, span_s, rerun_s, extra_s))

    print(f"## Per-token overhead (`python bench/per_token_overhead.py --repeats {args.repeats} "
          f"--max-new-tokens {args.max_new_tokens}`)\n")
    print(f"Model {args.model}, eval-set example `{ex['id']}` ({len(doc.paragraphs)} paragraphs, "
          f"{len(doc.sentences)} sentences), response of {n_tokens} tokens; fastest of {args.repeats} interleaved "
          f"runs each; {os.cpu_count()} cores.\n")
    print("| method | time, per-token off (s) | time, on (s) | overhead (wall) | added work timed alone (ms) "
          "| its share of the run | JSON v1 (chars) | JSON v2 (chars) | v2 / v1 | to_json v1 / v2 (ms) "
          "| for_response_span (ms) | re-run for that part (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, off, on, s1, s2, j1, j2, span_s, rerun_s, extra_s in rows:
        print(f"| {label} | {off:.2f} | {on:.2f} | {100 * (on / off - 1):+.1f}% | {1000 * extra_s:.1f} "
              f"| {100 * extra_s / off:.2f}% | {s1} | {s2} | {s2 / s1:.2f} | {1000 * j1:.1f} / {1000 * j2:.1f} "
              f"| {1000 * span_s:.2f} | {rerun_s:.2f} |")
    print("\nThe wall-clock overhead is the difference of two noisy timings; the added work timed alone is the "
          "part of it that per-token keeping really costs (its share of the per-token-off run).")


if __name__ == "__main__":
    main()
