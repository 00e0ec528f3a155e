"""``tree`` next to ``hierarchical`` on the evaluation set's long examples: speed-up and faithfulness.

The reference is exact LOO with the prefix cache (``loo``; equal to naive LOO to ~1e-5 nats), so
speed-ups here are against ``loo``, not ``loo-naive`` (about 1.6x slower again on these contexts).

    python bench/tree_eval.py                     # 2 long examples, SmolLM2-135M
    python bench/tree_eval.py --ids ex029,ex003 --configs tree:4:2,tree:2:1,hierarchical:2
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

from attribot_core import attribute, generate_response, load_model, segment  # noqa: E402
from attribot_core.gold import gold_sentences  # noqa: E402
from attribot_core.metrics import spearman, top_k_overlap  # noqa: E402


def gold_rank(result, gold: set[int]) -> int | None:
    """Rank (1 = top) of the best-ranked gold sentence; None when no gold sentence was scored."""
    ranked = [s.index for s in result.top_k(len(result.sentences))]
    return min((ranked.index(i) + 1 for i in gold if i in ranked), default=None)


def evaluate(ex: dict, lm, configs: list[str], max_new_tokens: int) -> None:
    """Print one row for exact LOO and one per configuration on example ``ex``."""
    doc = segment(ex["context"])
    response = generate_response(lm, ex["context"], ex["question"], max_new_tokens=max_new_tokens)
    gold = gold_sentences(doc, ex["gold_sentences"])

    def run(method, **params):
        t = time.perf_counter()
        r = attribute(ex["context"], ex["question"], model=lm, method=method, response=response, **params)
        return r, time.perf_counter() - t

    ref, ref_s = run("loo", paragraphs=False)
    ref_scores = ref.scores()
    label = f"{ex['id']} ({len(doc.paragraphs)} par., {len(doc.sentences)} sent.)"
    print(f"| {label} | loo | {ref_s:.1f} | 1.0x | {ref.total_forward_passes} | 1.000 | yes | 1.00 "
          f"| {gold_rank(ref, gold)} |", flush=True)
    for config in configs:
        parts = config.split(":")
        params = ({"branching": int(parts[1]), "keep_paragraphs": int(parts[2])} if parts[0] == "tree"
                  else {"keep_paragraphs": int(parts[1])})
        r, secs = run(parts[0], **params)
        s = r.scores()
        top1 = "yes" if r.top_k(1)[0].index == ref.top_k(1)[0].index else "no"
        print(f"| {label} | {config} | {secs:.1f} | {ref_s / secs:.1f}x | {r.total_forward_passes} "
              f"| {spearman(s, ref_scores):.3f} | {top1} | {top_k_overlap(s, ref_scores, 3):.2f} "
              f"| {gold_rank(r, gold)} / {gold_rank(ref, gold)} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", default="", help="comma-separated long example ids (default: the first --n long ones)")
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--configs", default="hierarchical:2,tree:4:2,tree:2:1", help="METHOD:KEEP or tree:BRANCHING:KEEP")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--max-new-tokens", type=int, default=30)
    args = ap.parse_args()

    examples = [json.loads(line) for line in (ROOT / "bench/evalset/evalset.jsonl").open()]
    chosen = ([e for e in examples if e["id"] in args.ids.split(",")] if args.ids
              else [e for e in examples if e["long"]][: args.n])
    lm = load_model(args.model)
    print(f"Model {args.model}; reference: exact LOO (cached). Load average at start "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.\n")
    print("| example | method | time (s) | speed-up vs loo | passes | Spearman | top-1 = loo's | top-3 overlap "
          "| best gold rank (method / loo) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for ex in chosen:
        evaluate(ex, lm, args.configs.split(","), args.max_new_tokens)
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
