"""Exports of a stored batch: whole files or none, formats that match their names, safe CSV, damaged runs named,
and passages named as sources."""

from __future__ import annotations

import csv
import errno
import io
import json
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import fake_passage_result, fake_result

from attribot_core.api import InputError
from attribot_core.cli import main
from attribot_core.csvsafe import FORMULA_STARTS
from attribot_core.runs import RunRequest, RunStore
from attribot_core.runs import export as export_module
from attribot_core.runs.export import export_batch, export_format
from attribot_core.runs.inputs import read_rows
from attribot_core.runs.store import DamagedRun

LINK = '=HYPERLINK("http://198.51.100.7/","click")'


def stored_batch(path: Path, ids: list[str], *, context_words: int = 4) -> RunStore:
    """A batch ``b`` whose rows are done with a made-up result (no model)."""
    store = RunStore(path)
    store.ensure_batch("b")
    for i, row_id in enumerate(ids):
        req = RunRequest(f"Row {i} says {'word ' * context_words}here. A second sentence.", f"Question {i}?", "tiny")
        run = store.create(req, batch="b", row_id=row_id, row={"index": i, "id": row_id})
        store.start(run.id)
        store.finish(run.id, fake_result(req.context, req.question))
    return store


# -- formats ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "out", "chosen"), [
    (None, None, "jsonl"), (None, "x.csv", "csv"), (None, "x.PQ", "parquet"), ("csv", "x.csv", "csv"),
    ("parquet", None, "parquet"), ("jsonl", "-", "jsonl"), ("csv", "noext", "csv"),
])
def test_the_format_is_the_one_asked_for_or_named_by_the_file(fmt, out, chosen):
    assert export_format(fmt, out) == chosen


@pytest.mark.parametrize(("fmt", "out"), [("jsonl", "x.xlsx"), (None, "x.xlsx"), ("csv", "x.parquet")])
def test_a_file_name_promising_another_format_is_refused(fmt, out):
    with pytest.raises(InputError, match="rename it or choose --format") as info:
        export_format(fmt, out)
    assert "\n" not in str(info.value)


