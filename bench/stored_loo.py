"""The evaluation set's stored exact LOO, for the benches that set a one-pass method against it on the same
responses (``estimate_precision.py``, ``first_order_variants.py``): where it is, which model each suite
scores with, its finished rows, the benches' shared arguments, and a mean with its bootstrap interval as table
text. Importing it sets the environment those benches run in (offline Hub, quiet tokenizers, idle OpenMP
threads not spinning), before any model library loads."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval import DEFAULT_DB as DB  # noqa: E402  (bench/eval.py: where its runs are, what each suite scores with)
from eval import REFERENCE  # noqa: E402
from eval import SUITES as EVAL_SUITES  # noqa: E402

from attribot_core.metrics import bootstrap_ci  # noqa: E402
from attribot_core.runs import RunRecord, RunStore  # noqa: E402

SUITES = {name: EVAL_SUITES[name].target for name in ("smollm2", "qwen0.5b")}
"""Suite -> the model its exact LOO was computed with (the suites these benches run by default)."""


def arguments(description: str, out: Path) -> argparse.ArgumentParser:
    """The options every such bench takes: ``--suites``, ``--limit``, ``--threads`` and ``--out``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--suites", default=",".join(SUITES), help="comma-separated: " + ", ".join(SUITES))
    ap.add_argument("--limit", type=int, default=None, help="at most this many examples per suite")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=out)
    return ap


def open_store(threads: int) -> RunStore:
    """Torch on ``threads`` threads and the evaluation store, or exit with one line saying how to get it."""
    import torch

    torch.set_num_threads(threads)
    if not DB.exists():
        sys.exit(f"{DB} is missing: python bench/eval.py --report-only unpacks it from eval.sqlite.gz.")
    return RunStore(DB)


def stored_loo(store: RunStore, suite: str, limit: int | None = None) -> list[RunRecord]:
    """The suite's finished exact-LOO runs (batch ``<suite>/loo``), in example order, the first ``limit``."""
    records = [r for r in store.list(batch=f"{suite}/{REFERENCE}", statuses=["done"], limit=10**6) if r.result]
    return sorted(records, key=lambda r: r.row_id or "")[:limit]


def ci_text(values) -> str:
    """``mean [low, high]``: the mean and its 95 % bootstrap interval, three decimals."""
    ci = bootstrap_ci(values)
    return f"{ci.mean:.3f} [{ci.lo:.3f}, {ci.hi:.3f}]"
