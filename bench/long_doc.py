"""A document of hundreds of one-sentence paragraphs with a known answer, attributed by ``tree``.

The document is built from the evaluation set's fictional sentences (``bench/evalset``): the gold
sentence of one single-fact question plus the shortest other distinct sentences as filler, one per
paragraph, shuffled with a fixed seed. Filler sentences that mention the question's entity or the
answer are left out, so the gold sentence is the only one that answers the question.

    python bench/long_doc.py                         # 200 paragraphs, tree with its defaults
    python bench/long_doc.py --paragraphs 100 --tree 2:1,4:2   # tree settings BRANCHING:KEEP
    python bench/long_doc.py --methods tree,hierarchical   # hierarchical takes one pass per paragraph

Prints one markdown row per method: time, forward passes, tokens, the rank of the answer sentence.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribot_core import attribute, generate_response, load_model  # noqa: E402

_SPLIT = re.compile(r"(?<=[.!?])\s+")  # the eval set's own splitting rule (see bench/evalset/README.md)


def build_document(example: dict, examples: list[dict], paragraphs: int, seed: int = 0) -> tuple[str, str]:
    """``(context, gold sentence)``: the gold sentence and ``paragraphs - 1`` filler sentences."""
    gold = example["gold_sentences"][0]
    words = {w for w in re.findall(r"[A-Z][a-z]+", example["question"] + " " + example["answer"])}
    words -= {"Who", "What", "When", "Where", "Which", "How", "In", "The"}
    seen, filler = {gold}, []
    for e in examples:
        for sentence in _SPLIT.split(e["context"].replace("\n\n", " ")):
            if sentence in seen or any(w in sentence for w in words) or example["answer"] in sentence:
                continue
            seen.add(sentence)
            filler.append(sentence)
    filler.sort(key=lambda s: (len(s), s))
    chosen = filler[: paragraphs - 1]
    rng = random.Random(seed)
    rng.shuffle(chosen)
    chosen.insert(rng.randrange(len(chosen) + 1), gold)
    return "\n\n".join(chosen), gold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--example", default="ex007", help="a single-fact example of bench/evalset/evalset.jsonl")
    ap.add_argument("--paragraphs", type=int, default=200)
    ap.add_argument("--methods", default="tree", help="comma-separated, e.g. tree,hierarchical")
    ap.add_argument("--tree", default="4:2", help="tree settings BRANCHING:KEEP, comma-separated to compare")
    ap.add_argument("--keep", type=int, default=2, help="hierarchical: paragraphs kept")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args()

    examples = [json.loads(line) for line in (ROOT / "bench/evalset/evalset.jsonl").open()]
    example = next(e for e in examples if e["id"] == args.example)
    context, gold = build_document(example, examples, args.paragraphs)
    lm = load_model(args.model)
    n_tokens = len(lm.tokenizer(context)["input_ids"])
    start = time.perf_counter()
    response = generate_response(lm, context, example["question"], max_new_tokens=args.max_new_tokens)
    gen_s = time.perf_counter() - start
    print(f"Document: {args.paragraphs} one-sentence paragraphs, {n_tokens} context tokens, built from "
          f"`{example['id']}` ({example['question']} -> {example['answer']}). Model {args.model}. "
          f"Response ({gen_s:.1f} s): {response.text!r} "
          f"({'contains' if example['answer'] in response.text else 'does NOT contain'} the answer). "
          f"Load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.\n")
    print("| method | time (s) | CPU time (s) | load avg | forward passes | tokens computed | tokens reused "
          "| rank of the answer sentence | top sentence |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    runs = []
    for method in args.methods.split(","):
        if method == "tree":
            runs += [("tree", int(k), int(b)) for b, k in (c.split(":") for c in args.tree.split(","))]
        else:
            runs.append((method, args.keep, None))
    for method, keep, branching in runs:
        params = {"keep_paragraphs": keep} | ({"branching": branching} if branching else {})
        t, cpu = time.perf_counter(), time.process_time()
        r = attribute(context, example["question"], model=lm, method=method, response=response, **params)
        dt, cpu = time.perf_counter() - t, time.process_time() - cpu
        ranked = r.top_k(len(r.sentences))
        rank = next((i for i, s in enumerate(ranked, 1) if s.text == gold), None)
        label = f"{method} b={branching} k={keep}" if branching else f"{method} k={keep}"
        print(f"| {label} | {dt:.1f} | {cpu:.1f} | {os.getloadavg()[0]:.1f} | {r.total_forward_passes} "
              f"| {r.extra['tokens_computed']} | {r.extra['tokens_reused']} "
              f"| {rank if rank else 'not scored'} | {ranked[0].text[:60]} |", flush=True)
    print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
