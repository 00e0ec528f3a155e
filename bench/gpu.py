"""The GPU path (bf16, padded batched ablations) on model shapes a GPU user runs, with no download.

Models are built from a config with random weights (a Llama-3.1-8B-shaped target and a
Llama-3.2-1B-shaped proxy sharing one tokenizer trained in-process): random weights give valid
timings and memory, not meaningful scores, so this reports cost, never faithfulness. On a synthetic
context of each length (paragraphs of sentences) with a fixed 64-token response it measures
``loo-naive``, ``loo`` at batch 1 and at ``auto``, ``hierarchical``, ``tree`` and the full stack
(proxy ranks hierarchically, the target rescores the top 3): seconds, forward passes, model calls,
peak GPU memory, speed-up against ``loo-naive`` and attribution time over the time to generate the
64 tokens. It also checks, in fp32 on a smaller shape, that batched scoring equals one-at-a-time
scoring (<= 1e-4 nats), which is what makes batching a speed trick and not an approximation.

    python bench/gpu.py                 # on a GPU (about 5 minutes on one H200); writes bench/results/gpu.*
    python bench/gpu.py --tiny          # the same code on the CPU in seconds, tiny shapes (a test runs it)
    python bench/gpu.py --out DIR       # where gpu.md / gpu.json go (each row is written as it finishes)
    python bench/gpu.py --readme        # also put the report into the README's gpu block

Rows are run in order of importance; once ``--budget-s`` seconds have passed, the rest are skipped
and said to be skipped (so a time limit never loses the rows already measured).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribot_core import LoadedModel, Response, attribute, segment  # noqa: E402
from attribot_core.prompt import PromptBuilder  # noqa: E402
from attribot_core.tiny import build_tiny_tokenizer  # noqa: E402

# Shapes of the public configs (no weights needed): a GPU user's target and proxy.
SHAPES = {
    "llama-3.1-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072,
                         rope_theta=500000.0, tie_word_embeddings=False),
    "llama-3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072,
                         rope_theta=500000.0, tie_word_embeddings=True),
    # the fp32 exactness check: small enough that fp32 passes are quick, big enough to have real matmuls
    "check-256m": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=8, num_attention_heads=16,
                       num_key_value_heads=4, vocab_size=32000, max_position_embeddings=8192, tie_word_embeddings=True),
    # --tiny: the same code on a CPU in seconds
    "tiny-target": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                        num_key_value_heads=2, vocab_size=1000, max_position_embeddings=4096,
                        tie_word_embeddings=False),
    "tiny-proxy": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=1000, max_position_embeddings=4096, tie_word_embeddings=True),
}

_WORD_LIST = (
    "harbour board council river engine ledger mill quarry lantern archive merchant ferry bridge tower "
    "market schooner winter harvest charter survey granite copper signal canal orchard beacon festival "
    "treasurer surveyor warden pilot keeper weaver miller mason clerk captain inspector committee"
)
WORDS = tuple(_WORD_LIST.split())


@dataclass
class Setup:
    """What one run of the benchmark uses (the GPU defaults, or ``--tiny``)."""

    device: str
    dtype: str
    target: str
    proxy: str
    contexts: tuple[int, ...]
    response_tokens: int
    check_context: int
    check_response: int
    vocab: int


GPU = Setup("cuda", "bfloat16", "llama-3.1-8b", "llama-3.2-1b", (2048, 8192), 64, 1024, 16, 4000)
TINY = Setup("cpu", "float32", "tiny-target", "tiny-proxy", (400, 800), 8, 400, 6, 600)


def synthetic_text(rng: random.Random, n_words: int = 60_000) -> list[list[str]]:
    """Paragraphs (4-6 sentences) of 20-32-word sentences, enough for the longest context."""
    paragraphs, used = [], 0
    while used < n_words:
        sentences = []
        for _ in range(rng.randint(4, 6)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(20, 32))]
            words[0] = words[0].capitalize()
            sentences.append(" ".join(words) + f" {rng.randint(1, 999)}.")
            used += len(words) + 1
        paragraphs.append(sentences)
    return paragraphs


def context_of(tokenizer, paragraphs: list[list[str]], tokens: int) -> str:
    """The first paragraphs whose text fits in ``tokens`` tokens (the prompt adds a few dozen)."""
    kept, total = [], 0
    for sentences in paragraphs:
        text = " ".join(sentences)
        n = len(tokenizer(text + "\n\n", add_special_tokens=False).input_ids)
        if total + n > tokens - 80:
            break
        kept.append(text)
        total += n
    return "\n\n".join(kept)


def build_model(name: str, tokenizer, device: str, dtype: str, seed: int) -> LoadedModel:
    """A Llama-architecture model with random weights, made directly on ``device`` in ``dtype``."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    start = time.perf_counter()
    cfg = LlamaConfig(**SHAPES[name], bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id)
    torch_dtype = getattr(torch, dtype)
    torch.manual_seed(seed)
    with torch.device(device):  # initialised where it runs: an 8B model never passes through CPU memory
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch_dtype)
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    return LoadedModel(f"{name} (random)", model, tokenizer, torch.device(device), torch_dtype,
                       time.perf_counter() - start, {"params": params})


