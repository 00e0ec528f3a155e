"""The SQLite run store: schema, queries, and two real processes writing at once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fakes import fake_result

from attribot_core.runs import RunRequest, RunStore, StoreError
from attribot_core.runs.store import APPLICATION_ID, SCHEMA_VERSION, DamagedRun


def request(i: int = 0, **kw) -> RunRequest:
    return RunRequest(f"Context {i}. Second sentence.", f"Question {i}?", "tiny", "loo", (("paragraphs", True),), **kw)


def test_a_new_file_is_migrated_from_empty_to_the_current_schema(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite3")
    assert store.schema_version == SCHEMA_VERSION
    db = sqlite3.connect(tmp_path / "runs.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "batches", "responses", "masked_log_probs"} <= tables and "spans" not in tables
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID  # marked as ours
    RunStore(tmp_path / "runs.sqlite3")  # opening again migrates nothing and keeps the data


def test_a_file_from_a_newer_version_or_not_a_database_is_refused_clearly(tmp_path):
    newer = tmp_path / "newer.sqlite3"
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        RunStore(newer)
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="Cannot use"):
        RunStore(junk)


def test_a_finished_run_keeps_its_result(tmp_path):
    store = RunStore(tmp_path / "r.db")
    req = request()
    result = fake_result(req.context, req.question)
    run = store.create(req)
    assert run.status == "queued" and store.find_done(req) is None
    store.start(run.id)
    store.add_partial(run.id, "sentence", {0: 1.5})
    assert store.get(run.id).partial == {"sentence": {0: 1.5}}
    store.finish(run.id, result)
    done = store.find_done(req)
    assert done.id == run.id and done.status == "done" and done.result == result
    assert RunStore(tmp_path / "r.db").find_done(req).result == result  # after a "restart"


def test_list_searches_text_and_filters_by_model_method_status_and_date(tmp_path):
    store = RunStore(tmp_path / "r.db")
    a = store.create(request(1))
    b = store.create(request(2).but(method="hierarchical", params=(("keep_paragraphs", 1),)))
    store.fail(b.id, "boom")
    assert [r.id for r in store.list()] == [b.id, a.id]  # newest first
    assert [r.id for r in store.list(text="question 1")] == [a.id]
    assert [r.id for r in store.list(methods=["hierarchical"])] == [b.id]
    assert [r.id for r in store.list(statuses=["failed"])] == [b.id] and store.get(b.id).error == "boom"
    assert store.list(since=store.get(b.id).created + 1) == []
    assert store.list(text="100%_") == []  # LIKE wildcards in the search are literal
    store.annotate(a.id, note="wrong answer", tags=["rag", "check"])
    assert [r.id for r in store.list(text="check")] == [a.id] and store.get(a.id).tags == ("rag", "check")
    store.delete(a.id)
    assert store.get(a.id) is None and store.count() == 1


def test_runs_of_a_dead_process_are_marked_interrupted(tmp_path):
    store = RunStore(tmp_path / "r.db")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    run = store.create(request())
    store.start(run.id, owner=f"{socket.gethostname()}:{dead.stdout.strip()}")
    mine = store.create(request(1))
    assert store.recover_interrupted() == 1
    assert store.get(run.id).status == "failed" and "Interrupted" in store.get(run.id).error
    assert store.get(mine.id).status == "queued"


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[4])
    from attribot_core.runs import RunRequest, RunStore
    from fakes import fake_result
    store = RunStore(sys.argv[1])
    who = sys.argv[2]
    for i in range(int(sys.argv[3])):
        req = RunRequest(f"{who} context {i}. Two.", f"q{i}", "tiny")
        run = store.create(req, batch=who, row_id=str(i))
        store.start(run.id)
        for p in range(3):
            store.progress(run.id, p, 3)
            store.add_partial(run.id, "sentence", {p: float(p)})
        store.finish(run.id, fake_result(req.context, req.question))
""")


