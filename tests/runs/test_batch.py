"""The batch driver: resumable runs, bad rows, exports, the `batch` command and ``attribute_many``."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attribot_core import AttributionResult, attribute, attribute_many
from attribot_core.api import InputError
from attribot_core.cli import main
from attribot_core.examples import EXAMPLES
from attribot_core.runs import RunStore
from attribot_core.runs.backends import LocalBackend
from attribot_core.runs.batch import BatchSettings, done_rows, run_batch
from attribot_core.runs.export import export_batch
from attribot_core.runs.inputs import read_rows, rows_from_records

ATTRIBOT = str(Path(sys.executable).with_name("attribot"))


def records(n_copies: int = 1) -> list[dict]:
    """The built-in examples (with a fixed response and one gold sentence each), ``n_copies`` times."""
    out = []
    for c in range(n_copies):
        for e in EXAMPLES:
            gold = [e.context.split(". ")[1]]
            out.append({"id": f"{e.key}-{c}", "context": e.context, "question": e.question,
                        "response": "It was in 1874.", "gold": gold})
    return out


def write_jsonl(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


@pytest.fixture
def settings(tiny_model_dir) -> BatchSettings:
    return BatchSettings(model=str(tiny_model_dir), method="loo", max_new_tokens=8)


@pytest.fixture
def backend(tiny_lm) -> LocalBackend:
    from attribot_core.runs import ModelCache

    return LocalBackend(ModelCache(loader=lambda spec: tiny_lm))


# -- running ----------------------------------------------------------------------------------------
def test_a_batch_stores_every_row_and_its_results_equal_single_runs(tmp_path, settings, backend, tiny_lm):
    store = RunStore(tmp_path / "r.db")
    rows = rows_from_records(records())
    summary = run_batch(store, "b", rows, settings, backend)
    assert (summary.done, summary.failed, summary.skipped, summary.rows) == (3, 0, 0, 3)
    assert summary.store_calls > 0 and summary.store_s > 0
    stored = {r.row_id: r for r in store.list(batch="b")}
    for rec in records():
        run = stored[rec["id"]]
        assert run.status == "done" and run.source == "batch" and run.row["gold"] == rec["gold"]
        direct = attribute(rec["context"], rec["question"], model=tiny_lm, response=rec["response"])
        assert run.result.scores() == pytest.approx(direct.scores(), abs=1e-5)  # live: first ablation alone
    assert store.batches()[0]["settings"]["method"] == "loo"


def test_a_rows_gold_evidence_is_outlined_wherever_its_run_is_shown(tmp_path, settings, backend):
    from attribot_core.examples import known_for
    from attribot_core.gold import gold_sentences

    store = RunStore(tmp_path / "r.db")
    run_batch(store, "b", rows_from_records(records()), settings, backend)
    for run in store.list(batch="b"):
        known = known_for(run.result)  # what Attribute, Drill-down, History and Dataset outline
        assert known is not None and known.evidence
        assert set(known.evidence) == gold_sentences(run.result, run.row["gold"])


def test_bad_rows_are_stored_as_failed_with_their_message_and_the_batch_goes_on(tmp_path, settings, backend):
    store = RunStore(tmp_path / "r.db")
    recs = [{"id": "empty", "context": "   ", "question": "Why?"},
            {"id": "long", "context": "One sentence here. " * 2000, "question": "Why?", "response": "No."},
            {"id": "no-question", "context": "A fact. Another fact."},
            *records()]
    rows = rows_from_records([*recs, "Line 9 is not valid JSON (oops)."])
    summary = run_batch(store, "b", rows, settings, backend)
    assert (summary.done, summary.failed) == (3, 4)
    errors = {r.row_id: r.error for r in store.list(batch="b", statuses=["failed"])}
    assert "context is empty" in errors["empty"]
    assert "window" in errors["long"] and "tokens" in errors["long"]
    assert "no 'question'" in errors["no-question"]
    assert "not valid JSON" in errors["row-7"]  # the 7th row of the input
    assert not any("Traceback" in e for e in errors.values())


def test_a_rerun_skips_rows_done_with_the_same_settings_and_redoes_the_rest(tmp_path, settings, backend):
    store = RunStore(tmp_path / "r.db")
    rows = rows_from_records([*records(), {"id": "bad", "context": "", "question": "q"}])
    run_batch(store, "b", rows[:2], settings, backend)
    before = {r.row_id: (r.id, r.finished) for r in store.list(batch="b")}
    again = run_batch(store, "b", rows, settings, backend)
    assert (again.skipped, again.done, again.failed) == (2, 1, 1)
    after = {r.row_id: (r.id, r.finished) for r in store.list(batch="b")}
    assert all(after[k] == v for k, v in before.items())  # done rows untouched
    assert store.count() == 4  # every row stored once
    other = run_batch(store, "b", rows, BatchSettings(settings.model, "hierarchical", (("keep_paragraphs", 1),)),
                      backend)
    assert (other.skipped, other.done) == (0, 3)  # new settings: the rows are attributed again, in place
    assert store.count() == 4 and {r.request.method for r in store.list(batch="b")} == {"hierarchical"}


def test_a_row_is_already_done_only_when_done_with_the_same_settings(tmp_path, settings, backend):
    store = RunStore(tmp_path / "r.db")
    rows = rows_from_records([*records(), {"id": "bad", "context": "", "question": "q"}])
    assert done_rows(store, "b", rows, settings) == {}
    run_batch(store, "b", rows, settings, backend)
    stored = {r.row_id: r.id for r in store.list(batch="b", statuses=["done"])}
    assert done_rows(store, "b", rows, settings) == stored and "bad" not in stored  # failed: not done
    other = BatchSettings(settings.model, "loo", (("paragraphs", False),), max_new_tokens=settings.max_new_tokens)
    assert done_rows(store, "b", rows, other) == {}
    assert done_rows(store, "other-batch", rows, settings) == {}
    same = BatchSettings(settings.model, "loo", (("paragraphs", True),), max_new_tokens=settings.max_new_tokens)
    assert done_rows(store, "b", rows, same) == stored  # a default written out is the same request


def test_a_one_sentence_context_is_attributed_as_attribute_accepts_it(tmp_path, settings, backend, tiny_lm):
    store = RunStore(tmp_path / "r.db")
    rec = {"id": "one", "context": "The lamp was first lit on 3 March 1874.", "question": "When?", "response": "1874."}
    summary = run_batch(store, "b", rows_from_records([rec]), settings, backend)
    assert (summary.done, summary.failed) == (1, 0)
    (run,) = store.list(batch="b")
    direct = attribute(rec["context"], rec["question"], model=tiny_lm, response=rec["response"])
    assert run.result.scores() == pytest.approx(direct.scores(), abs=1e-5) and len(direct.scores()) == 1


def test_a_row_whose_context_is_not_text_is_stored_as_failed_and_the_others_run(tmp_path, settings, backend):
    store = RunStore(tmp_path / "r.db")
    summary = run_batch(store, "b", rows_from_records([*records(), {"id": "n", "context": 123, "question": "q"}]),
                        settings, backend)
    assert (summary.done, summary.failed) == (3, 1)
    (failed,) = store.list(batch="b", statuses=["failed"])
    assert failed.row_id == "n" and failed.error == "Row 4: 'context' is not text (got int)."
    assert failed.request.context == ""  # never the made-up text "123"


def test_a_generated_response_is_kept_with_its_token_ids(tmp_path, settings, backend):
    store = RunStore(tmp_path / "r.db")
    rec = {**records()[0], "response": ""}
    run_batch(store, "b", rows_from_records([rec]), settings, backend)
    (run,) = store.list(batch="b")
    kept = store.generated(settings.model, rec["context"], rec["question"], settings.max_new_tokens)
    assert run.status == "done" and kept is not None and kept.text == run.result.response and kept.token_ids


def test_killing_a_batch_midway_loses_no_done_row_and_duplicates_none(tmp_path, tiny_model_dir):
    n = 60
    source = write_jsonl(tmp_path / "big.jsonl", records(n // len(EXAMPLES)))
    db = tmp_path / "runs.sqlite3"
    cmd = [ATTRIBOT, "batch", str(source), "--model", str(tiny_model_dir), "--db", str(db), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = RunStore(db)
    deadline = time.monotonic() + 300
    while store.count("done") < 5:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the batch did not get going"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    done_before = {r.row_id: (r.id, r.finished, r.result) for r in store.list(batch="big", statuses=["done"],
                                                                               limit=1000)}
    assert 5 <= len(done_before) < n, "kill the batch while it still has rows to do"
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(done_before)} skipped" in rerun.stdout and f"{n - len(done_before)} done" in rerun.stdout
    runs = store.list(batch="big", limit=1000)
    assert len(runs) == n and {r.status for r in runs} == {"done"}
    assert sorted(r.row_id for r in runs) == sorted(rec["id"] for rec in records(n // len(EXAMPLES)))
    for r in runs:
        if r.row_id in done_before:
            assert (r.id, r.finished, r.result) == done_before[r.row_id]  # kept, not redone
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- exports ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_an_export_round_trips_in_every_format(tmp_path, settings, backend, fmt):
    import pandas as pd

    store = RunStore(tmp_path / "r.db")
    recs = [*records(), {"id": "bad", "context": "", "question": "q"}]
    run_batch(store, "b", rows_from_records(recs), settings, backend)
    out = tmp_path / f"out.{fmt}"
    assert export_batch(store, "b", fmt, out) == 4
    again = read_rows(out)  # an export is a batch input again
    assert [(r.row_id, r.context, r.question, r.gold) for r in again] == \
        [(r["id"], r["context"], r["question"], tuple(r["gold"]) if r.get("gold") else None) for r in recs]
    table = {"jsonl": lambda p: pd.read_json(p, lines=True), "csv": pd.read_csv, "parquet": pd.read_parquet}[fmt](out)
    assert list(table["status"]) == ["done", "done", "done", "failed"]
    by_id = {r.row_id: r for r in store.list(batch="b")}
    for _, row in table.iterrows():
        run = by_id[row["id"]]
        if run.result is None:
            assert "context is empty" in row["error"]
            continue
        assert AttributionResult.from_json(row["result"]) == run.result
        assert row["top_score"] == pytest.approx(run.result.top_k(1)[0].score)
        assert row["top_sentence"] == run.result.top_k(1)[0].text
        assert bool(row["gold_hit"]) in (True, False)


def test_export_of_an_unknown_batch_names_the_batches_there(tmp_path, capsys):
    RunStore(tmp_path / "r.db").ensure_batch("real")
    assert main(["export", "--db", str(tmp_path / "r.db"), "--name", "nope", "--format", "csv"]) == 2
    assert "No batch named 'nope'" in capsys.readouterr().err


# -- CLI and Python API ---------------------------------------------------------------------------
def test_the_batch_command_reads_stdin_prints_a_summary_and_shows_progress(tmp_path, tiny_model_dir):
    recs = [*records(), {"id": "bad", "context": "", "question": "q"}]
    proc = subprocess.run([ATTRIBOT, "batch", "-", "--model", str(tiny_model_dir), "--db", str(tmp_path / "r.db"),
                           "--method", "hierarchical", "--keep-paragraphs", "1"],
                          input="".join(json.dumps(r) + "\n" for r in recs), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "batch 'stdin': 3 done, 1 failed, 0 skipped" in proc.stdout
    assert "row/s" in proc.stderr or "s/row" in proc.stderr  # the progress bar (rows done, rate, ETA)
    assert "failed row bad: The context is empty" in proc.stderr
    runs = RunStore(tmp_path / "r.db").list(batch="stdin")
    assert {r.request.method for r in runs} == {"hierarchical"} and len(runs) == 4


def test_the_batch_command_rejects_bad_options_clearly(tmp_path, tiny_model_dir, capsys):
    source = write_jsonl(tmp_path / "in.jsonl", records())
    base = ["batch", str(source), "--db", str(tmp_path / "r.db")]
    assert main([*base, "--model", "/no/such/model"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main([*base, "--method", "proxy", "--model", str(tiny_model_dir)]) == 2
    assert "needs a proxy model" in capsys.readouterr().err
    assert main(["batch", str(source), "--db", str(tmp_path / "w.db"), "--workers", "2"]) == 2
    assert "--workers needs --ray" in capsys.readouterr().err
    assert not (tmp_path / "w.db").exists()  # refused before the database was opened


def test_attribute_with_db_stores_the_run_for_history(tmp_path, tiny_model_dir, capsys):
    ctx = tmp_path / "ctx.txt"
    ctx.write_text(EXAMPLES[0].context, encoding="utf-8")
    db = tmp_path / "r.db"
    assert main(["attribute", "--context", str(ctx), "--question", EXAMPLES[0].question, "--model",
                 str(tiny_model_dir), "--response", "In 1874.", "--db", str(db)]) == 0
    assert "stored as run" in capsys.readouterr().err
    (run,) = RunStore(db).list()
    assert run.source == "cli" and run.status == "done" and run.result.response == "In 1874."
    assert RunStore(db).find_done(run.request).id == run.id  # the app finds it for identical inputs


def test_attribute_many_yields_a_result_per_row_and_resumes_with_a_db(tmp_path, tiny_model_dir, tiny_lm):
    recs = [*records(), {"id": "bad", "context": "", "question": "q"}]
    out = {r.row_id: r for r in attribute_many(recs, model=str(tiny_model_dir), method="loo")}
    assert {k: r.status for k, r in out.items()} == {**{r["id"]: "done" for r in recs[:3]}, "bad": "failed"}
    direct = attribute(recs[0]["context"], recs[0]["question"], model=tiny_lm, response=recs[0]["response"])
    assert out[recs[0]["id"]].result.scores() == pytest.approx(direct.scores(), abs=1e-5)
    db = tmp_path / "r.db"
    list(attribute_many(recs[:2], model=str(tiny_model_dir), db=db, name="mine"))
    again = list(attribute_many(recs, model=str(tiny_model_dir), db=db, name="mine"))
    assert sorted(r.status for r in again) == ["done", "failed", "skipped", "skipped"]
    assert all(r.result is not None for r in again if r.status == "skipped")


def test_the_batch_command_reads_a_json_array(tmp_path, tiny_model_dir, capsys):
    source = tmp_path / "rows.json"
    source.write_text(json.dumps(records(), indent=2), encoding="utf-8")
    assert main(["batch", str(source), "--model", str(tiny_model_dir), "--db", str(tmp_path / "r.db"),
                 "--no-progress"]) == 0
    assert f"batch 'rows': {len(EXAMPLES)} done, 0 failed" in capsys.readouterr().out
    source.write_text(json.dumps(records()[0]), encoding="utf-8")
    assert main(["batch", str(source), "--model", str(tiny_model_dir), "--db", str(tmp_path / "r.db")]) == 2
    assert "holds one JSON object, not rows" in capsys.readouterr().err


def test_attribute_many_refuses_workers_without_ray(tiny_model_dir):
    with pytest.raises(InputError, match="--workers needs --ray"):
        next(attribute_many(records(), model=str(tiny_model_dir), workers=2))


def test_ray_missing_is_one_clear_message_not_a_traceback(tmp_path, tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed: importing it fails
    source = write_jsonl(tmp_path / "in.jsonl", records())
    assert main(["batch", str(source), "--model", str(tiny_model_dir), "--db", str(tmp_path / "r.db"), "--ray"]) == 2
    assert "Ray is not installed: pip install 'ray==2.60.0'" in capsys.readouterr().err


def test_the_batch_bar_shows_the_rows_done_with_the_row_that_ended(tmp_path, tiny_model_dir, monkeypatch):
    """Every frame the bar draws counts the row it draws for: n/total equals done + failed in that frame."""
    import io
    import re

    import tqdm

    frames = io.StringIO()
    real = tqdm.tqdm

    class EveryFrame(real):  # draw every update (the CLI draws at most twice a second) into ``frames``
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "file": frames, "mininterval": 0, "miniters": 1})

    monkeypatch.setattr(tqdm, "tqdm", EveryFrame)
    recs = [*records(), {"id": "bad", "context": "", "question": "q"}]
    assert main(["batch", str(write_jsonl(tmp_path / "in.jsonl", recs)), "--model", str(tiny_model_dir),
                 "--db", str(tmp_path / "r.db")]) == 0
    drawn = re.findall(r"(\d+)/\d+ \[[^\]]*done=(\d+), failed=(\d+)", frames.getvalue())
    assert len(drawn) >= len(recs)
    assert all(int(n) == int(done) + int(failed) for n, done, failed in drawn), drawn