def fixed_response(lm: LoadedModel, n: int, seed: int) -> Response:
    """``n`` ordinary token ids of the shared tokenizer: what is scored (no end-of-turn: a cut response)."""
    rng = random.Random(seed)
    specials = set(lm.tokenizer.all_special_ids)
    pool = [i for i in range(len(lm.tokenizer)) if i not in specials]
    ids = tuple(rng.choice(pool) for _ in range(n))
    return Response(lm.tokenizer.decode(list(ids)), ids, lm.tokenizer_id, complete=False)


def generation_seconds(lm: LoadedModel, context: str, question: str, n: int) -> float:
    """Greedy generation of exactly ``n`` tokens after the prompt (KV cache on), as the app generates."""
    import torch

    prompt = PromptBuilder(lm.tokenizer, lm.tokenizer_id).prompt_ids(context, question)
    ids = torch.tensor([prompt], device=lm.device)
    _sync(lm)
    start = time.perf_counter()
    with torch.inference_mode():
        lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                          do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    _sync(lm)
    return time.perf_counter() - start


def _sync(lm: LoadedModel) -> None:
    import torch

    if lm.device.type == "cuda":
        torch.cuda.synchronize(lm.device)


def _peak_reset(lm: LoadedModel) -> None:
    import torch

    if lm.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(lm.device)


def _peak_gb(lm: LoadedModel) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(lm.device) / 2**30 if lm.device.type == "cuda" else None


RUNS = [  # (label, method, params, uses proxy), in order of importance for a budgeted run
    ("loo auto", "loo", {"batch_size": "auto"}, False),
    ("hierarchical k=2", "hierarchical", {"keep_paragraphs": 2}, False),
    ("tree b=4 k=2", "tree", {"branching": 4, "keep_paragraphs": 2}, False),
    ("full stack (proxy hier. k=2, target top-3)", "pruning",
     {"keep_sentences": 3, "keep_paragraphs": 2, "proxy_stage": "hierarchical"}, True),
    ("loo batch=1", "loo", {"batch_size": 1}, False),
    ("loo-naive batch=1", "loo-naive", {"batch_size": 1}, False),
]


def attribution_rows(target: LoadedModel, proxy: LoadedModel, context: str, question: str, response: Response,
                     gen_s: float, deadline: float) -> list[dict]:
    """One row per configuration of :data:`RUNS` on this context (skipped once ``deadline`` passed)."""
    rows = []
    for label, method, params, needs_proxy in RUNS:
        if time.perf_counter() > deadline:
            rows.append({"label": label, "skipped": "time budget spent"})
            continue
        print(f"    {label} ...", file=sys.stderr, flush=True)
        _peak_reset(target)
        _sync(target)
        settings = {"paragraphs": False} if method.startswith("loo") else {}
        r = attribute(context, question, model=target, proxy_model=proxy if needs_proxy else None, method=method,
                      response=response, per_token=False, **settings, **params)
        _sync(target)
        seconds = r.timings["attribute_s"]
        rows.append({
            "label": label, "seconds": seconds, "forward_passes": dict(r.forward_passes),
            "model_calls": r.extra.get("model_calls"), "rows_per_pass": r.extra.get("rows_per_pass"),
            "peak_gpu_gb": _peak_gb(target), "attribution_over_generation": seconds / gen_s,
            "scores": r.scores(),
        })
    by_label = {row["label"]: row for row in rows if "seconds" in row}
    naive = by_label.get("loo-naive batch=1")
    exact = by_label.get("loo batch=1") or by_label.get("loo auto")
    for row in rows:
        if "seconds" not in row:
            continue
        if naive:
            row["speedup_vs_naive"] = naive["seconds"] / row["seconds"]
        if exact and row["label"].startswith("loo") and row is not exact:
            row["max_abs_diff_vs_loo"] = max(abs(a - b) for a, b in zip(row["scores"], exact["scores"], strict=True))
    for row in rows:
        row.pop("scores", None)
    return rows


