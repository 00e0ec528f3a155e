"""Which setup should a newcomer meet? Answers right, gold sentence first, first score on screen.

    python bench/default_model.py [--setups smollm2,qwen,qwen+smollm2,qwen1.5b+smollm2] [--short 10] [--readme]

Setups (the app's own defaults otherwise: exact ``loo``, 64 new tokens, greedy):

* ``smollm2``: SmolLM2-135M alone (today's default);
* ``qwen``: Qwen2.5-Coder-0.5B alone (``make models-qwen``);
* ``qwen+smollm2``: the 0.5B as target with SmolLM2 as proxy, ``pruning`` (full stack:
  ``keep_paragraphs=2``, ``keep_sentences=3``);
* ``qwen1.5b+smollm2``: the same stack with Qwen2.5-Coder-1.5B as target (``make models-qwen``): does a
  larger model answer right often enough to be worth its cost?

Examples: the built-in ones (``attribot_core/examples.py``) and the ``--short`` shortest of the
evaluation set (``bench/evalset/evalset.jsonl``). Per setup and example the target generates its answer
(right: an accepted answer in the response, the rule of :class:`attribot_core.examples.Known`) and the
method attributes it (gold first: the top-ranked sentence is a gold one, the rule of
:func:`attribot_core.examples.known_for`). On the built-in examples a second run on a fixed response
(the accepted answer) times Run to the first scored span: the engine's progress callback, the model
already loaded (the app keeps it), so it is the engine's part of "first score on screen"; the app adds
its polling (``bench/app_latency.py`` measures that in a browser).

A second table reads the evaluation store instead (``bench/eval.py``'s runs: the same greedy 64-token
answer per target, made once per example and shared by its configurations), so the three setups the
store holds are judged on every short example of the set, and on the long ones apart, with nothing run
here: ``--evalstore``, on by default when the store is there.

Every (setup, example) row is appended to ``--cache`` (JSON lines) as it finishes, so an interrupted run
resumes where it stopped and the table can be printed from what is there (``--table-only``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribot_core import attribute, load_model  # noqa: E402
from attribot_core.examples import EXAMPLES, Known, known_for  # noqa: E402
from attribot_core.runs import RunStore  # noqa: E402
from attribot_core.runs.dataset import row_metrics  # noqa: E402
from bench.eval import DEFAULT_DB, EVALSET, KEPT_DB, unpack  # noqa: E402
from bench.readme_block import write_block  # noqa: E402

SETUPS: dict[str, dict] = {
    "smollm2": {"model": "smollm2-135m", "method": "loo", "params": {}},
    "qwen": {"model": "qwen2.5-coder-0.5b", "method": "loo", "params": {}},
    "qwen+smollm2": {"model": "qwen2.5-coder-0.5b", "proxy": "smollm2-135m", "method": "pruning",
                     "params": {"keep_paragraphs": 2, "keep_sentences": 3}},
    "qwen1.5b+smollm2": {"model": "qwen2.5-coder-1.5b", "proxy": "smollm2-135m", "method": "pruning",
                         "params": {"keep_paragraphs": 2, "keep_sentences": 3}},
}
MAX_NEW_TOKENS = 64  # the app's default (studio/state.py), and the evaluation's (bench/eval.py)
EVAL_BATCHES = {  # setup -> the evaluation store's batch that ran it (bench/eval.py's suites)
    "smollm2": "smollm2/loo",
    "qwen": "qwen0.5b/loo",
    "qwen+smollm2": "qwen0.5b/full stack k=2 m=3 (SmolLM2)",
}
RUN = time.strftime("%Y-%m-%dT%H:%M", time.gmtime())
"""This invocation, stored with each row: first scores are compared with SmolLM2's only within one invocation
(the same machine load); the rows of the first three setups, measured together, have none."""


def read_evalset() -> list[dict]:
    return [json.loads(line) for line in EVALSET.open(encoding="utf-8") if line.strip()]


def load_examples(n_short: int) -> list[dict]:
    """Built-in examples first, then the ``n_short`` shortest evaluation-set examples (by context length)."""
    rows = [{"id": e.key, "source": "built-in", "context": e.context, "question": e.question,
             "gold": list(e.evidence), "answers": list(e.answers)} for e in EXAMPLES]
    for e in sorted(read_evalset(), key=lambda e: (len(e["context"]), e["id"]))[:n_short]:
        rows.append({"id": e["id"], "source": "evalset", "context": e["context"], "question": e["question"],
                     "gold": list(e["gold_sentences"]), "answers": [e["answer"]]})
    return rows


def run_one(setup: str, example: dict, models: dict) -> dict:
    """Generate, attribute, judge; on a built-in example also time Run → first scored span (fixed response)."""
    spec = SETUPS[setup]
    target = models[spec["model"]]
    proxy = models.get(spec.get("proxy"))
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    r = attribute(example["context"], example["question"], model=target, proxy_model=proxy,
                  method=spec["method"], max_new_tokens=MAX_NEW_TOKENS, **spec["params"])
    total_s = time.perf_counter() - t
    labelled = dataclasses.replace(r, extra={**r.extra, "gold_evidence": example["gold"],
                                             "gold_answers": example["answers"]})
    known = known_for(labelled)
    row = {"setup": setup, "id": example["id"], "source": example["source"], "response": r.response,
           "answer_right": known.response_has_answer(r.response),
           "gold_first": r.top_k(1)[0].index in known.evidence, "seconds": total_s,
           "generate_s": r.timings.get("generate_s", 0.0), "passes": r.total_forward_passes,
           "load": [load_before, os.getloadavg()[0]], "run": RUN}
    if example["source"] == "built-in":
        first: list[float] = []
        t = time.perf_counter()

        def progress(done: int, total: int, what: str) -> None:
            if done > 0 and not first:
                first.append(time.perf_counter() - t)

        attribute(example["context"], example["question"], model=target, proxy_model=proxy,
                  method=spec["method"], response=f"{example['answers'][0]}.", progress=progress,
                  **spec["params"])
        row["first_score_s"] = first[0] if first else None
        row["fixed_total_s"] = time.perf_counter() - t
    return row


def table(rows: list[dict], n_examples: int) -> str:
    """Markdown: one line per setup, with how many examples it covers (a run may have been cut short)."""
    lines = [f"| setup | examples done (of {n_examples}) | answers right | gold sentence first | first score, "
             "built-in, fixed response (s, max) | first score ÷ SmolLM2's, same example, same run (median) "
             "| attribution per example (s, median, incl. generation) | load avg |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = {(r["id"], r.get("run")): r["first_score_s"] for r in rows
            if r["setup"] == "smollm2" and r.get("first_score_s")}
    for setup in SETUPS:
        mine = [r for r in rows if r["setup"] == setup]
        if not mine:
            lines.append(f"| {describe(setup)} | 0 | not measured | | | | | |")
            continue
        right = sum(r["answer_right"] for r in mine)
        gold = sum(r["gold_first"] for r in mine)
        firsts = [r["first_score_s"] for r in mine if r.get("first_score_s") is not None]
        first = f"{max(firsts):.1f} ({len(firsts)} examples)" if firsts else "not measured"
        ratios = sorted(r["first_score_s"] / base[r["id"], r.get("run")] for r in mine
                        if r.get("first_score_s") and (r["id"], r.get("run")) in base)
        ratio = f"{ratios[len(ratios) // 2]:.2f}x" if ratios else "–"
        secs = sorted(r["seconds"] for r in mine)
        loads = [x for r in mine for x in r["load"]]
        lines.append(f"| {describe(setup)} | {len(mine)} | {right}/{len(mine)} ({100 * right / len(mine):.0f}%) "
                     f"| {gold}/{len(mine)} ({100 * gold / len(mine):.0f}%) | {first} | {ratio} "
                     f"| {secs[len(secs) // 2]:.0f} | {min(loads):.1f}–{max(loads):.1f} |")
    return "\n".join(lines)


def describe(setup: str) -> str:
    spec = SETUPS[setup]
    params = ", ".join(f"{k}={v}" for k, v in spec["params"].items())
    proxy = f" + proxy {spec['proxy']}" if spec.get("proxy") else ""
    return f"{spec['model']}{proxy}, {spec['method']}" + (f" ({params})" if params else "")


def per_example(rows: list[dict]) -> str:
    """One line per example: which setups answered right / put gold first (R = right, G = gold first)."""
    ids = list(dict.fromkeys(r["id"] for r in rows))
    head = "| example | " + " | ".join(SETUPS) + " |"
    lines = [head, "|---|" + "---|" * len(SETUPS)]
    for i in ids:
        cells = []
        for setup in SETUPS:
            r = next((r for r in rows if r["id"] == i and r["setup"] == setup), None)
            cells.append("" if r is None else ("R" if r["answer_right"] else "-") + ("G" if r["gold_first"] else "-"))
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evalstore_rows(db: Path) -> list[dict]:
    """Rows judged from the evaluation store: per setup of ``EVAL_BATCHES`` and finished example, whether
    the target's answer holds the set's answer and whether the method's top sentence is a gold one (the
    same rules as :func:`run_one`'s)."""
    evalset = {e["id"]: e for e in read_evalset()}
    store = RunStore(db)
    rows = []
    for setup, batch in EVAL_BATCHES.items():
        for record in store.list(batch=batch, statuses=("done",), limit=1_000_000):
            example, result = evalset.get(record.row_id or ""), record.result
            if example is None or result is None:
                continue
            known = Known((), (example["answer"],), "evaluation set")
            rows.append({"setup": setup, "id": example["id"], "long": bool(example.get("long")),
                         "answer_right": known.response_has_answer(result.response),
                         "gold_first": bool(row_metrics(result, example["gold_sentences"])["gold_hit"])})
    return rows


