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


def test_the_default_database_batch_and_weights_file_all_belong_to_the_default_training_model():
    # the app's default model changed once and these defaults silently pointed one model at another's runs
    from attribot_core.estimator import EstimatorWeights
    from attribot_core.runs import RunStore

    model_id = train_estimator.MODEL  # a preset's runs and weights carry its name
    records = RunStore(train_estimator.TRAIN_DB).list(batch="estimator-train", statuses=["done"], limit=5)
    assert records and all(r.result.model == model_id for r in records)
    assert EstimatorWeights.load(train_estimator.SHIPPED).model_id == model_id
