"""Exact LOO whose base pass starts from the keys generation or a prefill left: how far from its own base pass.

The app computes the prompt's keys ahead of a Run (``generate.prefill``, in chunks of 128, 256, 512 tokens)
and generation leaves them too; since 2026-12-07 the scorer's base pass starts from them in a float32
model (``scoring.KEPT_KEYS_DTYPES``) instead of running the whole prompt again. Those keys are the same
arithmetic split at other places, so the LOO scores may move by float rounding. Per prompt this runs
``loo`` three times on the same generated response: with its own base pass, from generation's keys, and
from the app's prefill, and reports the largest score difference, the rank agreement and the seconds.

    python bench/kept_base.py [--model SPEC] [--limit N] [--readme]

Prompts: the built-in examples, then the evaluation set's (``bench/evalset/evalset.jsonl``), the first
``--limit`` (default 5: the evaluation set's third is a long one, about 15 min here); 2 threads. Writes
``bench/results/kept-base-MODEL.md``; ``--readme`` also the README block ``kept-base``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribot_core import DEFAULT_MODEL, attribute, generate_response, load_model  # noqa: E402
from attribot_core.generate import prefill  # noqa: E402
from attribot_core.metrics import spearman  # noqa: E402
from bench.prefill import prompts  # noqa: E402
from bench.readme_block import write_block, write_report  # noqa: E402


def _timed_loo(lm, context: str, question: str, response, kept=None):
    start = time.perf_counter()
    result = attribute(context, question, model=lm, method="loo", response=response, kept_pass=kept)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--limit", type=int, default=5, help="the first N prompts")
    parser.add_argument("--readme", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    lm = load_model(args.model)
    rows = []
    for key, context, question in prompts()[: args.limit]:
        kept = []
        response = generate_response(lm, context, question, max_new_tokens=32, on_pass=kept.append)
        ahead = prefill(lm, context, question)  # the app's chunks
        own, own_s = _timed_loo(lm, context, question, response)
        runs = {"generation": _timed_loo(lm, context, question, response, kept[-1]),
                "prefill": _timed_loo(lm, context, question, response, ahead)}
        mine = own.scores("sentence")
        for source, (result, seconds) in runs.items():
            theirs = result.scores("sentence")
            rows.append({"prompt": key, "keys": source, "sentences": len(mine),
                         "max_diff": max(abs(a - b) for a, b in zip(mine, theirs, strict=True)),
                         "full_diff": abs(own.log_prob_full - result.log_prob_full),
                         "spearman": spearman(mine, theirs), "own_s": own_s, "kept_s": seconds,
                         "reused": result.extra["tokens_reused"] - own.extra["tokens_reused"]})
            print(rows[-1], file=sys.stderr, flush=True)
    worst = max(r["max_diff"] for r in rows)
    saved = [r["own_s"] - r["kept_s"] for r in rows]
    lines = [
        f"Model {args.model}, torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
        f"{len(rows) // 2} prompts (the built-in examples, then the evaluation set), `loo` on the generated "
        "response (32 new tokens at most), its base pass from generation's keys, from the app's prefill, and its own.",
        "",
        f"- **Largest sentence-score difference against the own base pass: {worst:.1e} nats** "
        f"(log p(response | context): {max(r['full_diff'] for r in rows):.1e}); Spearman "
        f"{min(r['spearman'] for r in rows):.4f} at the least.",
        f"- Seconds saved per `loo` run, median {statistics.median(saved):.2f} "
        f"({min(saved):.2f}–{max(saved):.2f}; the base pass's prompt tokens taken, not computed).",
        "",
        "| prompt | keys from | sentences | tokens taken | max \\|Δ\\| (nats) | Δ log p full | Spearman "
        "| `loo`, own base pass (s) | from the keys (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {r['prompt']} | {r['keys']} | {r['sentences']} | {r['reused']} | {r['max_diff']:.1e} | "
          f"{r['full_diff']:.1e} | {r['spearman']:.4f} | {r['own_s']:.2f} | {r['kept_s']:.2f} |" for r in rows],
    ]
    text = "\n".join(lines)
    print(text)
    write_report(ROOT / "bench" / "results" / f"kept-base-{args.model}.md", "bench/kept_base.py", None, text)
    if args.readme and not write_block("kept-base", "\n".join(lines[:5]) + "\n"):
        print("README.md has no <!-- bench:kept-base --> markers; not written.", file=sys.stderr)


if __name__ == "__main__":
    main()
