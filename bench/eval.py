"""Faithfulness and speed of AttriBoT's configurations against the target's exact LOO, with baselines.

    python bench/eval.py --quick                 # default model as target and its own proxy, 3 short examples
    python bench/eval.py                         # Qwen2.5-Coder-1.5B target, proxies Qwen 0.5B and SmolLM2
    python bench/eval.py --examples 6 --naive-examples 2 --long-only
    python bench/eval.py --report-only --out bench/results/full   # rebuild tables and plot from saved rows

Rows stream to ``<out>/rows.jsonl`` as they finish (one per example x configuration), so an interrupted
run resumes where it stopped; tables and the plot are always rebuilt from that file. The full run writes
``docs/eval_results.md`` and ``docs/pareto.png``; the quick run writes them into ``<out>`` only.
Definitions of every metric: ``attribot_core/metrics.py``; the harness that runs the configurations:
``bench/harness.py``.
"""

from __future__ import annotations

import argparse
import json
import math
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

from attribot_core.metrics import OUTLIER_Z, pareto_front  # noqa: E402
from bench import harness as ev  # noqa: E402

EVALSET = ROOT / "bench" / "evalset" / "evalset.jsonl"
DOCS = ROOT / "docs"
FULL_TARGET = "qwen2.5-coder-1.5b"
FULL_PROXIES = {"0.5B": "qwen2.5-coder-0.5b", "SmolLM2": "smollm2-135m"}
QUICK_TARGET = "smollm2-135m"
GOAL_STACK_SPEEDUP, GOAL_STACK_OUTLIERS, GOAL_GEN_RATIO = 50.0, 0.8, 10.0


# -- models ------------------------------------------------------------------------------------------
def missing_models(names: list[str]) -> list[str]:
    """Messages for presets whose packages are not installed (empty when all are there)."""
    from attribot_core.models import PRESETS, preset_status

    out = []
    for name in names:
        ok, message = preset_status(PRESETS[name])
        if not ok:
            out.append(f"  - {name}: {message}")
    return out


def load(name: str, dtype: str | None = None):
    """Load a preset (fp32), then cast to ``dtype`` in memory (no second dequantised copy on disk)."""
    import torch

    from attribot_core.models import load_model

    lm = load_model(name)
    if dtype in ("bf16", "bfloat16"):
        lm.model.to(torch.bfloat16)
        lm.dtype = torch.bfloat16
    return lm


# -- data --------------------------------------------------------------------------------------------
def load_examples(args) -> list[dict]:
    if not EVALSET.exists():
        sys.exit(f"The evaluation set is missing: {EVALSET} (generate it with bench/evalset/generate.py).")
    rows = [json.loads(line) for line in EVALSET.read_text().splitlines() if line.strip()]
    if args.ids:
        wanted = args.ids.split(",")
        rows = [r for r in rows if r["id"] in wanted]
    elif args.quick:
        rows = sorted((r for r in rows if not r.get("long")), key=lambda r: len(r["context"]))
    if args.long_only:
        rows = [r for r in rows if r.get("long")]
    elif args.long:  # interleave: the first --long long examples come first, then the short ones
        longs = [r for r in rows if r.get("long")][: args.long]
        rows = longs + [r for r in rows if not r.get("long")]
    return rows[: args.examples] if args.examples else rows


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def append_jsonl(path: Path, row: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(row, default=float) + "\n")


