"""The run store: every run (request, status, progress, partial scores, result) in one SQLite file.

Why SQLite: one file the app, the CLI and batch jobs share; WAL mode lets readers (a page polling a
run) go on while a writer commits; ``BEGIN IMMEDIATE`` plus a busy timeout makes two writer processes
take turns instead of failing or losing a row. Results are kept whole (the result JSON, so a run
reopens exactly) and as one row per span (so runs can be queried by score without parsing JSON).

The schema version is SQLite's ``user_version``; :data:`MIGRATIONS` brings any older file up to date
when it is opened, in one transaction per step. The file is marked as ours with SQLite's
``application_id`` (:data:`APPLICATION_ID`). A file is used only when it is empty, marked as ours, or
an unmarked file of an earlier version of this project (recognised by its tables and their columns, then
marked); anything else (another program's database, a damaged file, a file whose version claims ours
but lacks our tables) is refused *before* anything in it changes: no table added, no switch to WAL.

Only this module writes the file. Executors and the app call its methods; nothing else runs SQL.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from ..prompt import Response
from ..result import AttributionResult
from .request import RunRequest

__all__ = ["APPLICATION_ID", "DamagedRun", "RunRecord", "RunStore", "Status", "StoreError", "default_db_path",
           "owner_id"]

Status = Literal["queued", "running", "done", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = ("queued", "running", "done", "failed", "cancelled")
ACTIVE: tuple[Status, ...] = ("queued", "running")


APPLICATION_ID = 0x41747442
"""SQLite ``PRAGMA application_id`` of a run database ("AttB"): tells our file from any other SQLite file."""


class StoreError(RuntimeError):
    """The database file cannot be used (not a database, newer schema, unwritable); the message says why."""


class DamagedRun(StoreError):
    """One stored run cannot be read back (a damaged column); the message names the run and its batch row."""

    def __init__(self, message: str, run_id: str, row_id: str | None) -> None:
        super().__init__(message)
        self.run_id, self.row_id = run_id, row_id


def default_db_path() -> Path:
    """``$ATTRIBOT_DB``, else ``runs.sqlite3`` in the user's data directory (XDG on Linux)."""
    if os.environ.get("ATTRIBOT_DB"):
        return Path(os.environ["ATTRIBOT_DB"]).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "attribot" / "runs.sqlite3"


def owner_id() -> str:
    """Who runs a run: ``host:pid``. A run whose owner process is gone was interrupted."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _interrupted(status: str, owner: str | None) -> bool:
    """An active run whose process is gone: running without a live owner, or queued and claimed by a dead one.

    A queued run nobody claimed yet is only waiting, so it is not interrupted.
    """
    return status in ACTIVE and (status == "running" or bool(owner)) and not _owner_alive(owner)


def _owner_alive(owner: str | None) -> bool:
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's process: we cannot tell, so do not touch its runs
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


# -- schema ------------------------------------------------------------------------------------------
def _script(db: sqlite3.Connection, sql: str) -> None:
    """Run several statements inside the caller's transaction (``executescript`` would commit first)."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def _v1(db: sqlite3.Connection) -> None:
    _script(db, """
        CREATE TABLE runs (
            id          TEXT PRIMARY KEY,
            request_key TEXT NOT NULL,
            request     TEXT NOT NULL,
            status      TEXT NOT NULL CHECK (status IN ('queued','running','done','failed','cancelled')),
            source      TEXT NOT NULL DEFAULT 'app',
            owner       TEXT,
            created     REAL NOT NULL,
            started     REAL,
            finished    REAL,
            done        INTEGER NOT NULL DEFAULT 0,
            total       INTEGER NOT NULL DEFAULT 0,
            phase       TEXT NOT NULL DEFAULT '',
            partial     TEXT NOT NULL DEFAULT '{}',
            result      TEXT,
            error       TEXT,
            question    TEXT NOT NULL,
            context     TEXT NOT NULL,
            model       TEXT NOT NULL,
            method      TEXT NOT NULL,
            batch       TEXT,
            row_id      TEXT,
            row         TEXT,
            note        TEXT NOT NULL DEFAULT '',
            tags        TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX runs_by_key ON runs (request_key, status);
        CREATE INDEX runs_by_created ON runs (created);
        CREATE UNIQUE INDEX runs_by_batch_row ON runs (batch, row_id) WHERE batch IS NOT NULL;
        CREATE TABLE spans (
            run_id    TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            level     TEXT NOT NULL CHECK (level IN ('sentence','paragraph')),
            idx       INTEGER NOT NULL,
            start     INTEGER NOT NULL,
            "end"     INTEGER NOT NULL,
            paragraph INTEGER,
            score     REAL,
            scored_by TEXT,
            rank      INTEGER,
            text      TEXT NOT NULL,
            PRIMARY KEY (run_id, level, idx)
        );
        CREATE INDEX spans_by_score ON spans (level, score);
        CREATE TABLE batches (
            name     TEXT PRIMARY KEY,
            created  REAL NOT NULL,
            source   TEXT NOT NULL DEFAULT '',
            settings TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE responses (
            model          TEXT NOT NULL,
            prompt_key     TEXT NOT NULL,
            max_new_tokens INTEGER NOT NULL,
            text           TEXT NOT NULL,
            token_ids      TEXT NOT NULL,
            tokenizer_id   TEXT NOT NULL,
            complete       INTEGER NOT NULL,
            PRIMARY KEY (model, prompt_key, max_new_tokens)
        );
    """)