def exactness_check(setup: Setup, tokenizer, paragraphs) -> dict:
    """Batched vs one-at-a-time scoring in fp32 on a smaller shape: the largest |difference| in nats."""
    shape = "check-256m" if setup.device == "cuda" else setup.target
    lm = build_model(shape, tokenizer, setup.device, "float32", seed=1)
    context = context_of(tokenizer, paragraphs, setup.check_context)
    response = fixed_response(lm, setup.check_response, seed=2)
    q = "Which survey did the harbour board approve?"
    one = attribute(context, q, model=lm, method="loo", response=response, batch_size=1, per_token=False)
    runs = {
        "loo batch=8": attribute(context, q, model=lm, method="loo", response=response, batch_size=8, per_token=False),
        "loo-naive batch=1": attribute(context, q, model=lm, method="loo-naive", response=response, batch_size=1,
                                       per_token=False),
        "loo-naive batch=8": attribute(context, q, model=lm, method="loo-naive", response=response, batch_size=8,
                                       per_token=False),
    }
    base = one.scores() + [s.score for s in one.paragraphs]
    diffs = {}
    for label, r in runs.items():
        other = r.scores() + [s.score for s in r.paragraphs]
        diffs[label] = max(abs(a - b) for a, b in zip(base, other, strict=True))
    del lm
    return {"shape": shape, "sentences": len(segment(context).sentences), "max_abs_diff_vs_loo_batch1": diffs,
            "tolerance": 1e-4, "ok": all(d <= 1e-4 for d in diffs.values())}


