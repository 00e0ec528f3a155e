"""Long documents with a known answer: ``tree`` end to end, and single passes of long-window models.

The document is built from the evaluation set's fictional sentences (``bench/evalset``): the gold
sentence of one single-fact question plus the shortest other distinct sentences as filler, one per
paragraph, shuffled with a fixed seed. Filler sentences that mention the question's entity or the
answer are left out, so the gold sentence is the only one that answers the question.

    python bench/long_doc.py                         # 200 paragraphs, tree with its defaults
    python bench/long_doc.py --paragraphs 100 --tree 2:1,4:2   # tree settings BRANCHING:KEEP
    python bench/long_doc.py --methods tree,hierarchical   # hierarchical takes one pass per paragraph
    python bench/long_doc.py --tokens 7900           # as many paragraphs as fit 7,900 context tokens
    python bench/long_doc.py --methods estimate,estimate-top5,tree --readme   # the 200-paragraph table
    python bench/long_doc.py --model qwen2.5-coder-0.5b --methods estimate,estimate-top5,first-order,first-order-top5
    python bench/long_doc.py --model qwen2.5-coder-0.5b --methods estimate-after-generation,estimate,estimate-top5
    python bench/long_doc.py --model qwen2.5-coder-0.5b --methods first-order-qr,first-order-qr-after-generation
    python bench/long_doc.py --suite [--readme]      # the long-document table (below), each row measured
                                                     # in its own process, so peak RSS is that row's

Prints one markdown row per method: time, forward passes, tokens, the rank of the answer sentence.

``--suite`` measures, each in a fresh subprocess: ``tree`` end to end on SmolLM2-135M at the
largest document its window holds; and for Qwen2.5-Coder-0.5B (32k window) at 16k and 30k context
tokens one full pass (the base pass that fills the prefix cache) and one cached ablation pass (the
middle paragraph deleted: the prefix before it is read in place from the base pass's cache, the rest
recomputed; the average cut of an LOO round). Peak RSS is the process's high-water mark (VmHWM),
reset (``/proc/self/clear_refs``) after loading the model, so each figure is that pass's peak with the
model and the cache resident. ``tree`` at 16k on the 0.5B is projected from the measured passes
unless ``--tree16k`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribot_core import attribute, generate_response, load_model, segment  # noqa: E402
from attribot_core.methods import get_method  # noqa: E402
from bench.readme_block import write_block  # noqa: E402

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


def build_to_tokens(example: dict, examples: list[dict], tokenizer, tokens: int) -> tuple[str, str, int]:
    """``(context, gold sentence, context tokens)`` with as many paragraphs as fit ``tokens`` tokens."""
    lo, hi = 2, sum(e["context"].count(".") for e in examples) + 1
    best = build_document(example, examples, lo)
    while lo <= hi:  # the largest paragraph count whose document stays within ``tokens``
        mid = (lo + hi) // 2
        context, gold = build_document(example, examples, mid)
        n = len(tokenizer(context)["input_ids"])
        if n <= tokens:
            best, lo = (context, gold), mid + 1
        else:
            hi = mid - 1
    return best[0], best[1], len(tokenizer(best[0])["input_ids"])


def _reset_peak() -> None:
    """Start a new high-water mark of this process's resident memory (Linux ``clear_refs`` 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def _peak_gb() -> float:
    """This process's peak resident memory since the last :func:`_reset_peak`, in GB (10^9 bytes)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) * 1024 / 1e9


def _log_layers(lm, path: str) -> None:
    """Append ``seconds  layer  peak-RSS-GB`` after every decoder layer to ``path``: a pass cut short by
    its time limit still says how far it got and at what memory (for a projection, said as one)."""
    layers = _decoder_layers(lm)
    start = time.perf_counter()

    def hook(module, inputs, output, index=0):
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{time.perf_counter() - start:.1f}\t{index}\t{_peak_gb():.2f}\n")

    for i, layer in enumerate(layers):
        layer.register_forward_hook(lambda m, a, o, i=i: hook(m, a, o, i))


def _decoder_layers(lm):
    return next(m for name, m in lm.model.named_modules() if name.endswith("layers"))


def _run_first_layers(lm, n: int) -> tuple[int, int]:
    """Run only the first ``n`` decoder layers (the others stay loaded, so RSS keeps all the weights).

    For a pass that would not finish in the time at hand: the memory of a layer's work is the same in
    every layer, so the peak of ``n`` layers plus the other layers' weights and share of the key/value
    cache, and the time times ``layers / n``, project the whole pass (said as a projection). Returns
    ``(n, all layers)``.
    """
    import torch

    layers = _decoder_layers(lm)
    total = len(layers)
    lm.info["all_layers"] = list(layers)  # keeps the weights of the skipped layers resident
    parent = next(m for name, m in lm.model.named_modules() if name.endswith("model") and hasattr(m, "layers"))
    parent.layers = torch.nn.ModuleList(list(layers)[:n])
    lm.model.config.num_hidden_layers = n
    return n, total


def _kv_bytes_per_layer(lm, tokens: int) -> int:
    """Bytes of one layer's cached keys and values over ``tokens`` positions."""
    cfg = lm.model.config
    kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return 2 * kv_heads * head_dim * tokens * (torch_bits(lm.dtype) // 8)


def torch_bits(dtype) -> int:
    import torch

    return torch.finfo(dtype).bits


def measure_passes(model: str, tokens: int, example: dict, examples: list[dict],
                   layer_log: str | None = None, layers: int | None = None) -> dict:
    """One full pass and one cached ablation pass (middle paragraph deleted) on a ``tokens``-token document.

    With ``layers``, only the first ``layers`` decoder layers run; the row then also carries the
    projection to all layers (``*_projected``) and says so.
    """
    from attribot_core import LocalScorer, Response, segment

    t = time.perf_counter()
    lm = load_model(model)
    load_s = time.perf_counter() - t
    ran, total = _run_first_layers(lm, layers) if layers else (None, None)
    context, gold = build_to_tokens(example, examples, lm.tokenizer, tokens)[:2]
    doc = segment(context)
    variant = doc.without_paragraphs([len(doc.paragraphs) // 2])
    scorer = LocalScorer(lm, example["question"], Response(f"{example['answer']}."))
    scorer.check_fits(context)
    row = {"kind": "passes", "model": model, "window": lm.max_positions, "load_s": load_s,
           "tokens": len(scorer.prompt_ids(context)), "paragraphs": len(doc.paragraphs),
           "prefix_in_place": scorer._prefix_in_place, "loadavg_start": os.getloadavg()[0]}
    row["rss_model_gb"] = _peak_gb()
    if layer_log:
        _log_layers(lm, layer_log)
    _reset_peak()
    t = time.perf_counter()
    full = scorer.log_prob(context)
    row |= {"full_s": time.perf_counter() - t, "full_peak_gb": _peak_gb(), "loadavg_full": os.getloadavg()[0]}
    _reset_peak()
    t = time.perf_counter()
    _, (ablated,) = scorer.log_probs(context, [variant])
    row |= {"ablation_s": time.perf_counter() - t, "ablation_peak_gb": _peak_gb(),
            "loadavg_ablation": os.getloadavg()[0], "reused": scorer.stats.tokens_reused,
            "recomputed": scorer.stats.tokens_computed - row["tokens"] - len(scorer.response_ids) + 1,
            "delta": full - ablated}
    if ran:
        # The skipped layers' weights are loaded but never touched, and a memory-mapped weight counts in
        # RSS once touched: the whole model adds their weights and their share of the cache.
        skipped = sum(p.numel() * p.element_size() for layer in lm.info["all_layers"][ran:]
                      for p in layer.parameters()) / 1e9
        kv_rest = (total - ran) * _kv_bytes_per_layer(lm, row["tokens"]) / 1e9 + skipped
        scale = total / ran
        row |= {"layers_run": ran, "layers": total, "skipped_weights_gb": skipped,
                "full_s_projected": row["full_s"] * scale,
                "ablation_s_projected": row["ablation_s"] * scale,
                "full_peak_gb_projected": row["full_peak_gb"] + kv_rest,
                "ablation_peak_gb_projected": row["ablation_peak_gb"] + kv_rest}
    return row


def measure_tree(model: str, tokens: int, example: dict, examples: list[dict], max_new_tokens: int) -> dict:
    """``tree`` (defaults) end to end, generation included, on the largest document within ``tokens``."""
    t = time.perf_counter()
    lm = load_model(model)
    load_s = time.perf_counter() - t
    budget = min(tokens, lm.max_positions - 200)  # room for the template, the question and the response
    context, gold, n_tokens = build_to_tokens(example, examples, lm.tokenizer, budget)
    _reset_peak()
    row = {"kind": "tree", "model": model, "window": lm.max_positions, "load_s": load_s, "tokens": n_tokens,
           "paragraphs": len(context.split("\n\n")), "loadavg_start": os.getloadavg()[0]}
    t = time.perf_counter()
    response = generate_response(lm, context, example["question"], max_new_tokens=max_new_tokens)
    row["generate_s"] = time.perf_counter() - t
    t = time.perf_counter()
    r = attribute(context, example["question"], model=lm, method="tree", response=response)
    ranked = r.top_k(len(r.sentences))
    row |= {"tree_s": time.perf_counter() - t, "peak_gb": _peak_gb(), "loadavg_end": os.getloadavg()[0],
            "passes": r.total_forward_passes, "response": response.text,
            "answer_in_response": example["answer"].lower() in response.text.lower(),
            "rank": next((i for i, s in enumerate(ranked, 1) if s.text == gold), None),
            "tokens_computed": r.extra["tokens_computed"], "tokens_reused": r.extra["tokens_reused"]}
    return row


def _child(args: list[str]) -> dict:
    """Run one measurement in a fresh process (its own peak memory) and return its JSON row."""
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        return {"kind": "failed", "args": args, "error": (out.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(lines[-1])


def suite(example_id: str, max_new_tokens: int, tree16k: bool) -> str:
    """The long-document table: each row measured in its own subprocess."""
    rows = [_child(["--measure", "tree", "--model", "smollm2-135m", "--tokens", "8192",
                    "--example", example_id, "--max-new-tokens", str(max_new_tokens)])]
    for tokens in (16000, 30000):
        rows.append(_child(["--measure", "passes", "--model", "qwen2.5-coder-0.5b", "--tokens", str(tokens),
                            "--example", example_id]))
    if tree16k:
        rows.append(_child(["--measure", "tree", "--model", "qwen2.5-coder-0.5b", "--tokens", "16000",
                            "--example", example_id, "--max-new-tokens", str(max_new_tokens)]))
    return render(rows, example_id)


def render(rows: list[dict], example_id: str) -> str:
    """Markdown: one table of passes, one of tree runs, and the projection of tree at 16k when not run."""
    lines = [f"Document built from eval-set example `{example_id}` (one sentence per paragraph, the answer "
             f"sentence once, shuffled), {os.cpu_count()} cores, float32, torch {_torch_version()}; `load` is the "
             "1-minute load average while the row ran (above the core count: the machine was shared). Fixed response "
             "(the answer) for the passes; tree generates its own.", "",
             "| model (window) | context tokens | pass | layers run | time (s) | peak RSS (GB) | load |",
             "|---|---:|---|---|---:|---:|---:|"]
    passes = [r for r in rows if r["kind"] == "passes"]
    for r in passes:
        name = f"{r['model']} ({r['window']:,})"
        ablation = (f"cached ablation (middle paragraph; {r['reused']:,} tokens read in place, "
                    f"{r['recomputed']:,} recomputed)")
        for label, key in (("full (fills the cache)", "full"), (ablation, "ablation")):
            if "layers_run" in r:  # measured on the first layers; the whole model is a projection
                cells = (f"{r['layers_run']} of {r['layers']}: measured → **projected** to {r['layers']} "
                         f"| {r[key + '_s']:.0f} → **{r[key + '_s_projected']:.0f}** "
                         f"| {r[key + '_peak_gb']:.2f} → **{r[key + '_peak_gb_projected']:.2f}**")
            else:
                cells = f"all | {r[key + '_s']:.0f} | {r[key + '_peak_gb']:.2f}"
            lines.append(f"| {name} | {r['tokens']:,} | {label} | {cells} | {r['loadavg_' + key]:.1f} |")
    trees = [r for r in rows if r["kind"] == "tree"]
    if trees:
        lines += ["", "| tree end to end (b=4, k=2) | context tokens | paragraphs | generate (s) | tree (s) "
                  "| passes | peak RSS (GB) | answer in response | rank of the answer sentence | load |",
                  "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
        for r in trees:
            lines.append(f"| {r['model']} ({r['window']:,}) | {r['tokens']:,} | {r['paragraphs']} "
                         f"| {r['generate_s']:.0f} | {r['tree_s']:.0f} | {r['passes']} | {r['peak_gb']:.2f} "
                         f"| {'yes' if r['answer_in_response'] else 'no'} | {r['rank'] or 'not scored'} "
                         f"| {r['loadavg_start']:.1f}–{r['loadavg_end']:.1f} |")
    sixteen = next((r for r in passes if r["tokens"] < 20000), None)  # the 16k row
    if sixteen and not any(r["model"] == sixteen["model"] and r["tokens"] >= 0.9 * sixteen["tokens"] for r in trees):
        n_par = sixteen["paragraphs"]
        planned = get_method("tree").planned_passes(n_par, n_par)
        full_s = sixteen.get("full_s_projected", sixteen["full_s"])
        ablation_s = sixteen.get("ablation_s_projected", sixteen["ablation_s"])
        projected = full_s * 2 + planned * ablation_s
        lines += ["", f"Not run: `tree` at {sixteen['tokens']:,} tokens on {sixteen['model']}. PROJECTED from the "
                  f"passes above (not measured): generation ≈ one full pass, the base ≈ one more, and about "
                  f"{planned} planned cached passes ({n_par} paragraphs) at the middle-cut time: "
                  f"≈ {projected / 60:.0f} min under the same load (later rounds drop blocks and run on shorter "
                  "contexts, so this leans high)."]
    for r in rows:
        if r["kind"] == "failed":
            lines.append(f"\nFailed: `{' '.join(r['args'])}`: {r['error']}")
    return "\n".join(lines)


def _torch_version() -> str:
    import torch

    return torch.__version__


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--example", default="ex007", help="a single-fact example of bench/evalset/evalset.jsonl")
    ap.add_argument("--paragraphs", type=int, default=200)
    ap.add_argument("--tokens", type=int, help="size the document by context tokens instead of paragraphs")
    ap.add_argument("--methods", default="tree", help="comma-separated, e.g. tree,hierarchical")
    ap.add_argument("--tree", default="4:2", help="tree settings BRANCHING:KEEP, comma-separated to compare")
    ap.add_argument("--keep", type=int, default=2, help="hierarchical: paragraphs kept")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--suite", action="store_true", help="the long-document table, a subprocess per row")
    ap.add_argument("--tree16k", action="store_true", help="--suite: also run tree at 16k on the 0.5B (long)")
    ap.add_argument("--readme", action="store_true",
                    help="write the table into README.md (--suite/--rows: block long, else long-methods)")
    ap.add_argument("--rows", nargs="+", type=Path, help="render the table from saved --measure JSON rows")
    ap.add_argument("--measure", choices=["passes", "tree"], help=argparse.SUPPRESS)  # one suite row (JSON)
    ap.add_argument("--layer-log", help="--measure passes: append per-layer progress to this file")
    ap.add_argument("--layers", type=int, help="--measure passes: run the first N decoder layers and project")
    args = ap.parse_args()

    examples = [json.loads(line) for line in (ROOT / "bench/evalset/evalset.jsonl").open()]
    example = next(e for e in examples if e["id"] == args.example)
    if args.measure:
        measure = measure_passes if args.measure == "passes" else measure_tree
        extra = (args.max_new_tokens,) if args.measure == "tree" else (args.layer_log, args.layers)
        print(json.dumps(measure(args.model, args.tokens, example, examples, *extra)), flush=True)
        return
    if args.suite or args.rows:
        rows = [json.loads(f.read_text().strip().splitlines()[-1]) for f in args.rows or []]
        text = render(rows, args.example) if args.rows else suite(args.example, args.max_new_tokens, args.tree16k)
        print(text)
        if args.readme and not write_block("long", text):
            print("README.md has no <!-- bench:long --> markers; not written.", file=sys.stderr)
        return
    lm = load_model(args.model)
    if args.tokens:
        context, gold, _ = build_to_tokens(example, examples, lm.tokenizer, args.tokens)
        args.paragraphs = len(context.split("\n\n"))
    else:
        context, gold = build_document(example, examples, args.paragraphs)
    n_tokens = len(lm.tokenizer(context)["input_ids"])
    start, kept = time.perf_counter(), []
    response = generate_response(lm, context, example["question"], max_new_tokens=args.max_new_tokens,
                                 on_pass=kept.append)  # generation's keys: where estimate-after-generation starts
    gen_s = time.perf_counter() - start
    header = (f"Document: {args.paragraphs} one-sentence paragraphs, {n_tokens} context tokens, built from "
              f"`{example['id']}` ({example['question']} -> {example['answer']}). Model {args.model}, torch "
              f"{_torch_version()}, {_torch_threads()} threads. Response ({gen_s:.1f} s, not in the times below): "
              f"{response.text!r} ({'contains' if example['answer'] in response.text else 'does NOT contain'} "
              f"the answer). Load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.\n\n"
              "| method | time (s) | CPU time (s) | load avg | forward passes | tokens computed | tokens reused "
              "| rank of the answer sentence | top sentence |\n"
              "|---|---:|---:|---:|---:|---:|---:|---:|---|")
    print(header)
    lines = [header]
    segment("Warm. Up.")  # the sentence splitter's first use imports nltk (1.6 s here): a server has done it
    for label, method, params in _runs(args):
        t, cpu = time.perf_counter(), time.process_time()
        # ranked by the target's own estimate or first-order LOO: the target is its own "proxy" (one pass + m)
        proxy = lm if params.get("proxy_stage") in ("estimate", "first-order") else None
        if params.pop("after_generation", False):
            params["kept_pass"] = kept[0]
        r = attribute(context, example["question"], model=lm, method=method, response=response, proxy_model=proxy,
                      **params)
        dt, cpu = time.perf_counter() - t, time.process_time() - cpu
        ranked = r.top_k(len(r.sentences))
        rank = next((i for i, s in enumerate(ranked, 1) if s.text == gold), None)
        lines.append(f"| {label} | {dt:.1f} | {cpu:.1f} | {os.getloadavg()[0]:.1f} | {r.total_forward_passes} "
                     f"| {r.extra.get('tokens_computed', '–')} | {r.extra.get('tokens_reused', '–')} "
                     f"| {rank if rank else 'not scored'} | {ranked[0].text[:60]} |")
        print(lines[-1], flush=True)
    lines.append(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}.")
    print(lines[-1])
    if args.readme and not write_block("long-methods", "\n".join(lines) + "\n"):
        print("README.md has no <!-- bench:long-methods --> markers; not written.", file=sys.stderr)


def _runs(args) -> list[tuple[str, str, dict]]:
    """(label, method, parameters) for each ``--methods`` entry; ``estimate-top5`` is ``pruning`` ranked by
    the target's own one-pass estimate, exact LOO (within the kept sentences) for its top 5: one pass + 6;
    ``estimate-after-generation`` the estimate starting from the keys and values generation left (the app's
    path when it generated the answer: a pass over the response rows only);
    ``first-order-top5`` the same ranked by the target's first-order LOO (a forward and a backward pass + 6);
    ``first-order-qr`` first-order LOO through the rows after the context only (``rows="question and response"``),
    and ``first-order-qr-after-generation`` the same from generation's keys (only those rows run)."""
    runs: list[tuple[str, str, dict]] = []
    for method in args.methods.split(","):
        if method == "tree":
            runs += [(f"tree b={b} k={k}", "tree", {"branching": int(b), "keep_paragraphs": int(k)})
                     for b, k in (c.split(":") for c in args.tree.split(","))]
        elif method == "estimate":
            runs.append(("estimate (one pass)", "estimate", {}))
        elif method == "estimate-after-generation":
            runs.append(("estimate after generating (its keys reused: the response rows only)", "estimate",
                         {"after_generation": True}))
        elif method in ("estimate-top5", "first-order-top5"):
            stage = method.removesuffix("-top5")
            runs.append((f"{stage}-ranked exact top-5 (pruning, proxy_stage={stage}, m=5)", "pruning",
                         {"proxy_stage": stage, "keep_sentences": 5}))
        elif method == "first-order":
            runs.append(("first-order (forward + backward pass)", "first-order", {}))
        elif method == "first-order-qr":
            runs.append(("first-order, question and response rows (a forward pass, their backward)", "first-order",
                         {"rows": "question and response"}))
        elif method == "first-order-qr-after-generation":
            runs.append(("first-order, question and response rows, after generating (its keys reused)",
                         "first-order", {"rows": "question and response", "after_generation": True}))
        else:
            runs.append((f"{method} k={args.keep}", method, {"keep_paragraphs": args.keep}))
    return runs


if __name__ == "__main__":
    main()
