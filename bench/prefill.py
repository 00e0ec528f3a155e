"""Generating after a prefill: the same token ids, and how soon the first text comes.

The app's idle worker computes the prompt of the inputs on screen ahead of Run (``generate.prefill``, in
chunks of 128 tokens, then 256, then 512); a Run of them then starts generating at the last prompt token.
Greedy decoding from that cache is a different order of the same float32 arithmetic, so this checks,
prompt by prompt, that it says exactly what generation from the whole prompt says, and times both to the
first text.

    python bench/prefill.py [--model SPEC] [--limit N] [--readme]

Prompts: the built-in examples, then the evaluation set's (``bench/evalset/evalset.jsonl``), 64 new tokens
at most, one model loaded once, 2 threads. Per prompt: generation from the whole prompt (first text at
``on_text``'s first call), the prefill alone, then generation starting from it. Writes
``bench/results/prefill-MODEL.md``; ``--readme`` also the README block ``prefill-MODEL``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribot_core import DEFAULT_MODEL, generate_response, load_model  # noqa: E402
from attribot_core.examples import EXAMPLES  # noqa: E402
from attribot_core.generate import prefill  # noqa: E402
from attribot_core.prompt import PromptBuilder  # noqa: E402
from bench.readme_block import write_block, write_report  # noqa: E402


def _first_text(lm, context: str, question: str, **kwargs) -> tuple[tuple[int, ...], float, float]:
    """(token ids, seconds to the first text, seconds in all) of one greedy generation."""
    start, first = time.perf_counter(), []
    response = generate_response(lm, context, question, max_new_tokens=64,
                                 on_text=lambda _text: first.append(time.perf_counter() - start), **kwargs)
    return response.token_ids, first[0], time.perf_counter() - start


def prompts() -> list[tuple[str, str, str]]:
    """``(key, context, question)`` of the built-in examples, then of the evaluation set's examples."""
    evalset = [json.loads(line) for line in (ROOT / "bench/evalset/evalset.jsonl").open()]
    return [(e.key, e.context, e.question) for e in EXAMPLES] + [(e["id"], e["context"], e["question"])
                                                                 for e in evalset]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--limit", type=int, help="only the first N prompts")
    parser.add_argument("--readme", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    lm = load_model(args.model)
    chosen = prompts()[: args.limit] if args.limit else prompts()
    builder = PromptBuilder(lm.tokenizer, lm.tokenizer_id)
    _first_text(lm, *chosen[0][1:])  # warm-up: the first call of a process pays for its kernels
    rows = []
    for key, context, question in chosen:
        ids, first, _ = _first_text(lm, context, question)
        t = time.perf_counter()
        ahead = prefill(lm, context, question)
        prefill_s = time.perf_counter() - t
        started, first_after, _ = _first_text(lm, context, question, start=ahead)
        rows.append((key, len(builder.prompt_ids(context, question)), prefill_s, first, first_after, ids == started))
        print(rows[-1], file=sys.stderr, flush=True)
    same = sum(r[5] for r in rows)
    med = lambda i: statistics.median(r[i] for r in rows)  # noqa: E731
    lines = [
        f"Model {args.model}, torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
        f"{len(rows)} prompts (the built-in examples, then the evaluation set), 64 new tokens at most.",
        "",
        f"- **Same token ids with and without the prefill: {same} of {len(rows)}.**",
        f"- Seconds to the first text, median: from the whole prompt {med(3):.2f}, after the prefill "
        f"{med(4):.2f} ({med(3) / med(4):.1f}x sooner); the prefill itself {med(2):.2f} (prompts of "
        f"{min(r[1] for r in rows)}–{max(r[1] for r in rows)} tokens, median {med(1):.0f}).",
        "",
        "| prompt | tokens | prefill (s) | first text, whole prompt (s) | first text after the prefill (s) "
        "| same ids |",
        "|---|---:|---:|---:|---:|---|",
        *[f"| {k} | {n} | {p:.2f} | {a:.2f} | {b:.2f} | {'yes' if s else '**no**'} |" for k, n, p, a, b, s in rows],
    ]
    text = "\n".join(lines)
    print(text)
    write_report(ROOT / "bench" / "results" / f"prefill-{args.model}.md", "bench/prefill.py", None, text)
    if args.readme and not write_block(f"prefill-{args.model}", "\n".join(lines[:4]) + "\n"):
        print(f"README.md has no <!-- bench:prefill-{args.model} --> markers; not written.", file=sys.stderr)


if __name__ == "__main__":
    main()