# -- run ---------------------------------------------------------------------------------------------
def run(args, out: Path, command: str) -> None:
    from attribot_core.prompt import Response

    quick = args.quick
    target_name = args.target or (QUICK_TARGET if quick else FULL_TARGET)
    proxy_names = {} if quick else dict(FULL_PROXIES)
    missing = missing_models([target_name, *proxy_names.values()])
    if missing:
        sys.exit("Models needed for this evaluation are not installed:\n" + "\n".join(missing)
                 + "\nInstall them with `make models-qwen` (Qwen) / `make setup` (SmolLM2), or run --quick.")
    examples = load_examples(args)
    print(f"Loading target {target_name} ({args.dtype or 'float32'}) ...", flush=True)
    target = load(target_name, args.dtype)
    proxies = {"self": target} if quick else {}
    for label, name in proxy_names.items():
        print(f"Loading proxy {label} = {name} (float32) ...", flush=True)
        proxies[label] = load(name)
    for lm in {id(m): m for m in (target, *proxies.values())}.values():
        _warm_up(lm)
    configs = ev.quick_configs("self") if quick else ev.standard_configs({k: k for k in proxy_names})
    if args.configs:
        keep = args.configs.split(",")
        configs = [c for c in configs if c.name in ("loo", "loo-naive") or any(k in c.name for k in keep)]
    # a results folder grows over several resumed runs: keep when the first started and every command
    before = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
    meta = {"target": target_name, "dtype": args.dtype or "float32", "proxies": proxy_names, "quick": quick,
            "torch_threads": __import__("torch").get_num_threads(), "cpu": platform.processor() or platform.machine(),
            "started": before.get("started", time.strftime("%Y-%m-%d %H:%M:%S")),
            "runs": [*before.get("runs", []), {"command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                               "load_average_1min": os.getloadavg()[0]}]}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    done = {(r["example"], r["config"]) for r in read_jsonl(out / "rows.jsonl")}
    setups = {s["id"]: s for s in read_jsonl(out / "setups.jsonl")}
    longs = [e["id"] for e in examples if e.get("long")][: args.naive_long]
    shorts = [e["id"] for e in examples if not e.get("long")][: max(0, args.naive_examples - len(longs))]
    naive_ids = set(longs + shorts) if not quick else {e["id"] for e in examples}
    for n, example in enumerate(examples, 1):
        eid = example["id"]
        t0 = time.perf_counter()
        if eid in setups:
            s = dict(setups[eid])
            r = s.pop("response")
            s["response"] = Response(r["text"], tuple(r["token_ids"]) or None, r["tokenizer_id"], r["complete"])
            setup = ev.ExampleSetup(context=example["context"], **s)
        else:
            setup = ev.prepare_example(example, target, max_new_tokens=args.max_new_tokens)
            append_jsonl(out / "setups.jsonl", ev.setup_dict(setup))
        print(f"[{n}/{len(examples)}] {eid} long={setup.long} sentences={setup.n_sentences} "
              f"prompt={setup.prompt_tokens} tok, response={setup.response.text!r} "
              f"(generate {setup.generate_s:.1f}s, one pass {setup.full_pass_s:.1f}s)", flush=True)
        # the reference first, then the cheapest configurations, so that a run stopped early still covers
        # every family; the measured naive LOO last (until it is there, speed-ups use the estimate)
        order = [] if args.cost_only else [c for c in configs if c.name == "loo"]
        order += sorted((c for c in configs if c.family != "exact"), key=_expected_cost)
        if eid in naive_ids and not args.cost_only:
            order += [c for c in configs if c.name == "loo-naive"]
        for config in order:
            if (eid, config.name) in done:
                continue
            row = ev.run_config(setup, config, target, proxies)
            append_jsonl(out / "rows.jsonl", row)
            print(f"    {config.name:32s} {row.get('wall_s', float('nan')):8.1f}s  "
                  f"passes T={row.get('passes_target', '-')} P={row.get('passes_proxy', '-')}"
                  + (f"  ERROR {row['error']}" if "error" in row else ""), flush=True)
        print(f"    example done in {time.perf_counter() - t0:.0f}s; process peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f} GB", flush=True)
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    meta["runs"][-1]["finished"] = meta["finished"]
    meta["process_peak_rss_gb"] = max(before.get("process_peak_rss_gb", 0.0),
                                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
    (out / "meta.json").write_text(json.dumps(meta, indent=2))


def _warm_up(lm) -> None:
    """One tiny forward pass, so that weights are paged in before memory is measured per configuration."""
    import torch

    with torch.inference_mode():
        lm.model(input_ids=torch.tensor([[lm.tokenizer.eos_token_id or 0] * 4], device=lm.device))


def _expected_cost(config: ev.Config) -> int:
    """A rough rank of how many target passes a configuration needs (to run cheap ones first)."""
    rank = {"attention": 0, "pruning": 1, "proxy": 2, "hierarchical": 3}.get(config.method, 4)
    if config.method == "surrogate" and config.params.get("n_ablations", 0) <= 16:
        rank = 2  # the cheapest surrogate before hierarchical, so both baselines are covered early
    return rank * 1000 + int(config.params.get("n_ablations", 0)) + (config.proxy == "0.5B") \
        - 10 * int("keep_paragraphs" in config.params)


# -- report ------------------------------------------------------------------------------------------
def scored_rows(out: Path) -> tuple[list[dict], dict[str, dict]]:
    """Rows with metrics, computed against each example's saved reference LOO and naive time."""
    raw = read_jsonl(out / "rows.jsonl")
    setups = {s["id"]: s for s in read_jsonl(out / "setups.jsonl")}
    rows = []
    for eid, s in setups.items():
        mine = [dict(r) for r in raw if r["example"] == eid]
        ref = next((r for r in mine if r["config"] == "loo" and "scores" in r), None)
        # without the reference (a --cost-only run) only cost and gold recall are meaningful
        reference = ref["scores"] if ref else [None] * s["n_sentences"]
        naive = next((r["wall_s"] for r in mine if r["config"] == "loo-naive" and "wall_s" in r), None)
        setup = ev.ExampleSetup(context="", **{**s, "response": None})
        rows += [{**ev.score_row(r, reference, setup, naive), "has_reference": ref is not None} for r in mine]
    return rows, setups


def _fmt(x, digits=2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def table(aggs: list[dict]) -> str:
    head = ("| configuration | family | n | Spearman | Pearson | top-1 | top-3 | outlier recall | gold@1 | gold@3 "
            "| target-eq. passes | wall s | speed-up vs naive | gen / attr | peak RSS GB |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for a in aggs:
        lines.append(
            f"| {a['config']} | {a['family']} | {a['n_examples']} "
            f"| {_fmt(a['spearman'])} ± {_fmt(a['spearman_std'])} | {_fmt(a['pearson'])} ± {_fmt(a['pearson_std'])} "
            f"| {_fmt(a['top1'])} | {_fmt(a['top3'])} | {_fmt(a['outlier_recall'])} "
            f"| {_fmt(a['gold@1'])} | {_fmt(a['gold@3'])} | {_fmt(a['target_equiv_passes'], 1)} "
            f"| {_fmt(a['wall_s'], 1)} | {_fmt(a['speedup'], 1)}x | {_fmt(a['gen_over_attr'], 2)} "
            f"| {_fmt(a['peak_rss_gb'], 1)} |")
    return "\n".join(lines)


def goals(rows: list[dict], aggs: list[dict], long_aggs: list[dict]) -> list[str]:
    """The issue's goals, checked on the measured numbers."""
    notes = []
    stacks = [a for a in (long_aggs or aggs) if a["config"].startswith("full stack")]
    where = "long contexts" if long_aggs else "all examples (no long example was run)"
    for a in stacks:
        fast = a["speedup"] >= GOAL_STACK_SPEEDUP
        found = a["outlier_recall"] >= GOAL_STACK_OUTLIERS
        found_text = ("not measured (no exact LOO reference there)" if a["n_outlier_recall"] == 0
                      else "met" if found else "missed")
        short = "met" if fast else f"missed by {GOAL_STACK_SPEEDUP / a['speedup']:.1f}x"
        notes.append(f"- **{a['config']}** on {where}: {a['speedup']:.1f}x faster than naive LOO (goal ≥ "
                     f"{GOAL_STACK_SPEEDUP:.0f}x: {short}), "
                     f"outlier recall {_fmt(a['outlier_recall'])} over {a['n_outlier_recall']} example(s) (goal ≥ "
                     f"{GOAL_STACK_OUTLIERS}: {found_text}); it spends "
                     f"{_fmt(a['passes_target'], 1)} target and {_fmt(a['passes_proxy'], 1)} proxy passes.")
    front = [aggs[i]["config"] for i in pareto_front(aggs, "speedup", "spearman")]
    base = [a for a in aggs if a["family"] == "baseline"]
    attri = [a for a in aggs if a["family"] == "attribot"]
    for b in base:
        dom = [a["config"] for a in attri if a["speedup"] >= b["speedup"] and a["spearman"] >= b["spearman"]]
        notes.append(f"- Baseline **{b['config']}** (Spearman {_fmt(b['spearman'])}, {b['speedup']:.1f}x): "
                     + (f"dominated by {', '.join(dom)}." if dom else "not dominated by any AttriBoT configuration."))
    notes.append(f"- Pareto front (speed-up, Spearman): {', '.join(front)}.")
    below = [a["config"] for a in attri if any(
        b["speedup"] >= a["speedup"] and b["spearman"] > a["spearman"] for b in base)]
    notes.append("- AttriBoT configurations beaten in faithfulness by an equally fast or faster baseline: "
                 + (", ".join(below) if below else "none") + ".")
    fastest = max(attri, key=lambda a: a["gen_over_attr"], default=None)  # the best case, whatever it is
    for a in aggs:
        if a["config"].startswith("full stack") or a["config"] == "loo" or a is fastest:
            ratio = a["gen_over_attr"]
            verdict = "met" if ratio >= GOAL_GEN_RATIO else f"missed by {GOAL_GEN_RATIO / ratio:.0f}x"
            notes.append(f"- Generation / attribution time with **{a['config']}**: {_fmt(ratio)} "
                         f"(goal ≥ {GOAL_GEN_RATIO:.0f}, i.e. attribution 10x faster than generating): {verdict}.")
    return notes


def pareto_png(aggs: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"exact": "#636efa", "attribot": "#00a36c", "baseline": "#ef553b"}
    # Pearson is left out: one dominant sentence puts every method near 1.0 (it is in the tables)
    metrics = ("spearman", "top3", "outlier_recall")
    fig, axes = plt.subplots(1, len(metrics), figsize=(19, 6.5))
    for n, (ax, metric) in enumerate(zip(axes, metrics, strict=True)):
        pts = [a for a in aggs if a["speedup"] > 0 and not math.isnan(a.get(metric, float("nan")))]
        if not pts:  # e.g. no example had an outlier: nothing to plot, and a log axis needs data
            ax.text(0.5, 0.5, f"no {metric} measured", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        for fam in dict.fromkeys(a["family"] for a in pts):
            fam_pts = [a for a in pts if a["family"] == fam]
            ax.errorbar([a["speedup"] for a in fam_pts], [a[metric] for a in fam_pts],
                        yerr=[a.get(f"{metric}_std", 0) for a in fam_pts], fmt="o", color=colors.get(fam),
                        label=fam, capsize=2, alpha=0.85)
        front = [pts[i] for i in pareto_front(pts, "speedup", metric)]
        for a in pts if n == 0 else front:  # every name once, then only the front (points pile up at 1.0)
            ax.annotate(a["config"], (a["speedup"], a[metric]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.plot([a["speedup"] for a in front], [a[metric] for a in front], "--", color="gray", label="Pareto front")
        ax.set_ylim(-1.05 if metric == "spearman" else -0.05, 1.05)
        ax.set_xscale("log")
        ax.set_xlabel("speed-up vs the target's naive LOO (log scale)")
        ax.set_ylabel(f"{metric} vs exact LOO of the target")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(out: Path, docs: Path | None, command: str) -> str:
    meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
    rows, setups = scored_rows(out)
    if not rows:
        sys.exit(f"No finished example in {out}: nothing to report.")
    aggs = ev.aggregate(rows, where=lambda r: r["has_reference"])
    long_aggs = ev.aggregate(rows, where=lambda r: r["long"])
    with_ref = {r["example"] for r in rows if r["has_reference"]}
    naive_measured = sorted({r["example"] for r in rows if r["config"] == "loo-naive" and "wall_s" in r})
    n_long = sum(1 for s in setups.values() if s["long"] and s["id"] in {r["example"] for r in rows})
    (out / "results.json").write_text(json.dumps({"meta": meta, "aggregate": aggs, "aggregate_long": long_aggs,
                                                  "rows": rows}, indent=1, default=float))
    proxies = ", ".join(f"{k} = {v}" for k, v in meta.get("proxies", {}).items()) or "the target itself"
    ex_lines = [f"| {s['id']} | {'yes' if s['long'] else 'no'} | {s['n_paragraphs']} | {s['n_sentences']} "
                f"| {s['prompt_tokens']} | {s['response_tokens']} | {json.dumps(s['response']['text'])} "
                f"| {_fmt(s['generate_s'], 1)} | {_fmt(s['full_pass_s'], 1)} "
                f"| {'measured' if s['id'] in naive_measured else 'estimated'} "
                f"| {'exact LOO' if s['id'] in with_ref else 'none (cost only)'} |"
                for s in setups.values() if s["id"] in {r["example"] for r in rows}]
    checks = [r for r in rows if r["config"] == "loo-naive" and "wall_s" in r]
    est = "; ".join(f"{r['example']}: measured {r['wall_s']:.0f}s vs estimated "
                    f"{setups[r['example']]['naive_estimate_s']:.0f}s" for r in checks)
    md = [
        "# Faithfulness and speed evaluation",
        "",
        f"Target **{meta.get('target')}** ({meta.get('dtype')}), proxies: {proxies}. "
        f"{len(setups)} examples ({n_long} long, ≥1,500 tokens) from `bench/evalset/evalset.jsonl`; "
        f"CPU, {meta.get('torch_threads')} torch threads. Run {meta.get('started')} – "
        f"{meta.get('finished', 'unfinished')}; process peak RSS {_fmt(meta.get('process_peak_rss_gb'), 1)} GB.",
        "",
        f"Produced by `{command}` from the rows of these runs (1-minute load average at each start):",
        "",
        *(f"    {r['command']}    # {r['started']}, load {r['load_average_1min']:.1f}" for r in meta.get("runs", [])),
        "",
        "**Reference**: exact cached LOO of the target over sentences (`loo`). **Outliers**: sentences whose exact "
        f"LOO ≥ mean + {OUTLIER_Z:g} std over the example's sentences; recovered when inside the configuration's "
        "top-|outliers|. **Gold recall@k** = |gold ∩ top-k| / min(k, |gold|). **Target-equivalent passes**: target "
        "passes + proxy passes x (proxy parameters / target parameters). **Speed-up**: the target's naive LOO time on "
        "the same example / the configuration's wall time (geometric mean over examples); naive LOO was measured on "
        f"{', '.join(naive_measured) or 'no example'} and estimated elsewhere from one timed full pass x the summed "
        f"token length of the ablated prompts ({est or 'no check'}). **gen / attr**: time for the target to "
        "generate the response / attribution time (> 1 = attribution is faster). Faithfulness: mean ± std over "
        "examples.",
        "",
        "## Examples with the exact LOO reference",
        "",
        table(aggs),
        "",
    ]
    if long_aggs:
        md += ["## Long contexts only", "", "Faithfulness is “–” where no exact LOO reference was computed "
               "(a `--cost-only` run); speed-ups there are against the estimated naive LOO.", "",
               table(long_aggs), ""]
    notes = DOCS / "eval_notes.md"
    md += ["## Goals", "", *goals(rows, aggs, long_aggs), ""]
    if not meta.get("quick") and notes.exists():
        md += [notes.read_text().strip(), ""]
    md += [
           "## Examples", "",
           "| id | long | paragraphs | sentences | prompt tokens | response tokens | response | generate s "
           "| one pass s | naive LOO | reference |",
           "|---|---|---|---|---|---|---|---|---|---|---|", *ex_lines, ""]
    text = "\n".join(md)
    (out / "results.md").write_text(text)
    title = (f"{meta.get('target')} ({meta.get('dtype')}): speed-up vs faithfulness to its exact LOO, "
             f"{len(with_ref)} example(s)")
    pareto_png(aggs, out / "pareto.png", title)
    if docs is not None:
        docs.mkdir(parents=True, exist_ok=True)
        (docs / "eval_results.md").write_text(text)
        pareto_png(aggs, docs / "pareto.png", title)
    if docs is not None and docs.resolve() == DOCS.resolve():
        from readme_block import write_block

        long_part = ["", "Long contexts (≥1,500 tokens) only:", "", table(long_aggs)] if long_aggs else []
        write_block("eval", "\n".join([
            f"Target {meta.get('target')} ({meta.get('dtype')}), {len(with_ref)} example(s) with the exact LOO "
            f"reference ({n_long} long); naive LOO measured on {', '.join(naive_measured) or 'none'}. "
            "Definitions, every run's command and the per-example facts: "
            "[docs/eval_results.md](docs/eval_results.md).", "", table(aggs), *long_part, "",
            *goals(rows, aggs, long_aggs), "", "![Pareto plot](docs/pareto.png)"]))
    print(table(aggs))
    if long_aggs:
        print("\nLong contexts only:\n" + table(long_aggs))
    print("\n" + "\n".join(goals(rows, aggs, long_aggs)))
    return text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="default model alone (target = proxy), small config set")
    p.add_argument("--examples", type=int, default=None, help="number of examples (quick: 3)")
    p.add_argument("--long-only", action="store_true", help="only the long (≥1,500-token) contexts")
    p.add_argument("--long", type=int, default=0, help="put this many long examples first")
    p.add_argument("--ids", default="", help="comma-separated example ids")
    p.add_argument("--naive-examples", type=int, default=3, help="measure naive LOO on this many examples")
    p.add_argument("--naive-long", type=int, default=2, help="... of which this many long ones")
    p.add_argument("--configs", default="", help="comma-separated substrings of configurations to run")
    p.add_argument("--target", default=None, help="override the target preset")
    p.add_argument("--dtype", default=None, help="target dtype: float32 (default) or bf16")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--out", default=None, help="results folder (default bench/results/quick or full)")
    p.add_argument("--docs", default=None, help="where to write eval_results.md and pareto.png "
                   "(default docs/ for the full run, the results folder only for --quick)")
    p.add_argument("--cost-only", action="store_true", help="skip the reference LOO (and naive LOO): cost and "
                   "speed-up against the estimated naive time only, no faithfulness")
    p.add_argument("--report-only", action="store_true", help="rebuild tables and plots from saved rows")
    args = p.parse_args(argv)
    if args.quick and args.examples is None:
        args.examples = 3
    out = Path(args.out or ROOT / "bench" / "results" / ("quick" if args.quick else "full"))
    out.mkdir(parents=True, exist_ok=True)
    docs = Path(args.docs) if args.docs else (None if args.quick else DOCS)
    command = "python bench/eval.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if not args.report_only:
        run(args, out, command.strip())
    report(out, docs, command.strip())


if __name__ == "__main__":
    main()
