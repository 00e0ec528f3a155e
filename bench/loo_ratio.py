"""Cached vs naive exact LOO on a sample of ablations, interleaved: a load-robust speed-up figure.

On a shared machine a full ``loo-naive`` run of a long example takes many minutes and the load
changes under it. This scores every k-th sentence's ablation both ways, alternating, in one process,
and reports the ratio of the summed times (and the largest score difference, which must stay ~1e-5).

    python bench/loo_ratio.py --example ex029 --every 5 --repeats 3
    python bench/loo_ratio.py --example ex025 --batch-sizes 1,4   # cached LOO at each batch size, alternating
    python bench/loo_ratio.py --example ex025 --split-attention   # cached passes: split vs masked attention
    python bench/loo_ratio.py --example ex025 --full --repeats 3  # whole runs, `loo` vs `loo-naive`, defaults
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


def compare_batch_sizes(lm, ex, doc, response, sizes: list[int], rounds: int) -> None:
    """Cached LOO over every sentence at each batch size, alternating ``rounds`` times; summed times."""
    variants = [doc.without([i]) for i in range(len(doc.sentences))]
    total = dict.fromkeys(sizes, 0.0)
    scores = {}
    for _ in range(rounds):
        for b in sizes:
            scorer = LocalScorer(lm, ex["question"], response, batch_size=b)
            start = time.perf_counter()
            scores[b] = scorer.log_probs(doc.text, variants)[1]
            total[b] += time.perf_counter() - start
    ref = scores[sizes[0]]
    diff = max(abs(x - y) for b in sizes for x, y in zip(scores[b], ref, strict=True))
    print(f"`{ex['id']}` ({len(doc.sentences)} ablations + base), cached LOO, {rounds} alternating rounds: "
          + ", ".join(f"batch={b} {total[b]:.1f} s ({total[sizes[0]] / total[b]:.2f}x)" for b in sizes)
          + f"; largest |difference| {diff:.1e} nats; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.")


def compare_full_runs(lm, ex, response, repeats: int) -> None:
    """Whole ``attribute()`` runs with their defaults (sentences and paragraphs), loo-naive then loo, repeated."""
    from attribot_core import attribute

    ratios, diff, runs = [], 0.0, {}
    for _ in range(repeats):
        t = {}
        for method in ("loo-naive", "loo"):
            start = time.perf_counter()
            runs[method] = attribute(ex["context"], ex["question"], model=lm, method=method, response=response)
            t[method] = time.perf_counter() - start
        ratios.append(t["loo-naive"] / t["loo"])
        pairs = zip(runs["loo"].scores() + runs["loo"].scores("paragraph"),
                    runs["loo-naive"].scores() + runs["loo-naive"].scores("paragraph"), strict=True)
        diff = max(diff, *(abs(a - b) for a, b in pairs))
        print(f"  loo-naive {t['loo-naive']:.1f} s, loo {t['loo']:.1f} s, {ratios[-1]:.2f}x", file=sys.stderr)
    loo, naive = runs["loo"], runs["loo-naive"]
    print(f"`{ex['id']}` ({len(loo.sentences)} sentences, {len(loo.paragraphs)} paragraphs), whole runs alternating, "
          f"{repeats} pair(s): loo vs loo-naive {' / '.join(f'{r:.2f}x' for r in ratios)} (median "
          f"{sorted(ratios)[len(ratios) // 2]:.2f}x); passes {loo.total_forward_passes} each, model calls "
          f"{loo.extra['model_calls']} vs {naive.extra['model_calls']} (rows per pass {loo.extra['rows_per_pass']}); "
          f"tokens computed {loo.extra['tokens_computed']} vs {naive.extra['tokens_computed']} "
          f"({naive.extra['tokens_computed'] / loo.extra['tokens_computed']:.2f}x); largest |difference| {diff:.1e} "
          f"nats; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.")


def compare_split_attention(lm, ex, doc, response, every: int) -> None:
    """Every k-th ablation scored cached twice per round, attention split at the cache and masked."""
    scorer = LocalScorer(lm, ex["question"], response)
    if not scorer._split_prefix:
        raise SystemExit("The split attention is not active for this model/device (CPU + sdpa only).")
    scorer.log_prob(doc.text)
    total, diff = {True: 0.0, False: 0.0}, 0.0
    sample = list(range(0, len(doc.sentences), every))
    for _ in range(2):
        for i in sample:
            variant, lps = doc.without([i]), {}
            for split in (True, False):
                scorer._split_prefix = split
                scorer._prefix_in_place = split  # masked: the cache path (in place implies the split)
                scorer._memo.pop(variant, None)
                start = time.perf_counter()
                lps[split] = scorer.log_probs(doc.text, [variant])[1][0]
                total[split] += time.perf_counter() - start
            diff = max(diff, abs(lps[True] - lps[False]))
    print(f"`{ex['id']}`: {2 * len(sample)} cached passes each way, alternating: masked attention "
          f"{total[False]:.1f} s, split at the cache {total[True]:.1f} s ({total[False] / total[True]:.2f}x); "
          f"largest |difference| {diff:.1e} nats; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--example", default="ex029")
    ap.add_argument("--every", type=int, default=5, help="score every k-th sentence's ablation")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--repeats", type=int, default=1, help="sweeps (each alternating naive/cached); median ratio")
    ap.add_argument("--batch-sizes", default="", help="instead: full cached LOO at these batch sizes, alternating")
    ap.add_argument("--rounds", type=int, default=2, help="with --batch-sizes: alternations")
    ap.add_argument("--split-attention", action="store_true",
                    help="instead: cached passes with attention split at the cache vs masked SDPA, alternating")
    ap.add_argument("--full", action="store_true", help="instead: whole loo and loo-naive runs, alternating")
    args = ap.parse_args()
    ex = next(e for e in map(json.loads, (ROOT / "bench/evalset/evalset.jsonl").open()) if e["id"] == args.example)
    lm = load_model(args.model)
    doc = segment(ex["context"])
    response = generate_response(lm, ex["context"], ex["question"], max_new_tokens=30)
    if args.full:
        compare_full_runs(lm, ex, response, args.repeats)
        return
    if args.split_attention:
        compare_split_attention(lm, ex, doc, response, args.every)
        return
    if args.batch_sizes:
        compare_batch_sizes(lm, ex, doc, response, [int(b) for b in args.batch_sizes.split(",")], args.rounds)
        return
    sample = list(range(0, len(doc.sentences), args.every))
    ratios, diff = [], 0.0
    for _ in range(args.repeats):
        t, cached, naive, d = sweep(lm, ex, doc, response, sample)
        ratios.append(t["naive"] / t["cached"])
        diff = max(diff, d)
        print(f"  sweep: naive {t['naive']:.1f} s, cached {t['cached']:.1f} s, {ratios[-1]:.2f}x", file=sys.stderr)
    print(f"`{ex['id']}` ({len(doc.sentences)} sentences), {len(sample)} ablations + the base, each scored "
          f"naive and cached alternately with {args.model}, {args.repeats} sweep(s): speed-up "
          f"{' / '.join(f'{r:.2f}x' for r in ratios)} (median {sorted(ratios)[len(ratios) // 2]:.2f}x); "
          f"tokens computed naive {naive.stats.tokens_computed}, cached {cached.stats.tokens_computed} "
          f"({naive.stats.tokens_computed / cached.stats.tokens_computed:.2f}x); "
          f"largest |difference| {diff:.1e} nats; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.")


def sweep(lm, ex, doc, response, sample: list[int]):
    """One pass over the sample, naive and cached alternating per ablation (new scorers: nothing memoised)."""
    cached = LocalScorer(lm, ex["question"], response)
    naive = LocalScorer(lm, ex["question"], response, reuse_prefix=False)
    t = {"cached": 0.0, "naive": 0.0}
    base = {}
    for name, scorer in (("naive", naive), ("cached", cached)):  # each scorer's base pass, timed too
        start = time.perf_counter()
        base[name] = scorer.log_prob(doc.text)
        t[name] += time.perf_counter() - start
    diff = abs(base["naive"] - base["cached"])
    for i in sample:
        variant = doc.without([i])
        lps = {}
        for name, scorer in (("naive", naive), ("cached", cached)):
            start = time.perf_counter()
            lps[name] = scorer.log_probs(doc.text, [variant])[1][0]
            t[name] += time.perf_counter() - start
        diff = max(diff, abs(lps["naive"] - lps["cached"]))
    return t, cached, naive, diff

if __name__ == "__main__":
    main()