def evalstore_table(rows: list[dict], n_short: int, n_long: int) -> str:
    """Markdown: per setup, answers right and gold first on the short examples, and apart on the long ones."""
    lines = [f"| setup | short examples done (of {n_short}) | answers right | gold sentence first "
             f"| long examples done (of {n_long}) | answers right | gold sentence first |",
             "|---|---:|---:|---:|---:|---:|---:|"]

    def cells(mine: list[dict]) -> str:
        if not mine:
            return "0 | | "
        right, gold = sum(r["answer_right"] for r in mine), sum(r["gold_first"] for r in mine)
        return (f"{len(mine)} | {right}/{len(mine)} ({100 * right / len(mine):.0f}%) "
                f"| {gold}/{len(mine)} ({100 * gold / len(mine):.0f}%)")

    for setup in EVAL_BATCHES:
        mine = [r for r in rows if r["setup"] == setup]
        lines.append(f"| {describe(setup)} | {cells([r for r in mine if not r['long']])} "
                     f"| {cells([r for r in mine if r['long']])} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, of {', '.join(SETUPS)}")
    ap.add_argument("--short", type=int, default=10, help="the shortest evaluation-set examples to add")
    ap.add_argument("--cache", type=Path, default=ROOT / "bench/results/default_model.jsonl")
    ap.add_argument("--table-only", action="store_true", help="print the table from --cache, run nothing")
    ap.add_argument("--readme", action="store_true", help="write the table into README.md (bench:default)")
    ap.add_argument("--evalstore", type=Path, default=DEFAULT_DB,
                    help="the evaluation store to judge the whole set from (the committed one is unpacked "
                         "first, as bench/eval.py does); skipped when missing")
    args = ap.parse_args()

    examples = load_examples(args.short)
    setups = [s.strip() for s in args.setups.split(",") if s.strip()]
    rows = [json.loads(line) for line in args.cache.open(encoding="utf-8")] if args.cache.exists() else []
    done = {(r["setup"], r["id"]) for r in rows}
    if not args.table_only:
        models: dict = {}
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        for example in examples:  # example-major: every setup gets the same examples when cut short
            for setup in setups:
                if (setup, example["id"]) in done:
                    continue
                spec = SETUPS[setup]
                for name in filter(None, (spec["model"], spec.get("proxy"))):
                    if name not in models:
                        models[name] = load_model(name)
                row = run_one(setup, example, models)
                rows.append(row)
                with args.cache.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{setup:>13} {example['id']:>12}: right={row['answer_right']} gold_first={row['gold_first']} "
                      f"{row['seconds']:.0f} s first={row.get('first_score_s')} {row['response'][:60]!r}",
                      flush=True)
    ids = {e["id"] for e in examples}
    rows = [r for r in rows if r["id"] in ids and r["setup"] in setups]
    text = (f"{len(examples)} examples: the {len(EXAMPLES)} built-in ones and the {args.short} shortest of the "
            f"evaluation set; {os.cpu_count()} cores (the load average of each row's runs in the table: above the "
            "core count, the machine was shared), float32.\n\n" + table(rows, len(examples))
            + "\n\nPer example (R: answer right, G: gold sentence ranked first; empty: not run):\n\n"
            + per_example(rows))
    if args.evalstore.resolve() == DEFAULT_DB and not DEFAULT_DB.exists() and KEPT_DB.exists():
        unpack(KEPT_DB, DEFAULT_DB)
    if args.evalstore.exists():
        evalset = read_evalset()
        n_long = sum(bool(e.get("long")) for e in evalset)
        text += ("\n\nThe whole evaluation set, judged from the evaluation store (`bench/eval.py`'s answers and "
                 "attributions; nothing run here):\n\n"
                 + evalstore_table(evalstore_rows(args.evalstore), len(evalset) - n_long, n_long))
    print(text)
    if args.readme and not write_block("default", text):
        print("README.md has no <!-- bench:default --> markers; not written.", file=sys.stderr)


if __name__ == "__main__":
    main()
