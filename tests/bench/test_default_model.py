"""bench/default_model.py: the table of setups, from stored rows (no model, no timing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import default_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _row(setup: str, example: str, right: bool, first: float | None, run: str | None) -> dict:
    row = {"setup": setup, "id": example, "answer_right": right, "gold_first": right, "seconds": 10.0,
           "load": [1.0, 1.0], "first_score_s": first}
    return row | ({"run": run} if run else {})


def test_first_scores_are_compared_with_smollm2s_only_when_measured_in_the_same_run():
    rows = [_row("smollm2", "lighthouse", True, 2.0, None), _row("qwen", "lighthouse", True, 8.0, None),
            _row("qwen1.5b+smollm2", "lighthouse", True, 0.5, "2026-12-05T09:26")]
    lines = {line.split("|")[1].strip(): line.split("|") for line in default_model.table(rows, 1).splitlines()[2:]}
    assert lines[default_model.describe("qwen")][6].strip() == "4.00x"  # same run (the first three setups)
    assert lines[default_model.describe("qwen1.5b+smollm2")][6].strip() == "–"  # another run, another load
    assert lines[default_model.describe("qwen1.5b+smollm2")][3].strip() == "1/1 (100%)"
    assert "not measured" in lines[default_model.describe("qwen+smollm2")][3]


def _stored(store, batch: str, example: dict, response: str, top: int) -> None:
    """A finished run of ``batch`` on an evaluation example: ``response``, and sentence ``top`` scored highest."""
    from attribot_core import AttributionResult, SpanScore, segment
    from attribot_core.runs.request import RunRequest

    doc = segment(example["context"])
    result = AttributionResult(
        context=example["context"], question=example["question"], response=response, method="loo", model="m",
        settings={}, log_prob_full=-3.0,
        paragraphs=tuple(SpanScore(p.index, p.start, p.end, p.text, 0.0, "m") for p in doc.paragraphs),
        sentences=tuple(SpanScore(s.index, s.start, s.end, s.text, 1.0 if s.index == top else 0.0, "m", s.parent)
                        for s in doc.sentences),
        forward_passes={"m": 1}, timings={"total_s": 0.1})
    store.ensure_batch(batch, source="test")
    run = store.create(RunRequest(example["context"], example["question"], "m"), source="test", batch=batch,
                       row_id=example["id"], row={"gold": example["gold_sentences"]})
    store.start(run.id)
    store.finish(run.id, result)


def test_the_evaluation_store_is_judged_per_setup_with_short_and_long_examples_apart(tmp_path):
    from attribot_core import segment
    from attribot_core.gold import gold_sentences
    from attribot_core.runs import RunStore

    evalset = [json.loads(line) for line in (ROOT / "bench/evalset/evalset.jsonl").open(encoding="utf-8")]
    short = next(e for e in evalset if not e.get("long"))
    long = next(e for e in evalset if e.get("long"))
    gold_short, gold_long = (min(gold_sentences(segment(e["context"]), e["gold_sentences"])) for e in (short, long))
    other = next(i for i in range(len(segment(short["context"]).sentences))
                 if i not in gold_sentences(segment(short["context"]), short["gold_sentences"]))
    store = RunStore(tmp_path / "eval.sqlite")
    _stored(store, "smollm2/loo", short, f"It is {short['answer'].upper()}.", gold_short)
    _stored(store, "smollm2/loo", long, "I do not know.", gold_long)
    _stored(store, "qwen0.5b/loo", short, "I do not know.", other)
    _stored(store, "qwen0.5b/attention", short, f"{short['answer']}", gold_short)  # not a setup

    rows = default_model.evalstore_rows(tmp_path / "eval.sqlite")
    got = {(r["setup"], r["id"]): (r["long"], r["answer_right"], r["gold_first"]) for r in rows}
    assert got == {("smollm2", short["id"]): (False, True, True), ("smollm2", long["id"]): (True, False, True),
                   ("qwen", short["id"]): (False, False, False)}
    lines = default_model.evalstore_table(rows, 27, 15).splitlines()
    assert lines[2].split(" | ")[1:] == ["1", "1/1 (100%)", "1/1 (100%)", "1", "0/1 (0%)", "1/1 (100%) |"]
    assert lines[3].split(" | ")[1:4] == ["1", "0/1 (0%)", "0/1 (0%)"]
    assert lines[4].split(" | ")[1] == "0"  # the full stack: nothing stored yet
