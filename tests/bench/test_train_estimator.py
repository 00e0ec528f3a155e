"""bench/train_estimator.py: the generated training examples, short or long, never the evaluation set's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import train_estimator  # noqa: E402


def test_training_rows_are_short_or_long_as_asked_and_share_nothing_with_the_evaluation_set():
    held = [json.loads(line) for line in (ROOT / "bench/evalset/evalset.jsonl").read_text().splitlines() if line]
    contexts, questions = {e["context"] for e in held}, {e["question"] for e in held}
    short = train_estimator.training_rows((1001,))
    long = train_estimator.training_rows((1001,), long=True)
    assert short and long and not {r["id"] for r in short} & {r["id"] for r in long}
    assert min(len(r["context"]) for r in long) > max(len(r["context"]) for r in short)
    for row in short + long:
        assert row["context"] not in contexts and row["question"] not in questions
    assert len(train_estimator.training_rows((1001,), 3, long=True)) == 3
