"""Speed and faithfulness of the engine's methods on one ~20-sentence, ~5-paragraph context.

Every ratio is measured in this one run (machines are noisy; absolute seconds are not comparable
across runs). Prints a markdown report and writes it to ``docs/bench_speed.md``.

    python bench/speed.py                 # default model; plus Qwen 0.5B target + SmolLM2 proxy if installed
    python bench/speed.py --repeats 3     # best of 3 timings per method
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribot_core import PRESETS, attribute, generate_response, load_model, preset_status, segment  # noqa: E402
from attribot_core.metrics import pearson, spearman, top_k_overlap  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_of(repeats: int, fn):
    """Run ``fn`` ``repeats`` times; keep the result of the fastest run."""
    best = None
    for _ in range(repeats):
        result = fn()
        if best is None or result.timings["attribute_s"] < best.timings["attribute_s"]:
            best = result
    return best


def section(title, target, proxy, example, response, runs, repeats, gen_s):
    """Run ``runs`` = [(label, method, params)], return markdown rows against the target's loo-naive."""
    results = {}
    for label, method, params in runs:
        print(f"  {label} ...", file=sys.stderr, flush=True)
        results[label] = best_of(repeats, lambda m=method, p=params: attribute(
            example["context"], example["question"], model=target, proxy_model=proxy,
            method=m, response=response, **p))
    naive, exact = results["loo-naive"], results["loo"]
    naive_s = naive.timings["attribute_s"]
    exact_scores = exact.scores()
    max_diff = max(abs(a - b) for a, b in zip(naive.scores(), exact_scores, strict=True))
    lines = [f"### {title}", "",
             "| method | time (s) | speed-up vs loo-naive | forward passes | tokens computed | Pearson | Spearman "
             "| top-3 overlap | attribution / generation |",
             "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for label, r in results.items():
        t = r.timings["attribute_s"]
        passes = " + ".join(f"{n} ({Path(m).name})" for m, n in r.forward_passes.items())
        s = r.scores()
        lines.append(
            f"| {label} | {t:.2f} | {naive_s / t:.1f}x | {passes} | {r.extra['tokens_computed']} "
            f"| {pearson(s, exact_scores):.3f} | {spearman(s, exact_scores):.3f} "
            f"| {top_k_overlap(s, exact_scores, 3):.2f} | {t / gen_s:.2f} |")
    lines += ["", f"Generating the same {exact.response_tokens}-token response took {gen_s:.2f} s. "
              f"Largest |loo - loo-naive| over sentences: {max_diff:.2e} nats. "
              f"Prompt tokens reused by loo's prefix cache: {exact.extra['tokens_reused']} of "
              f"{exact.extra['tokens_reused'] + exact.extra['tokens_computed']} "
              f"({exact.extra['tokens_reused'] / (exact.extra['tokens_reused'] + exact.extra['tokens_computed']):.0%})."
              f" Peak RSS so far: {peak_rss_mb():.0f} MB.", ""]
    return lines, results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--example", default="ex025", help="id in bench/evalset/evalset.jsonl")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=30)
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_speed.md"))
    args = ap.parse_args()

    import torch

    examples = [json.loads(line) for line in (ROOT / "bench/evalset/evalset.jsonl").open()]
    example = next(e for e in examples if e["id"] == args.example)
    doc = segment(example["context"])
    report = ["## Speed benchmark (`python bench/speed.py`)", "",
              f"Context: eval-set example `{example['id']}` ({len(doc.paragraphs)} paragraphs, "
              f"{len(doc.sentences)} sentences), question: *{example['question']}* "
              f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"torch {torch.__version__} with {torch.get_num_threads()} threads, fp32, best of {args.repeats}.", ""]

    def generate(lm):
        start = time.perf_counter()
        response = generate_response(lm, example["context"], example["question"], max_new_tokens=args.max_new_tokens)
        return response, time.perf_counter() - start

    small = load_model("smollm2-135m")
    generate(small)  # warm-up
    response, gen_s = generate(small)
    print(f"default model response: {response.text!r}", file=sys.stderr)
    lines, _ = section(
        "Default model: SmolLM2-135M-Instruct", small, None, example, response,
        [("loo-naive", "loo-naive", {"paragraphs": False}), ("loo", "loo", {"paragraphs": False}),
         ("hierarchical k=1", "hierarchical", {"keep_paragraphs": 1}),
         ("hierarchical k=2", "hierarchical", {"keep_paragraphs": 2})],
        args.repeats, gen_s)
    report += lines

    if preset_status(PRESETS["qwen2.5-coder-0.5b"])[0]:
        big = load_model("qwen2.5-coder-0.5b")
        generate(big)
        response, gen_s = generate(big)
        print(f"0.5B response: {response.text!r}", file=sys.stderr)
        lines, _ = section(
            "Target Qwen2.5-Coder-0.5B-Instruct, proxy SmolLM2-135M-Instruct", big, small, example, response,
            [("loo-naive", "loo-naive", {"paragraphs": False}), ("loo", "loo", {"paragraphs": False}),
             ("hierarchical k=2", "hierarchical", {"keep_paragraphs": 2}),
             ("proxy (SmolLM2)", "proxy", {"paragraphs": False}),
             ("pruning m=5", "pruning", {"keep_sentences": 5}),
             ("pruning m=3, k=2 (full stack)", "pruning", {"keep_sentences": 3, "keep_paragraphs": 2})],
            args.repeats, gen_s)
        report += lines
    else:
        report += ["Qwen2.5-Coder-0.5B is not installed (`make models-qwen`); its section is skipped.", ""]

    text = "\n".join(report)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n", encoding="utf-8")
    if Path(args.out).resolve() == (ROOT / "docs" / "bench_speed.md").resolve():
        from readme_block import write_block

        write_block("speed", "\n".join(report[2:]))  # the README has its own heading


if __name__ == "__main__":
    main()
