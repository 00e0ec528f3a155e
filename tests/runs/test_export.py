"""Exports of a stored batch: whole files or none, formats that match their names, safe CSV, damaged runs named."""

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
from fakes import fake_result

from attribot_core.api import InputError
from attribot_core.cli import main
from attribot_core.runs import RunRequest, RunStore
from attribot_core.runs import export as export_module
from attribot_core.runs.export import export_batch, export_format
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
