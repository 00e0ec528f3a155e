"""Speed and faithfulness of the engine's methods on a ~20-sentence context and on a long one.

Every ratio is measured in this one run (machines are noisy; absolute seconds are not comparable
across runs; the load average is printed with each table). Prints a markdown report and writes it
to ``docs/bench_speed.md`` (and the README's speed block).

    python bench/speed.py                       # SmolLM2-135M on ex025 and a long example; Qwen 0.5B too
    python bench/speed.py --repeats 3           # best of 3 timings per method
    python bench/speed.py --device cuda         # on a GPU: bf16, batch sizes 1/4/16/64, peak GPU memory
    python bench/speed.py --long none --no-qwen # the short table only
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


def load_note() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def best_of(repeats: int, fn):
    """Run ``fn`` ``repeats`` times; keep the result of the fastest run."""
    best = None
    for _ in range(repeats):
        result = fn()
        if best is None or result.timings["attribute_s"] < best.timings["attribute_s"]:
            best = result
    return best


def section(title, target, proxy, example, response, runs, repeats, gen_s):
    """Run ``runs`` = [(label, method, params)], return markdown rows against the target's loo-naive.

    ``params`` may hold ``batch_size`` (ablations per forward pass) next to the method's own.
    """
    import torch

    cuda = target.device.type == "cuda"
    results, peak = {}, {}
    load_start = load_note()
    for label, method, params in runs:
        print(f"  {label} ...", file=sys.stderr, flush=True)
        if cuda:
            torch.cuda.reset_peak_memory_stats(target.device)
        results[label] = best_of(repeats, lambda m=method, p=params: attribute(
            example["context"], example["question"], model=target, proxy_model=proxy,
            method=m, response=response, **p))
        if cuda:
            peak[label] = torch.cuda.max_memory_allocated(target.device) / 2**20
    naive, exact = results["loo-naive"], results["loo"]
    naive_s = naive.timings["attribute_s"]
    exact_scores = exact.scores()
    max_diff = max(abs(a - b) for a, b in zip(naive.scores(), exact_scores, strict=True))
    lines = [f"### {title}", "",
             "| method | time (s) | speed-up vs loo-naive | forward passes | target model calls | tokens computed "
             "| Pearson | Spearman | top-3 overlap | attribution / generation |" + (" peak GPU MB |" if cuda else ""),
             "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if cuda else "")]
    for label, r in results.items():
        t = r.timings["attribute_s"]
        passes = " + ".join(f"{n} ({Path(m).name})" for m, n in r.forward_passes.items())
        s = r.scores()
        lines.append(
            f"| {label} | {t:.2f} | {naive_s / t:.2f}x | {passes} | {r.extra.get('model_calls', '')} "
            f"| {r.extra['tokens_computed']} "
            f"| {pearson(s, exact_scores):.3f} | {spearman(s, exact_scores):.3f} "
            f"| {top_k_overlap(s, exact_scores, 3):.2f} | {t / gen_s:.2f} |"
            + (f" {peak[label]:.0f} |" if cuda else ""))
    lines += ["", f"Generating the same {exact.response_tokens}-token response took {gen_s:.2f} s. "
              f"Largest |loo - loo-naive| over sentences: {max_diff:.2e} nats. "
              f"Prompt tokens reused by loo's prefix cache: {exact.extra['tokens_reused']} of "
              f"{exact.extra['tokens_reused'] + exact.extra['tokens_computed']} "
              f"({exact.extra['tokens_reused'] / (exact.extra['tokens_reused'] + exact.extra['tokens_computed']):.0%})."
              f" Peak RSS so far: {peak_rss_mb():.0f} MB. CPU: {load_start} at the start, {load_note()} "
              f"at the end.", ""]
    return lines, results


def batch_rows(sizes, exact_label="loo"):
    """``loo`` rows at each batch size (ablations per model call, or ``auto``; the plain ``loo`` row is auto)."""
    return [(f"{exact_label} batch={b}", exact_label, {"paragraphs": False, "batch_size": b}) for b in sizes]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--example", default="ex025", help="id in bench/evalset/evalset.jsonl")
    ap.add_argument("--long", default="ex029", help="a long example's id, or 'none'")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=30)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: GPU if present)")
    ap.add_argument("--batch-sizes", default=None, help="comma-separated (default 1,2,4,8 on CPU, 1,4,16,64 on GPU)")
    ap.add_argument("--long-batch-sizes", default="1,4", help="batch sizes on the long example (each row is slow)")
    ap.add_argument("--no-qwen", action="store_true", help="skip the Qwen 0.5B table")
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_speed.md"))
    args = ap.parse_args()

    import torch

    small = load_model("smollm2-135m", device=args.device)
    cuda = small.device.type == "cuda"
    default_sizes = "1,4,16,64,auto" if cuda else "1,2,4,8"
    sizes = [b if b == "auto" else int(b) for b in (args.batch_sizes or default_sizes).split(",")]
    examples = {e["id"]: e for e in map(json.loads, (ROOT / "bench/evalset/evalset.jsonl").open())}
    example = examples[args.example]
    doc = segment(example["context"])
    precision = str(small.dtype).replace("torch.", "")
    device = torch.cuda.get_device_name(small.device) if cuda else (platform.processor() or platform.machine())
    report = ["## Speed benchmark (`python bench/speed.py`)", "",
              f"Context: eval-set example `{example['id']}` ({len(doc.paragraphs)} paragraphs, "
              f"{len(doc.sentences)} sentences), question: *{example['question']}* "
              f"Machine: {device}, {os.cpu_count()} cores, torch {torch.__version__} with "
              f"{torch.get_num_threads()} threads, {precision}, best of {args.repeats}. "
              f"Forward passes count ablations (one context scored each); `batch=N` runs N of them per model "
              f"call (on a CPU their suffixes are packed into one sequence), and `loo` without `batch=` is the "
              f"default `auto` (4 on a CPU). `tree`: blocks -> paragraphs -> sentences (branching 4, keep 2).", ""]

    def generate(lm, ex):
        start = time.perf_counter()
        response = generate_response(lm, ex["context"], ex["question"], max_new_tokens=args.max_new_tokens)
        return response, time.perf_counter() - start

    generate(small, example)  # warm-up
    response, gen_s = generate(small, example)
    print(f"SmolLM2 response: {response.text!r}", file=sys.stderr)
    lines, _ = section(
        "SmolLM2-135M-Instruct", small, None, example, response,
        [("loo-naive", "loo-naive", {"paragraphs": False}), ("loo", "loo", {"paragraphs": False}),
         *batch_rows(sizes),
         ("hierarchical k=1", "hierarchical", {"keep_paragraphs": 1}),
         ("hierarchical k=2", "hierarchical", {"keep_paragraphs": 2}),
         ("tree b=4 k=2", "tree", {"branching": 4, "keep_paragraphs": 2})],
        args.repeats, gen_s)
    report += lines
    print("\n".join(lines), file=sys.stderr, flush=True)

    if args.long != "none":
        long_ex = examples[args.long]
        long_doc = segment(long_ex["context"])
        response, gen_s = generate(small, long_ex)
        print(f"SmolLM2, long example: {response.text!r}", file=sys.stderr)
        lines, _ = section(
            f"SmolLM2-135M, long example `{long_ex['id']}` ({len(long_doc.paragraphs)} paragraphs, "
            f"{len(long_doc.sentences)} sentences, best of 1)", small, None, long_ex, response,
            [("loo-naive", "loo-naive", {"paragraphs": False}), ("loo", "loo", {"paragraphs": False}),
             *batch_rows([int(b) for b in args.long_batch_sizes.split(",")]),
             ("hierarchical k=2", "hierarchical", {"keep_paragraphs": 2}),
             ("tree b=4 k=2", "tree", {"branching": 4, "keep_paragraphs": 2}),
             ("tree b=2 k=1", "tree", {"branching": 2, "keep_paragraphs": 1})],
            1, gen_s)
        report += lines
        print("\n".join(lines), file=sys.stderr, flush=True)

    if args.no_qwen:
        pass
    elif preset_status(PRESETS["qwen2.5-coder-0.5b"])[0]:
        big = load_model("qwen2.5-coder-0.5b", device=args.device)
        generate(big, example)
        response, gen_s = generate(big, example)
        print(f"0.5B response: {response.text!r}", file=sys.stderr)
        lines, _ = section(
            "Target Qwen2.5-Coder-0.5B-Instruct, proxy SmolLM2-135M-Instruct", big, small, example, response,
            [("loo-naive", "loo-naive", {"paragraphs": False}), ("loo", "loo", {"paragraphs": False}),
             *batch_rows(sizes),
             ("hierarchical k=2", "hierarchical", {"keep_paragraphs": 2}),
             ("tree b=4 k=2", "tree", {"branching": 4, "keep_paragraphs": 2}),
             ("proxy (SmolLM2)", "proxy", {"paragraphs": False}),
             ("pruning m=5", "pruning", {"keep_sentences": 5}),
             ("pruning m=3, k=2 (full stack)", "pruning", {"keep_sentences": 3, "keep_paragraphs": 2}),
             ("pruning m=3, tree proxy stage", "pruning",
              {"keep_sentences": 3, "keep_paragraphs": 2, "proxy_stage": "tree"})],
            args.repeats, gen_s)
        report += lines
        print("\n".join(lines), file=sys.stderr, flush=True)
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