def _v2(db: sqlite3.Connection) -> None:
    """The faithfulness measures' cache: log p(response | masked context) by row and mask, so the sibling
    batches of one input (every method of a row) score the row's LDS masks once."""
    _script(db, """
        CREATE TABLE masked_log_probs (
            row_key  TEXT NOT NULL,
            mask     TEXT NOT NULL,
            log_prob REAL NOT NULL,
            PRIMARY KEY (row_key, mask)
        );
    """)


def _v3(db: sqlite3.Connection) -> None:
    """When a running run is expected to end (epoch seconds, at the pace of its passes after the first), so
    every page counts down the same ETA between progress updates."""
    db.execute("ALTER TABLE runs ADD COLUMN eta_end REAL")


def _v4(db: sqlite3.Connection) -> None:
    """The per-span rows go: every reader takes spans from the stored result (one copy of the scores), and
    writing them cost a transaction's worth of rows on every finish."""
    _script(db, "DROP INDEX spans_by_score; DROP TABLE spans;")


def _v5(db: sqlite3.Connection) -> None:
    """The response text generated so far by a running run, so every page shows it streaming in."""
    db.execute("ALTER TABLE runs ADD COLUMN partial_response TEXT NOT NULL DEFAULT ''")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1, _v2, _v3, _v4, _v5)
"""``MIGRATIONS[i]`` takes a file from schema version ``i`` to ``i + 1``."""
SCHEMA_VERSION = len(MIGRATIONS)


