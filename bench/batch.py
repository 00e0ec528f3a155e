"""Batch throughput: the local executor (one process, 2 threads) vs Ray (2 actors of 1 thread each).

On the evaluation set's short examples with SmolLM2-135M, every row generating
its response and then attributing it. Prints a table of rows per hour, the driver's store overhead
per row (ms spent in store calls, timed around each call), peak memory (this process and all its
children: Ray's daemons and actors included), and how far Ray's scores are from the local ones.
Ratios come from this one run; the machine's load average is printed with them (it is shared).

    python bench/batch.py                    # 8 rows, method loo; writes the README block
    python bench/batch.py --rows 12 --method hierarchical --keep-paragraphs 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribot_core.runs import RunStore  # noqa: E402
from attribot_core.runs.backends import LocalBackend  # noqa: E402
from attribot_core.runs.batch import BatchSettings, run_batch  # noqa: E402
from attribot_core.runs.inputs import rows_from_records  # noqa: E402


class PeakRss(threading.Thread):
    """Peak resident memory of this process plus all its children (sampled every 0.2 s), in MB."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        import psutil

        self.me, self.peak, self.stop = psutil.Process(), 0, threading.Event()

    def run(self) -> None:
        import psutil

        while not self.stop.wait(0.2):
            total = 0
            for p in [self.me, *self.me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a child that just ended
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)

    def __enter__(self) -> PeakRss:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.join()

    @property
    def mb(self) -> float:
        return self.peak / 2**20


def load_rows(n: int) -> list[dict]:
    examples = [json.loads(line) for line in (ROOT / "bench/evalset/evalset.jsonl").open(encoding="utf-8")]
    short = [e for e in examples if not e["long"]][:n]
    return [{"id": e["id"], "context": e["context"], "question": e["question"], "gold": e["gold_sentences"]}
            for e in short]


def measure(label: str, rows, settings: BatchSettings, backend) -> dict:
    """One executor on its own fresh database (a shared one would hand it the other's generated responses)."""
    store = RunStore(Path(tempfile.mkdtemp(prefix="attribot-bench-")) / "runs.sqlite3")
    load = os.getloadavg()[0]
    with PeakRss() as rss:
        t = time.perf_counter()
        backend.prepare(settings.models())  # models loaded (in every actor) before the clock starts
        warm_s = time.perf_counter() - t
        summary = run_batch(store, label, rows, settings, backend)
    assert summary.done == len(rows), f"{label}: {summary.line}"
    print(f"  {label}: {summary.line} (models ready after {warm_s:.1f} s)", file=sys.stderr, flush=True)
    return {"label": label, "summary": summary, "store": store, "rows_per_hour": 3600 * summary.done / summary.seconds,
            "s_per_row": summary.seconds / summary.done, "store_ms": 1000 * summary.store_s / summary.rows,
            "store_calls": summary.store_calls / summary.rows, "peak_mb": rss.mb, "warm_s": warm_s,
            "load_before": load, "load_after": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=8, help="short eval-set examples to attribute")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--method", default="loo")
    ap.add_argument("--keep-paragraphs", type=int, default=None)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench_batch.md"))
    args = ap.parse_args()

    import ray
    import torch

    from attribot_core.runs.backends import RayBackend

    params = (("keep_paragraphs", args.keep_paragraphs),) if args.keep_paragraphs else ()
    settings = BatchSettings(args.model, args.method, params, max_new_tokens=args.max_new_tokens)
    rows = rows_from_records(load_rows(args.rows))
    print(f"{len(rows)} rows, {args.method} on {args.model}", file=sys.stderr)

    local = measure("local (1 process, 2 threads)", rows, settings, LocalBackend(threads=2))
    with RayBackend(workers=2, threads=1, num_cpus=2) as backend:
        threads = sorted(i["threads"] for i in backend.info())
        remote = measure("Ray (2 actors x 1 thread)", rows, settings, backend)

    by_row = {r.row_id: r.result for r in local["store"].list(batch=local["label"], limit=10**6)}
    ray_runs = remote["store"].list(batch=remote["label"], limit=10**6)
    diffs = [abs(a - b) for r in ray_runs for a, b in zip(r.result.scores(), by_row[r.row_id].scores(), strict=True)
             if a is not None and b is not None]
    same_response = sum(r.result.response == by_row[r.row_id].response for r in ray_runs)

    lines = [
        f"{len(rows)} short eval-set examples (`bench/evalset/`, {rows[0].row_id}…{rows[-1].row_id}), method "
        f"`{args.method}`{' k=' + str(args.keep_paragraphs) if args.keep_paragraphs else ''} on `{args.model}`, "
        f"each row generating its response (up to {args.max_new_tokens} tokens) then attributing it. Machine: "
        f"{platform.machine()}, {os.cpu_count()} cores (shared), torch {torch.__version__}, Ray {ray.__version__}.",
        "",
        "| executor | rows/hour | s/row | speed-up | store overhead (ms/row) | store calls/row | peak RSS (MB) "
        "| load avg before → after |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in (local, remote):
        lines.append(f"| {m['label']} | {m['rows_per_hour']:.0f} | {m['s_per_row']:.1f} "
                     f"| {m['rows_per_hour'] / local['rows_per_hour']:.2f}x | {m['store_ms']:.1f} "
                     f"| {m['store_calls']:.1f} | {m['peak_mb']:.0f} "
                     f"| {m['load_before']:.1f} → {m['load_after']:.1f} |")
    lines += [
        "",
        f"Ray actors ran with torch threads {threads}. Same responses on {same_response} of {len(rows)} rows; "
        f"largest |Ray − local| sentence score {max(diffs, default=0.0):.1e} nats"
        + (" (bitwise equal). " if max(diffs, default=0.0) == 0 else
           " (1 vs 2 torch threads can sum in a different order; with equal thread counts the scores are "
           "bitwise equal, see tests/runs/test_ray.py). ") +
        "Peak RSS counts this process and all its children (Ray's own daemons and both actors, each holding its "
        "own copy of the model). Times exclude loading the models (done first, in every actor); each executor "
        "has its own fresh database. Store overhead is the driver's time in store calls per row (create, claim, "
        "start, finish, keeping the generated response, and the batch's few set-up queries spread over its rows).",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("## Batch benchmark (`python bench/batch.py`)\n\n" + text + "\n", encoding="utf-8")
    if Path(args.out).resolve() == (ROOT / "docs" / "bench_batch.md").resolve():
        from readme_block import write_block

        write_block("batch", text)


if __name__ == "__main__":
    main()