def test_two_processes_writing_at_once_lose_and_corrupt_nothing(tmp_path):
    db = tmp_path / "shared.sqlite3"
    RunStore(db)
    n = 40
    here = str(Path(__file__).parent)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), who, str(n), here]) for who in ("app", "batch")]
    assert [p.wait(300) for p in procs] == [0, 0]
    store = RunStore(db)
    assert store.count() == 2 * n and store.count("done") == 2 * n
    for who in ("app", "batch"):
        rows = store.batch_keys(who)
        assert sorted(rows, key=int) == [str(i) for i in range(n)] and {s for s, _, _ in rows.values()} == {"done"}
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert all(r.result is not None and len(r.result.sentences) == 2 for r in store.list(limit=1000))


# -- files that are not ours, or damaged: refused before anything in them changes ----------------------
def _foreign_with_its_own_tables(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, 'keep');")
    db.close()


def _foreign_with_a_runs_table(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE runs (id TEXT, distance_km REAL); INSERT INTO runs VALUES ('mon', 5.2);")
    db.close()


def _foreign_with_an_application_id(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript("PRAGMA application_id=1234; CREATE TABLE t (x);")
    db.close()


def _version_claims_ours_without_tables(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript("PRAGMA user_version=1; CREATE TABLE other (x);")
    db.close()


def _marked_but_without_tables(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(f"PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version=1;")
    db.close()


def _ours_with_bytes_overwritten_mid_file(path: Path) -> None:
    store = RunStore(path)
    for i in range(30):
        run = store.create(request(i))
        store.finish(run.id, fake_result(request(i).context, request(i).question))
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=DELETE")  # fold the WAL into the file, so it is one file to damage
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with open(path, "r+b") as f:  # the b-tree header of page 3 and what follows
        f.seek(2 * page)
        f.write(b"\xff" * 200)


FOREIGN = {
    "its-own-tables": (_foreign_with_its_own_tables, "not an AttriBoT Studio run database"),
    "a-runs-table": (_foreign_with_a_runs_table, "not an AttriBoT Studio run database"),
    "another-application-id": (_foreign_with_an_application_id, "another application's"),
    "version-claims-ours": (_version_claims_ours_without_tables, "lacks the tables"),
    "marked-without-tables": (_marked_but_without_tables, "lacks the tables"),
    "overwritten-mid-file": (_ours_with_bytes_overwritten_mid_file, "damaged|malformed"),
}


@pytest.mark.parametrize("read_only", [False, True], ids=["open", "read-only"])
@pytest.mark.parametrize("case", list(FOREIGN))
def test_a_foreign_or_damaged_file_is_refused_and_left_byte_for_byte_as_it_was(tmp_path, case, read_only):
    path = tmp_path / "other.sqlite3"
    make, message = FOREIGN[case]
    make(path)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=message) as info:
        RunStore(path, read_only=read_only)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert path.read_bytes() == before  # no table added, no switch to WAL
    assert not Path(f"{path}-wal").exists()


def test_a_file_of_an_earlier_version_unmarked_but_with_our_tables_opens_and_gets_marked(tmp_path):
    path = tmp_path / "old.sqlite3"
    store = RunStore(path)
    run = store.create(request())
    store.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id=0")  # as earlier versions wrote it
    db.close()
    again = RunStore(path)
    assert again.get(run.id).request == request()
    assert sqlite3.connect(path).execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_read_only_changes_nothing_and_refuses_a_missing_or_empty_file(tmp_path):
    path = tmp_path / "r.db"
    store = RunStore(path)
    run = store.create(request())
    store.close()
    before = path.read_bytes()
    reader = RunStore(path, read_only=True)
    assert reader.get(run.id).status == "queued"
    with pytest.raises(StoreError, match="read-only"):
        reader.fail(run.id, "no")
    reader.close()
    assert path.read_bytes() == before
    with pytest.raises(StoreError, match="no run database"):
        RunStore(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(StoreError, match="no runs yet"):
        RunStore(tmp_path / "empty.db", read_only=True)


def test_a_run_whose_partial_scores_are_not_a_mapping_is_named_as_damaged(tmp_path):
    path = tmp_path / "r.db"
    store = RunStore(path)
    run = store.create(request(), batch="b", row_id="row-7")
    sqlite3.connect(path).execute("UPDATE runs SET partial = '[1, 2]'").connection.commit()
    with pytest.raises(DamagedRun, match="row-7.*partial scores") as info:
        store.get(run.id)
    assert info.value.row_id == "row-7" and isinstance(info.value, StoreError)


def test_an_active_run_of_a_dead_process_reads_as_interrupted_without_a_write(tmp_path):
    import socket

    store = RunStore(tmp_path / "r.db")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = f"{socket.gethostname()}:{dead.stdout.strip()}"
    running, claimed, waiting, mine = (store.create(request(i)) for i in range(4))
    store.start(running.id, owner=gone)
    store.claim(claimed.id, owner=gone)
    store.start(mine.id)
    shown = {r.id: r.shown_status for r in store.list()}
    assert shown == {running.id: "interrupted", claimed.id: "interrupted", waiting.id: "queued", mine.id: "running"}
    assert store.get(running.id).status == "running"  # reading wrote nothing


def test_a_file_of_schema_1_is_brought_up_to_date_keeping_its_runs(tmp_path):
    from attribot_core.runs.store import MIGRATIONS

    path = tmp_path / "v1.sqlite3"
    db = sqlite3.connect(path)
    MIGRATIONS[0](db)
    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
    db.execute("PRAGMA user_version=1")
    db.execute("INSERT INTO runs (id, request_key, request, status, created, question, context, model, method) "
               "VALUES ('old', 'k', ?, 'done', 1.0, 'q', 'c', 'tiny', 'loo')", (request().to_json(),))
    db.commit()
    db.close()
    store = RunStore(path)
    assert store.schema_version == SCHEMA_VERSION
    assert store.get("old").status == "done" and store.get("old").eta_s is None


def test_the_eta_counts_down_to_the_end_the_run_last_estimated(tmp_path, monkeypatch):
    import attribot_core.runs.store as store_module

    now = [1000.0]
    monkeypatch.setattr(store_module.time, "time", lambda: now[0])
    store = RunStore(tmp_path / "runs.sqlite3")
    run = store.create(request())
    store.start(run.id)
    store.progress(run.id, 1, 10)
    assert store.get(run.id).eta_s is None  # no pace measured yet: no guess
    store.progress(run.id, 2, 10, eta_s=8.0)
    now[0] += 3.0  # the next pass has not ended yet
    assert store.get(run.id).eta_s == pytest.approx(5.0)
    now[0] += 60.0
    assert store.get(run.id).eta_s == 0.0
    store.finish(run.id, fake_result(request().context, request().question))
    assert store.get(run.id).eta_s is None


def test_a_file_of_schema_4_gains_the_streamed_response_keeping_its_runs(tmp_path):
    from attribot_core.runs.store import MIGRATIONS

    path = tmp_path / "v4.sqlite3"
    db = sqlite3.connect(path)
    for step in MIGRATIONS[:4]:
        step(db)
    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
    db.execute("PRAGMA user_version=4")
    db.execute("INSERT INTO runs (id, request_key, request, status, created, question, context, model, method) "
               "VALUES ('old', 'k', ?, 'running', 1.0, 'q', 'c', 'tiny', 'loo')", (request().to_json(),))
    db.commit()
    db.close()
    store = RunStore(path)
    assert store.schema_version == SCHEMA_VERSION == 5
    assert store.get("old").partial_response == ""  # a run of before: nothing streamed
    store.set_partial_response("old", "Mira <b>Orrin</b>")
    store.set_partial_response("old", "Mira <b>Orrin</b>, the keeper.")
    assert store.get("old").partial_response == "Mira <b>Orrin</b>, the keeper."  # the latest text, kept as is
    store.close()
    assert RunStore(path, read_only=True).get("old").request == request()  # the migrated file is recognised as ours
