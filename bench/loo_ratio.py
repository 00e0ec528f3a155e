"""Cached vs naive exact LOO on a sample of ablations, interleaved: a load-robust speed-up figure.

On a shared machine a full ``loo-naive`` run of a long example takes many minutes and the load
changes under it. This scores every k-th sentence's ablation both ways, alternating, in one process,
and reports the ratio of the summed times (and the largest score difference, which must stay ~1e-5).

    python bench/loo_ratio.py --example ex029 --every 5
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

from attribot_core import generate_response, load_model, segment  # noqa: E402
from attribot_core.scoring import LocalScorer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--example", default="ex029")
    ap.add_argument("--every", type=int, default=5, help="score every k-th sentence's ablation")
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args()
    ex = next(e for e in map(json.loads, (ROOT / "bench/evalset/evalset.jsonl").open()) if e["id"] == args.example)
    lm = load_model(args.model)
    doc = segment(ex["context"])
    response = generate_response(lm, ex["context"], ex["question"], max_new_tokens=30)
    cached = LocalScorer(lm, ex["question"], response)
    naive = LocalScorer(lm, ex["question"], response, reuse_prefix=False)
    t = {"cached": 0.0, "naive": 0.0}
    base = {}
    for name, scorer in (("naive", naive), ("cached", cached)):  # each scorer's base pass, timed too
        start = time.perf_counter()
        base[name] = scorer.log_prob(doc.text)
        t[name] += time.perf_counter() - start
    diff = abs(base["naive"] - base["cached"])
    sample = list(range(0, len(doc.sentences), args.every))
    for i in sample:
        variant = doc.without([i])
        lps = {}
        for name, scorer in (("naive", naive), ("cached", cached)):
            start = time.perf_counter()
            lps[name] = scorer.log_probs(doc.text, [variant])[1][0]
            t[name] += time.perf_counter() - start
        diff = max(diff, abs(lps["naive"] - lps["cached"]))
    print(f"`{ex['id']}` ({len(doc.sentences)} sentences), {len(sample)} ablations + the base, each scored "
          f"naive and cached alternately with {args.model}: naive {t['naive']:.1f} s, cached {t['cached']:.1f} s, "
          f"speed-up {t['naive'] / t['cached']:.2f}x; tokens computed naive {naive.stats.tokens_computed}, "
          f"cached {cached.stats.tokens_computed} ({naive.stats.tokens_computed / cached.stats.tokens_computed:.2f}x); "
          f"largest |difference| {diff:.1e} nats; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.")


if __name__ == "__main__":
    main()