def _tables(db: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    """Table name -> its column names (SQLite's own ``sqlite_*`` tables left out)."""
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                      "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {n: tuple(c[1] for c in db.execute(f'PRAGMA table_info("{n}")')) for n in names}


@functools.cache
def _schema_tables(version: int) -> dict[str, tuple[str, ...]]:
    """The tables and columns :data:`MIGRATIONS` make at ``version`` (built once, in memory)."""
    db = sqlite3.connect(":memory:")
    try:
        for step in MIGRATIONS[:version]:
            step(db)
        return _tables(db)
    finally:
        db.close()


def _check_ours(db: sqlite3.Connection, path: Path) -> bool:
    """Refuse (``StoreError``) a file that is neither empty nor ours, reading only; True: it must be marked.

    Ours means marked with :data:`APPLICATION_ID`, or unmarked with a schema version this project wrote
    and exactly the tables and columns of that version (a file of an earlier version, made before files
    were marked). A marked or versioned file must also have its version's tables, so a file whose
    version claims ours but lacks them is refused too. Damage anywhere in the file is found by SQLite's
    ``quick_check`` before the file is used, so nothing is written into a damaged file.
    """
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    objects = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
    if app_id not in (0, APPLICATION_ID):
        raise StoreError(f"{path} is another application's SQLite database (application id {app_id:#x}), "
                         "not an AttriBoT Studio run database; choose another file.")
    if objects == 0 and version == 0:
        return app_id == 0  # empty: ours to set up
    if app_id == APPLICATION_ID and version > SCHEMA_VERSION:
        raise StoreError(f"{path} was written by a newer AttriBoT Studio (schema {version}; "
                         f"this one knows {SCHEMA_VERSION}).")
    tables = _tables(db)
    if app_id == 0 and not 1 <= version <= SCHEMA_VERSION:
        shown = ", ".join(tables) or "none"
        raise StoreError(f"{path} is not an AttriBoT Studio run database (a SQLite file with tables: {shown}); "
                         "choose another file.")
    expected = _schema_tables(version)
    if tables != expected:
        missing = [t for t in expected if t not in tables]
        other = [t for t in tables if t not in expected or tables[t] != expected[t]]
        problem = (f"lacks the tables {', '.join(missing)}" if missing else
                   f"has tables this version does not make or with other columns: {', '.join(other)}")
        raise StoreError(f"{path} claims to be an AttriBoT Studio run database (schema {version}) but {problem}; "
                         "it was not written by this project, or is damaged.")
    problems = [" ".join(str(r[0]).replace("*", " ").split()) for r in db.execute("PRAGMA quick_check(3)")]
    if problems != ["ok"]:
        raise StoreError(f"{path} is damaged ({'; '.join(problems)[:300]}); restore it from a copy or choose "
                         "another file.")
    return app_id == 0


# -- records -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRecord:
    """One stored run. ``partial`` maps ``"sentence"``/``"paragraph"`` to {index: score} known so far."""

    id: str
    request: RunRequest
    status: Status
    source: str
    created: float
    started: float | None
    finished: float | None
    done: int
    total: int
    phase: str
    partial: dict[str, dict[int, float]]
    result_json: str | None = field(repr=False)
    error: str | None
    batch: str | None
    row_id: str | None
    row: dict[str, Any] | None
    note: str
    tags: tuple[str, ...]
    owner: str | None = None
    eta_end: float | None = None
    partial_response: str = ""
    """The response text generated so far (while the run generates it; then the whole generated text)."""

    @cached_property
    def result(self) -> AttributionResult | None:
        """The stored result; a batch row's gold evidence strings come with it (``extra["gold_evidence"]``),
        so every view that shows the run outlines the same gold sentences the Dataset page counts."""
        if not self.result_json:
            return None
        result = AttributionResult.from_json(self.result_json)
        gold = (self.row or {}).get("gold")
        if gold and "gold_evidence" not in result.extra:
            result = result.with_extra(gold_evidence=list(gold))
        return result

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def interrupted(self) -> bool:
        """Still stored as queued/running, but the process that owned it is gone: it will never finish."""
        return _interrupted(self.status, self.owner)

    @property
    def shown_status(self) -> str:
        """The status to show a reader: ``"interrupted"`` for an active run of a dead process, else the status."""
        return "interrupted" if self.interrupted else self.status

    def provisional(self) -> AttributionResult:
        """A result of the scores known so far, for the live heatmap; spans without one are pending.

        ``extra["provisional"]`` tells views that a missing score means "not scored yet" (it may still
        come), which differs from a finished run's "not scored" and from a score of 0.
        """
        from ..result import SpanScore

        r = self.request
        doc = r.document()
        sentences, paragraphs = self.partial.get("sentence", {}), self.partial.get("paragraph", {})
        return AttributionResult(
            context=r.context, question=r.question, response=r.response, method=r.method, model=r.model,
            settings=dict(r.params), log_prob_full=None, proxy_model=r.proxy_model,
            paragraphs=tuple(SpanScore(p.index, p.start, p.end, p.text, paragraphs.get(p.index), None)
                             for p in doc.paragraphs),
            sentences=tuple(SpanScore(s.index, s.start, s.end, s.text, sentences.get(s.index), None, s.parent)
                            for s in doc.sentences),
            forward_passes={}, timings={}, extra={"provisional": True},
            passages=doc.passages, passage_template=r.passage_template,
        )

    @property
    def eta_s(self) -> float | None:
        """Seconds left, counting down to the end the run last estimated (None while it has no estimate).

        The run estimates it from the pace of its forward passes after the first
        (:func:`~attribot_core.runs.execute.eta_seconds`), not from the time since it started, which
        includes loading the model and generating the response.
        """
        if self.status != "running" or self.eta_end is None:
            return None
        return max(0.0, self.eta_end - time.time())


def _partial(text: str | None) -> dict[str, dict[int, float]]:
    """The stored partial scores: {level: {span index: score}}; anything else raises ``ValueError``."""
    data = json.loads(text or "{}")
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError("not a mapping of level -> {span index: score}")
    return {str(level): {int(i): float(s) for i, s in scores.items()} for level, scores in data.items()}


def _record(row: sqlite3.Row) -> RunRecord:
    """A stored row as a record; a damaged column raises :class:`DamagedRun` naming the run."""
    what = "its request"
    try:
        request = RunRequest.from_json(row["request"])
        what = "its partial scores"
        partial = _partial(row["partial"])
        what = "its input row"
        stored_row = json.loads(row["row"]) if row["row"] else None
        if stored_row is not None and not isinstance(stored_row, dict):
            raise ValueError("not an object")
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        where = f" (batch {row['batch']}, row {row['row_id']})" if row["batch"] is not None else ""
        raise DamagedRun(f"Run {row['id']}{where} is damaged: cannot read {what} ({exc}).", row["id"],
                         row["row_id"]) from None
    return RunRecord(
        id=row["id"], request=request, status=row["status"], source=row["source"],
        created=row["created"], started=row["started"], finished=row["finished"], done=row["done"],
        total=row["total"], phase=row["phase"], partial=partial, result_json=row["result"], error=row["error"],
        batch=row["batch"], row_id=row["row_id"], row=stored_row,
        note=row["note"], tags=tuple(t for t in (row["tags"] or "").split(",") if t), owner=row["owner"],
        eta_end=row["eta_end"], partial_response=row["partial_response"],
    )


def _prompt_key(context: str, question: str) -> str:
    import hashlib

    return hashlib.sha256(json.dumps([context, question]).encode("utf-8")).hexdigest()


# -- the store ---------------------------------------------------------------------------------------
class RunStore:
    """A SQLite file of runs. Thread-safe within a process; safe for several processes at once."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, timeout_s: float = 60.0,
                 read_only: bool = False) -> None:
        """Open (or create) the run database at ``path``; ``read_only`` opens an existing one and writes nothing.

        Raises :class:`StoreError` for a file that is not ours or is damaged, before changing it.
        """
        self.path = Path(path) if path is not None else default_db_path()
        self.read_only = read_only
        self._lock = threading.RLock()
        memory = str(self.path) == ":memory:"
        try:
            if read_only:
                if memory or not self.path.is_file():
                    raise StoreError(f"There is no run database at {self.path}.")
                self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout_s,
                                           isolation_level=None, check_same_thread=False)
            else:
                if not memory:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None,
                                           check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            try:
                unmarked = _check_ours(self._db, self.path)  # reads only: a refused file stays as it was
                if read_only:
                    if self._db.execute("PRAGMA user_version").fetchone()[0] == 0:
                        raise StoreError(f"{self.path} holds no runs yet (an empty database).")
                    return
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._migrate(mark=unmarked)
            except BaseException:
                self._db.close()
                raise
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"Cannot use {self.path} as the run database: {exc}.") from None
        except OSError as exc:
            raise StoreError(f"Cannot open the run database {self.path}: {exc}.") from None

    # -- plumbing ----------------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front (waits, never deadlocks)."""
        if self.read_only:
            raise StoreError(f"{self.path} was opened read-only.")
        with self._lock, self._sqlite_errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # SQLite rolls back by itself on some errors (disk full, damage)
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock, self._sqlite_errors():
            return self._db.execute(sql, args).fetchall()

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        """Damage found while reading or writing (a page broken after the file was opened) is a StoreError."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise
            raise StoreError(f"Cannot use {self.path} as the run database: {exc}.") from None
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError):
                raise
            raise StoreError(f"Cannot use {self.path} as the run database: {exc}.") from None

    def _migrate(self, *, mark: bool) -> None:
        """Bring the file to :data:`SCHEMA_VERSION` and mark it as ours, in one transaction per step."""
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:  # another process upgraded it since we checked
                raise StoreError(f"{self.path} was written by a newer AttriBoT Studio (schema {version}; "
                                 f"this one knows {SCHEMA_VERSION}).")
            if mark or db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](db)
                db.execute(f"PRAGMA user_version={step + 1}")

    @property
    def schema_version(self) -> int:
        return self._read("PRAGMA user_version")[0][0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- runs: write -------------------------------------------------------------------------------
    def create(self, request: RunRequest, *, source: str = "app", batch: str | None = None,
               row_id: str | None = None, row: dict[str, Any] | None = None) -> RunRecord:
        """A new queued run. In a batch, a row already stored is reset to queued, never duplicated."""
        run_id = uuid.uuid4().hex
        values = dict(id=run_id, request_key=request.key, request=request.to_json(), status="queued",
                      source=source, created=time.time(), question=request.question, context=request.context,
                      model=request.model, method=request.method, batch=batch, row_id=row_id,
                      row=json.dumps(row, ensure_ascii=False) if row is not None else None)
        with self._write() as db:
            if batch is not None:
                old = db.execute("SELECT id FROM runs WHERE batch = ? AND row_id = ?", (batch, row_id)).fetchone()
                if old is not None:
                    run_id = values["id"] = old["id"]
                    db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            cols = ", ".join(values)
            db.execute(f"INSERT INTO runs ({cols}) VALUES ({', '.join('?' * len(values))})", tuple(values.values()))
        return self.get(run_id)

    def start(self, run_id: str, owner: str | None = None) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET status = 'running', started = ?, owner = ? WHERE id = ?",
                       (time.time(), owner or owner_id(), run_id))

    def progress(self, run_id: str, done: int, total: int, phase: str | None = None, *,
                 eta_s: float | None = None) -> None:
        """``done`` of ``total`` forward passes; ``eta_s`` (seconds left, None: no estimate yet) is kept as
        the time the run is expected to end, so readers count down between two writes."""
        eta_end = None if eta_s is None else time.time() + eta_s
        with self._write() as db:
            if phase is None:
                db.execute("UPDATE runs SET done = ?, total = ?, eta_end = ? WHERE id = ?",
                           (done, total, eta_end, run_id))
            else:
                db.execute("UPDATE runs SET done = ?, total = ?, eta_end = ?, phase = ? WHERE id = ?",
                           (done, total, eta_end, phase, run_id))

    def set_phase(self, run_id: str, phase: str) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET phase = ? WHERE id = ?", (phase, run_id))

    def add_partial(self, run_id: str, level: str, scores: dict[int, float]) -> None:
        """Merge span scores computed so far (the live heatmap reads them)."""
        with self._write() as db:
            row = db.execute("SELECT partial FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                return
            partial = json.loads(row["partial"] or "{}")
            partial.setdefault(level, {}).update({str(i): float(s) for i, s in scores.items()})
            db.execute("UPDATE runs SET partial = ? WHERE id = ?", (json.dumps(partial), run_id))

    def set_partial_response(self, run_id: str, text: str) -> None:
        """The response text generated so far (the live panel shows it while the run generates)."""
        with self._write() as db:
            db.execute("UPDATE runs SET partial_response = ? WHERE id = ?", (text, run_id))

    def finish(self, run_id: str, result: AttributionResult) -> None:
        """Store the result (whole, as JSON) and mark the run done, in one transaction."""
        with self._write() as db:
            db.execute("UPDATE runs SET status = 'done', result = ?, finished = ?, error = NULL, done = total "
                       "WHERE id = ?", (result.to_json(None), time.time(), run_id))

    def update_result(self, run_id: str, result: AttributionResult) -> None:
        """Replace a finished run's result whose scores are unchanged (measures added to its ``extra``)."""
        with self._write() as db:
            db.execute("UPDATE runs SET result = ? WHERE id = ? AND status = 'done'", (result.to_json(None), run_id))

    def fail(self, run_id: str, message: str) -> None:
        self._end(run_id, "failed", message)

    def cancel(self, run_id: str, message: str = "Stopped by the user.") -> None:
        self._end(run_id, "cancelled", message)

    def _end(self, run_id: str, status: Status, message: str) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET status = ?, error = ?, finished = ? WHERE id = ? AND status != 'done'",
                       (status, message, time.time(), run_id))

    def recover_interrupted(self) -> int:
        """Mark runs whose owner process is gone as failed ("interrupted"); returns how many."""
        rows = self._read("SELECT id, owner, status FROM runs WHERE status IN ('queued', 'running')")
        gone = [r["id"] for r in rows if _interrupted(r["status"], r["owner"])]
        for run_id in gone:
            self._end(run_id, "failed", "Interrupted: the process running it stopped before it finished.")
        return len(gone)

    def claim(self, run_id: str, owner: str | None = None) -> None:
        """Record which process will run a queued run (so a crash before it starts is detected too)."""
        with self._write() as db:
            db.execute("UPDATE runs SET owner = ? WHERE id = ?", (owner or owner_id(), run_id))

    def delete(self, run_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    def annotate(self, run_id: str, *, note: str | None = None, tags: Sequence[str] | None = None) -> None:
        with self._write() as db:
            if note is not None:
                db.execute("UPDATE runs SET note = ? WHERE id = ?", (note, run_id))
            if tags is not None:
                clean = ",".join(dict.fromkeys(t.strip().replace(",", " ") for t in tags if t.strip()))
                db.execute("UPDATE runs SET tags = ? WHERE id = ?", (clean, run_id))

    # -- runs: read --------------------------------------------------------------------------------
    def get(self, run_id: str) -> RunRecord | None:
        rows = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _record(rows[0]) if rows else None

    def find_done(self, request: RunRequest) -> RunRecord | None:
        """The newest finished run of an identical request, from any process, before or after a restart."""
        rows = self._read("SELECT * FROM runs WHERE request_key = ? AND status = 'done' ORDER BY finished DESC "
                          "LIMIT 1", (request.key,))
        return _record(rows[0]) if rows else None

    def list(
        self,
        *,
        text: str = "",
        models: Sequence[str] = (),
        methods: Sequence[str] = (),
        statuses: Sequence[str] = (),
        batch: str | None = None,
        since: float | None = None,
        until: float | None = None,
        context: str | None = None,
        limit: int = 200,
        offset: int = 0,
        damaged: list[DamagedRun] | None = None,
    ) -> list[RunRecord]:
        """Runs newest first. ``text`` searches question, context, note and tags (case-insensitive).

        A run that cannot be read back raises :class:`DamagedRun`; with a ``damaged`` list it is left
        out and added there instead, so the other runs can still be shown or exported.
        """
        where, args = [], []
        if text.strip():
            like = "%" + text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append("(question LIKE ? ESCAPE '\\' OR context LIKE ? ESCAPE '\\' OR note LIKE ? ESCAPE '\\' "
                         "OR tags LIKE ? ESCAPE '\\')")
            args += [like] * 4
        for column, values in (("model", models), ("method", methods), ("status", statuses)):
            if values:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                args += list(values)
        if batch is not None:
            where.append("batch = ?")
            args.append(batch)
        if context is not None:
            where.append("context = ?")
            args.append(context)
        if since is not None:
            where.append("created >= ?")
            args.append(since)
        if until is not None:
            where.append("created < ?")
            args.append(until)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created DESC, rowid DESC LIMIT ? OFFSET ?"
        records = []
        for row in self._read(sql, [*args, limit, offset]):
            try:
                records.append(_record(row))
            except DamagedRun as exc:
                if damaged is None:
                    raise
                damaged.append(exc)
        return records

    def count(self, status: str | None = None) -> int:
        if status is None:
            return self._read("SELECT COUNT(*) FROM runs")[0][0]
        return self._read("SELECT COUNT(*) FROM runs WHERE status = ?", (status,))[0][0]

    def facets(self) -> dict[str, list[str]]:
        """The models, methods and batches present (for filters)."""
        return {col: [r[0] for r in self._read(f"SELECT DISTINCT {col} FROM runs WHERE {col} IS NOT NULL "
                                               f"ORDER BY {col}")]
                for col in ("model", "method", "batch")}

    # -- batches -----------------------------------------------------------------------------------
    def ensure_batch(self, name: str, *, source: str = "", settings: dict[str, Any] | None = None) -> None:
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO batches (name, created, source, settings) VALUES (?, ?, ?, ?)",
                       (name, time.time(), source, json.dumps(settings or {}, sort_keys=True)))

    def batches(self) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT b.name, b.created, b.source, b.settings, COUNT(r.id) AS rows, "
            "SUM(r.status = 'done') AS done, SUM(r.status = 'failed') AS failed "
            "FROM batches b LEFT JOIN runs r ON r.batch = b.name GROUP BY b.name ORDER BY b.created DESC")
        return [{**dict(r), "settings": json.loads(r["settings"])} for r in rows]

    def batch_keys(self, name: str) -> dict[str, tuple[str, str, str]]:
        """row id -> (status, request key, run id) of every stored row of batch ``name``.

        A rerun of a batch skips a row only when it is done *with the same request* (same settings).
        """
        rows = self._read("SELECT row_id, status, request_key, id FROM runs WHERE batch = ?", (name,))
        return {r["row_id"]: (r["status"], r["request_key"], r["id"]) for r in rows}

    # -- generated responses -----------------------------------------------------------------------
    def put_response(self, model: str, context: str, question: str, max_new_tokens: int,
                     response: Response) -> None:
        """Keep a generated response with its exact token ids (re-encoding its text can split it differently)."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (model, _prompt_key(context, question), max_new_tokens, response.text,
                        json.dumps(list(response.token_ids or ())), response.tokenizer_id or "",
                        int(response.complete)))

    def generated(self, model: str, context: str, question: str, max_new_tokens: int) -> Response | None:
        rows = self._read("SELECT * FROM responses WHERE model = ? AND prompt_key = ? AND max_new_tokens = ?",
                          (model, _prompt_key(context, question), max_new_tokens))
        return _response(rows[0]) if rows else None

    def known_response(self, model: str, context: str, question: str, text: str) -> Response | None:
        """A generated response of ``model`` with exactly this text, whose token ids can be reused."""
        rows = self._read("SELECT * FROM responses WHERE model = ? AND prompt_key = ? AND text = ?",
                          (model, _prompt_key(context, question), text))
        return _response(rows[0]) if rows else None


    # -- masked log-probs (the faithfulness measures' cache) ------------------------------------------
    def get_log_probs(self, row: str, masks: Sequence[str]) -> dict[str, float]:
        """Known ``log p(response | masked context)`` of ``row`` (see :func:`attribot_core.faithfulness.row_key`)
        by mask string ('1' kept, '0' removed, one per sentence)."""
        wanted = set(masks)
        rows = self._read("SELECT mask, log_prob FROM masked_log_probs WHERE row_key = ?", (row,))
        return {r["mask"]: r["log_prob"] for r in rows if r["mask"] in wanted}

    def put_log_probs(self, row: str, values: dict[str, float]) -> None:
        with self._write() as db:
            db.executemany("INSERT OR REPLACE INTO masked_log_probs (row_key, mask, log_prob) VALUES (?, ?, ?)",
                           [(row, mask, float(lp)) for mask, lp in values.items()])


def _response(row: sqlite3.Row) -> Response:
    return Response(row["text"], tuple(json.loads(row["token_ids"])), row["tokenizer_id"] or None,
                    bool(row["complete"]))