# -- CSV formula injection ----------------------------------------------------------------------------
def test_a_row_id_that_is_a_formula_is_neutralised_and_numbers_stay_numbers(tmp_path):
    store = stored_batch(tmp_path / "r.db", [LINK, "plain"])
    export_batch(store, "b", "csv", tmp_path / "out.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text(encoding="utf-8"))))
    assert [r["id"] for r in rows] == ["'" + LINK, "plain"]
    assert rows[0]["log_prob_full"] == "-3.0" and rows[0]["settings"].startswith("{")


# -- passages as sources ------------------------------------------------------------------------------
TODAYS_COLUMNS = ["id", "index", "status", "error", "context", "question", "response", "gold", "method", "model",
                  "proxy_model", "settings", "top_sentence", "top_score", "log_prob_full", "max_abs_score",
                  "top_share", "top_position", "gold_hit", "response_complete", "sentence_scores", "result"]
PASSAGES = [{"id": "doc-7", "title": "Weather log", "text": "Rain fell all week. The river rose."},
            {"id": "doc-9", "title": "Harbour board minutes", "text": "The board voted to dredge the harbour."}]


def passage_batch(path: Path, passages: list[dict], scores: list[float]) -> RunStore:
    """A batch ``p`` of one done row over ``passages`` (its top sentence by ``scores``) and one queued row."""
    store = RunStore(path)
    store.ensure_batch("p")
    for i, question in enumerate(["What did the board do?", "Did it rain?"]):
        req = RunRequest.for_method(passages, question, "tiny")
        run = store.create(req, batch="p", row_id=f"r{i}", row={"index": i, "id": f"r{i}"})
        if i == 0:
            store.start(run.id)
            store.finish(run.id, fake_passage_result(passages, question, scores))
    return store


def read_export(path: Path, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_passage_batch_names_the_top_source_and_the_passages_in_every_format(tmp_path, fmt):
    store = passage_batch(tmp_path / "r.db", PASSAGES, [0.1, 0.2, 2.5])
    export_batch(store, "p", fmt, tmp_path / f"out.{fmt}")
    done, queued = read_export(tmp_path / f"out.{fmt}", fmt)
    assert done["top_source"] == "source 2 · Harbour board minutes"
    assert not queued["top_source"]  # not scored yet: no top sentence, so no source
    for row in (done, queued):  # JSON text in CSV and Parquet, a list in JSONL; the queued row names them too
        passages = row["passages"] if fmt == "jsonl" else json.loads(row["passages"])
        assert [(p["id"], p["title"]) for p in passages] == [("doc-7", "Weather log"),
                                                             ("doc-9", "Harbour board minutes")]
        assert not row["context"]  # a row gives a context or passages, so the export reads back in
    columns = list(done)
    assert columns[columns.index("context") + 1] == "passages"
    assert columns[columns.index("top_sentence") + 1] == "top_source"


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_an_exported_passage_batch_reads_back_in_as_the_same_passages(tmp_path, fmt):
    store = passage_batch(tmp_path / "r.db", PASSAGES, [0.1, 0.2, 2.5])
    export_batch(store, "p", fmt, tmp_path / f"out.{fmt}")
    rows = read_rows(tmp_path / f"out.{fmt}")
    assert [r.error for r in rows] == [None, None]
    assert [r.source for r in rows] == [RunRequest.for_method(PASSAGES, "q", "tiny").passages] * 2


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_a_plain_string_batch_keeps_the_columns_and_values_it_had_before_passages(tmp_path, fmt):
    store = stored_batch(tmp_path / "r.db", ["a"])
    export_batch(store, "b", fmt, tmp_path / f"out.{fmt}")
    [row] = read_export(tmp_path / f"out.{fmt}", fmt)
    assert list(row) == TODAYS_COLUMNS
    assert row["context"] == "Row 0 says word word word word here. A second sentence."
    assert row["top_sentence"] == "Row 0 says word word word word here."


def test_a_passage_title_that_is_a_formula_is_never_a_formula_cell_in_csv(tmp_path):
    evil = [{"id": LINK, "title": LINK, "text": "The board voted to dredge the harbour."},
            {"id": "@SUM(1+1)", "text": "Rain fell all week."}]
    store = passage_batch(tmp_path / "r.db", evil, [2.0, 0.5])
    export_batch(store, "p", "csv", tmp_path / "out.csv")
    text = (tmp_path / "out.csv").read_text(encoding="utf-8")
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    formulas = [c for c in cells if c.startswith(FORMULA_STARTS) and not c.lstrip("+-").replace(".", "").isdigit()]
    assert not formulas
    done = next(csv.DictReader(io.StringIO(text)))
    assert done["top_source"] == f"source 1 · {LINK}"  # the title kept, as text behind the source's number
    assert [p["title"] for p in json.loads(done["passages"])] == [LINK, ""]


# -- whole files or none ------------------------------------------------------------------------------
@pytest.mark.parametrize(("where", "message"), [
    (lambda tmp: tmp / "no-such-folder" / "out.csv", "does not exist"),
    (lambda tmp: tmp, "it is a folder"),
])
def test_an_output_path_that_cannot_be_a_file_is_one_clear_error(tmp_path, where, message):
    store = stored_batch(tmp_path / "r.db", ["a"])
    with pytest.raises(InputError, match=message):
        export_batch(store, "b", "csv", where(tmp_path))


@pytest.mark.parametrize(("error", "message"), [
    (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
    (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
])
def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch, error, message):
    store = stored_batch(tmp_path / "r.db", ["a", "b"])
    out = tmp_path / "out" / "b.jsonl"
    out.parent.mkdir()
    out.write_text("the previous export\n")

    def write_half_then_fail(rows, fmt, stream):
        stream.write(b'{"id": "a"')
        raise error

    monkeypatch.setattr(export_module, "write_rows", write_half_then_fail)
    with pytest.raises(InputError, match=message) as info:
        export_batch(store, "b", "jsonl", out)
    assert "nothing was written" in str(info.value)
    assert out.read_text() == "the previous export\n" and sorted(p.name for p in out.parent.iterdir()) == ["b.jsonl"]


def test_a_read_only_folder_is_one_clear_error(tmp_path, monkeypatch):
    store = stored_batch(tmp_path / "r.db", ["a"])

    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(export_module, "open", refuse, raising=False)  # as a folder without write permission
    with pytest.raises(InputError, match="permission denied"):
        export_batch(store, "b", "csv", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


# -- damaged and interrupted runs ---------------------------------------------------------------------
def test_a_damaged_run_is_named_and_the_others_are_exported(tmp_path):
    store = stored_batch(tmp_path / "r.db", ["a", "b", "c", "d"])
    db = sqlite3.connect(tmp_path / "r.db")
    db.execute("UPDATE runs SET partial = '\"not a mapping\"' WHERE row_id = 'b'")
    db.execute("UPDATE runs SET result = '{\"context\": 1}' WHERE row_id = 'c'")
    db.commit()
    with pytest.raises(DamagedRun, match="row b"):
        export_batch(store, "b", "jsonl", tmp_path / "all.jsonl")
    damaged: list[DamagedRun] = []
    assert export_batch(store, "b", "jsonl", tmp_path / "rest.jsonl", damaged=damaged) == 2
    assert sorted(d.row_id for d in damaged) == ["b", "c"]
    assert [json.loads(line)["id"] for line in (tmp_path / "rest.jsonl").read_text().splitlines()] == ["a", "d"]


def test_the_cli_exports_the_rest_warns_per_damaged_run_and_exits_1(tmp_path, capsys):
    stored_batch(tmp_path / "r.db", ["a", "b"]).close()
    db = sqlite3.connect(tmp_path / "r.db")
    db.execute("UPDATE runs SET request = 'garbage' WHERE row_id = 'b'")
    db.commit()
    db.close()
    out = tmp_path / "out.csv"
    assert main(["export", "--db", str(tmp_path / "r.db"), "--name", "b", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "row b" in warnings[0] and "1 damaged run(s) left out" in err
    assert [r["id"] for r in csv.DictReader(io.StringIO(out.read_text()))] == ["a"]


def test_rows_of_a_killed_batch_export_as_interrupted(tmp_path):
    store = stored_batch(tmp_path / "r.db", ["done"])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = f"{socket.gethostname()}:{dead.stdout.strip()}"
    running = store.create(RunRequest("One. Two.", "q1", "tiny"), batch="b", row_id="running", row={"index": 1})
    store.start(running.id, owner=gone)
    claimed = store.create(RunRequest("One. Two.", "q2", "tiny"), batch="b", row_id="claimed", row={"index": 2})
    store.claim(claimed.id, owner=gone)
    store.create(RunRequest("One. Two.", "q3", "tiny"), batch="b", row_id="waiting", row={"index": 3})
    export_batch(store, "b", "jsonl", tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    statuses = {r["id"]: r["status"] for r in rows}
    assert statuses == {"done": "done", "running": "interrupted", "claimed": "interrupted", "waiting": "queued"}


# -- the command --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["--format", "jsonl", "--out", "{tmp}/x.xlsx"], "ends in '.xlsx'"),
    (["--out", "{tmp}/missing/x.csv"], "does not exist"),
    (["--out", "{tmp}"], "it is a folder"),
])
def test_the_export_command_refuses_a_bad_output_in_one_line_with_exit_2(tmp_path, capsys, args, message):
    stored_batch(tmp_path / "r.db", ["a"]).close()
    before = (tmp_path / "r.db").read_bytes()
    argv = ["export", "--db", str(tmp_path / "r.db"), "--name", "b", *(a.format(tmp=tmp_path) for a in args)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "r.db").read_bytes() == before and not list(tmp_path.glob("*.part"))


def test_stdout_closed_early_is_one_line_and_exit_2(tmp_path):
    stored_batch(tmp_path / "r.db", [f"r{i}" for i in range(40)], context_words=400).close()
    code = ("import sys; from attribot_core.cli import main; "
            f"sys.exit(main(['export', '--db', {str(tmp_path / 'r.db')!r}, '--name', 'b']))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=Path(__file__).parents[2])
    proc.stdout.read(100)  # like `| head -c 100`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(120) == 2
    assert "stdout was closed" in err and len(err.strip().splitlines()) == 1, err
