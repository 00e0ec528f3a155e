"""The Dataset page's upload steps without a browser: limits, column mapping, preview, progress, export."""

from __future__ import annotations

import csv
import io
import json
import time

import pandas as pd
import pytest

from attribot_core import InputError
from attribot_core.examples import EXAMPLES
from attribot_core.runs import RunStore
from attribot_core.runs.batch import BatchSettings, run_batch
from attribot_core.runs.inputs import rows_from_records
from attribot_core.runs.store import RunRecord
from studio import upload

E = EXAMPLES[0]


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")


@pytest.fixture
def settings(tiny_model_dir) -> BatchSettings:
    return BatchSettings(str(tiny_model_dir), "loo")


def test_the_limits_are_one_sentence_naming_both_numbers():
    text = upload.limits_text()
    assert f"{upload.MAX_UPLOAD_ROWS} rows" in text and f"{upload.MAX_UPLOAD_MB} MB" in text


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(monkeypatch):
    monkeypatch.setattr(upload, "MAX_UPLOAD_MB", 1)
    with pytest.raises(InputError, match="the limit is 1 MB"):
        upload.open_upload("big.jsonl", b"{}" * 2**20)


def test_a_file_over_the_row_limit_is_refused(monkeypatch):
    monkeypatch.setattr(upload, "MAX_UPLOAD_ROWS", 2)
    up = upload.open_upload("three.jsonl", jsonl([{"context": E.context, "question": E.question}] * 3))
    with pytest.raises(InputError, match="3 rows; the limit is 2"):
        upload.read_upload(up, upload.guess_mapping(up.columns))


@pytest.mark.parametrize(("name", "data", "says"), [
    ("broken.parquet", b"PAR1 this is not parquet", "Cannot read"),
    ("picture.csv", b"\x89PNG\r\n\x1a\n\0\0\0", "not UTF-8 text"),
    ("lines.jsonl", b"{not json\n{nor this\n", "No row of 'lines.jsonl' could be read"),
    ("notes.txt", b"context,question\n", "not a jsonl, csv, parquet, json file"),
    ("empty.csv", b"", "is empty"),
])
def test_a_damaged_file_is_one_clear_message(name, data, says):
    with pytest.raises(InputError, match=says):
        up = upload.open_upload(name, data)
        upload.read_upload(up, upload.guess_mapping(up.columns))


def test_columns_named_otherwise_are_guessed_and_mapped():
    frame = pd.DataFrame([{"qid": "a1", "Passage": E.context, "query": E.question, "answer": "In 1874.",
                           "context": "an unrelated column"}])
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    up = upload.open_upload("rag.parquet", buffer.getvalue())
    assert up.columns == ("qid", "Passage", "query", "answer", "context")
    guess = upload.guess_mapping(up.columns)
    assert guess == {"context": "context", "passages": "", "question": "query", "response": "answer", "id": "qid",
                     "gold": ""}
    (row,) = upload.read_upload(up, {**guess, "context": "Passage"})  # the user picks the right column
    assert (row.row_id, row.context, row.question, row.response) == ("a1", E.context, E.question, "In 1874.")


def test_retrieved_passages_under_another_name_are_mapped_to_passages():
    passages = [{"id": "d7", "title": "Harbour board minutes", "text": E.context.split("\n\n")[0]},
                {"id": "d9", "text": E.context.split("\n\n")[1]}]
    up = upload.open_upload("rag.jsonl", jsonl([{"ctxs": passages, "query": E.question}]))
    mapping = upload.guess_mapping(up.columns)
    assert (mapping["passages"], mapping["context"], mapping["question"]) == ("ctxs", "", "query")
    (row,) = upload.read_upload(up, mapping)
    assert row.error is None and [p.id for p in row.passages] == ["d7", "d9"]


def test_a_mapping_without_the_required_columns_or_with_a_column_twice_is_refused():
    up = upload.open_upload("qa.csv", b"text,q\nSome text. More text.,Why?\n")
    with pytest.raises(InputError, match="the question"):
        upload.read_upload(up, {"context": "text"})
    with pytest.raises(InputError, match="chosen for two fields"):
        upload.read_upload(up, {"context": "text", "question": "q", "response": "q"})


def test_the_preview_says_which_rows_will_fail_and_why_by_the_batch_rules(settings, tmp_path):
    records = [{"id": "ok", "context": E.context, "question": E.question},
               {"id": "empty", "context": "", "question": "Why?"},
               {"id": "ok", "context": E.context, "question": "Again?"},
               {"id": "num", "context": 12, "question": "Why?"}]
    plan = upload.preview(rows_from_records(records), settings)
    assert [p["plan"] for p in plan] == ["will run", "will fail", "skipped", "will fail"]
    assert "context is empty" in plan[1]["why"] and "appears earlier" in plan[2]["why"]
    assert "'context' is not text" in plan[3]["why"]
    store = RunStore(tmp_path / "runs.sqlite3")
    run_batch(store, "b", rows_from_records(records[:1]), settings)
    assert upload.preview(rows_from_records(records[:1]), settings, store, "b")[0]["plan"] == "kept"


def test_batch_names_from_the_file_never_reuse_a_stored_batch():
    assert upload.unique_name("qa.jsonl", []) == "qa"
    assert upload.unique_name("qa.jsonl", ["qa", "qa-2"]) == "qa-3"


def _record(status: str, started: float | None, finished: float | None) -> RunRecord:
    from attribot_core.runs import RunRequest
    from attribot_core.runs.store import owner_id

    return RunRecord(id=status, request=RunRequest("c", "q", "m"), status=status, source="app", created=0.0,
                     started=started, finished=finished, done=0, total=0, phase="", partial={}, result_json=None,
                     error=None, batch="b", row_id=None, row=None, note="", tags=(), owner=owner_id())


def test_progress_counts_rows_and_measures_rows_per_minute_and_time_left():
    now = 1000.0
    records = [_record("done", 900.0, 930.0), _record("done", 930.0, 960.0), _record("failed", 960.0, 990.0),
               _record("running", 990.0, None), _record("queued", None, None), _record("cancelled", None, None)]
    p = upload.progress(records, now)
    assert (p.rows, p.done, p.failed, p.cancelled, p.waiting) == (6, 2, 1, 1, 2)
    assert p.rows_per_min == pytest.approx(3 / 100 * 60)  # three rows since the first of them started
    assert p.eta_s == pytest.approx(2 / p.rows_per_min * 60)
    assert "3 of 6 rows finished" in p.line and "rows per minute" in p.line and "left" in p.line
    ended = upload.progress(records[:3], now=time.time())  # nothing waits: the pace of the run, no time left
    assert ended.rows_per_min == pytest.approx(3 / 90 * 60) and ended.eta_s is None


def test_the_csv_download_neutralises_formulas_and_the_others_keep_the_rows(settings, tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    evil = '=HYPERLINK("http://example.com/x","click")'
    run_batch(store, "b", rows_from_records([{"id": evil, "context": E.context, "question": "@SUM(1+1)",
                                              "response": "-2+3 is the answer"}]), settings)
    (row,) = list(csv.DictReader(io.StringIO(upload.export(store, "b", "csv").decode("utf-8"))))
    assert row["id"] == "'" + evil and row["question"] == "'@SUM(1+1)" and row["response"] == "'-2+3 is the answer"
    assert json.loads(upload.export(store, "b", "jsonl"))["id"] == evil  # JSONL and Parquet are data, unchanged
    assert pd.read_parquet(io.BytesIO(upload.export(store, "b", "parquet")))["id"].tolist() == [evil]