def render(report: dict) -> str:
    """The report as markdown (what goes to the README)."""
    m = report["machine"]
    lines = [
        f"Run {report['date']} on {m['device']} (torch {m['torch']}, transformers {m['transformers']}), "
        f"`{report['command']}`. Target `{report['target']}` ({report['target_params'] / 1e9:.2f} B parameters), "
        f"proxy `{report['proxy']}` ({report['proxy_params'] / 1e9:.2f} B), {report['dtype']}, random weights "
        f"(timings and memory only; scores are meaningless). Response: {report['response_tokens']} tokens, "
        "teacher-forced. Speed-ups are against `loo-naive batch=1` in the same run.",
        "",
    ]
    for ctx in report["contexts"]:
        lines += [f"**{ctx['prompt_tokens']}-token prompt** ({ctx['paragraphs']} paragraphs, {ctx['sentences']} "
                  f"sentences); generating {report['response_tokens']} tokens took {ctx['generation_s']:.2f} s.", "",
                  "| configuration | seconds | speed-up vs naive | forward passes | model calls | rows/pass "
                  "| peak GPU GiB | attribution / generation | max abs diff vs loo b=1 (nats) |",
                  "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
        for row in ctx["rows"]:
            if "skipped" in row:
                lines.append(f"| {row['label']} | skipped: {row['skipped']} | | | | | | | |")
                continue
            passes = " + ".join(f"{n} ({m.split(' ')[0]})" for m, n in row["forward_passes"].items())
            peak = f"{row['peak_gpu_gb']:.1f}" if row["peak_gpu_gb"] is not None else "-"
            speed = f"{row['speedup_vs_naive']:.1f}x" if "speedup_vs_naive" in row else "-"
            diff = f"{row['max_abs_diff_vs_loo']:.1e}" if "max_abs_diff_vs_loo" in row else ""
            lines.append(f"| {row['label']} | {row['seconds']:.2f} | {speed} | {passes} | {row['model_calls']} "
                         f"| {row['rows_per_pass']} | {peak} | {row['attribution_over_generation']:.1f} | {diff} |")
        lines.append("")
    check = report.get("exactness")
    if check:
        diffs = ", ".join(f"{k}: {v:.1e}" for k, v in check["max_abs_diff_vs_loo_batch1"].items())
        lines += [f"Exactness in fp32 (`{check['shape']}` shape, {check['sentences']} sentences): largest "
                  f"|score - loo batch=1| over sentences and paragraphs: {diffs} nats "
                  f"({'within' if check['ok'] else 'OUTSIDE'} the {check['tolerance']:.0e} tolerance).", ""]
    lines.append(f"Whole benchmark: {report['total_s']:.0f} s.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes on the CPU, in seconds (a test runs this)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for gpu.md and gpu.json")
    ap.add_argument("--budget-s", type=float, default=420.0, help="skip remaining rows after this many seconds")
    ap.add_argument("--readme", action="store_true", help="write the report into the README's gpu block")
    args = ap.parse_args(argv)

    import torch
    import transformers

    setup = TINY if args.tiny else GPU
    if setup.device == "cuda" and not torch.cuda.is_available():
        sys.exit("No GPU here: run `python bench/gpu.py --tiny` for the CPU version of this benchmark.")
    start = time.perf_counter()
    deadline = start + args.budget_s
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    paragraphs = synthetic_text(rng, n_words=2 * max(setup.contexts))
    corpus = "\n\n".join(" ".join(p) for p in paragraphs[:200])
    tokenizer = build_tiny_tokenizer(corpus, setup.vocab)
    device_name = torch.cuda.get_device_name(0) if setup.device == "cuda" else (platform.processor() or "CPU")
    report = {
        "date": dt.date.today().isoformat(),
        "command": "python bench/gpu.py" + (" --tiny" if args.tiny else ""),
        "machine": {"device": device_name, "torch": torch.__version__, "transformers": transformers.__version__},
        "dtype": setup.dtype, "response_tokens": setup.response_tokens, "contexts": [],
    }

    def save() -> None:
        report["total_s"] = time.perf_counter() - start
        (out / "gpu.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
        (out / "gpu.md").write_text(render(report) + "\n", encoding="utf-8")

    print("exactness check (fp32) ...", file=sys.stderr, flush=True)
    report["exactness"] = exactness_check(setup, tokenizer, paragraphs)
    print(f"  {report['exactness']}", file=sys.stderr, flush=True)
    target = build_model(setup.target, tokenizer, setup.device, setup.dtype, seed=0)
    proxy = build_model(setup.proxy, tokenizer, setup.device, setup.dtype, seed=1)
    report.update(target=setup.target, proxy=setup.proxy, target_params=target.info["params"],
                  proxy_params=proxy.info["params"])
    print(f"models built in {target.load_seconds:.1f} s + {proxy.load_seconds:.1f} s", file=sys.stderr, flush=True)
    response = fixed_response(target, setup.response_tokens, seed=3)
    question = "Which survey did the harbour board approve, and who signed the charter?"
    save()
    for tokens in setup.contexts:
        context = context_of(tokenizer, paragraphs, tokens)
        doc = segment(context)
        prompt_tokens = len(PromptBuilder(tokenizer, target.tokenizer_id).prompt_ids(context, question))
        print(f"context ~{tokens} tokens: {len(doc.paragraphs)} paragraphs, {len(doc.sentences)} sentences",
              file=sys.stderr, flush=True)
        generation_seconds(target, context, question, 4)  # warm-up: kernels, allocator
        # ... and the masked-attention kernels of cached and batched passes, which generation never runs: on the
        # first H200 runs the first timed row of each context paid up to 15 s for them (run 2: `loo auto` at one
        # row per pass took 76 s, the same configuration as `loo batch=1` 61 s later)
        attribute(context, question, model=target, proxy_model=proxy, method="pruning", response=response,
                  per_token=False, keep_sentences=2, keep_paragraphs=1, proxy_stage="hierarchical")
        gen_s = generation_seconds(target, context, question, setup.response_tokens)
        ctx = {"target_tokens": tokens, "prompt_tokens": prompt_tokens, "paragraphs": len(doc.paragraphs),
               "sentences": len(doc.sentences), "generation_s": gen_s, "rows": []}
        report["contexts"].append(ctx)
        ctx["rows"] = attribution_rows(target, proxy, context, question, response, gen_s, deadline)
        save()
    save()
    text = render(report)
    print(text)
    if args.readme:
        from readme_block import write_block

        write_block("gpu", text)
    return report


if __name__ == "__main__":
    main()
