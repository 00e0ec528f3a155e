"""The Dataset page's "Upload and run": a browser-only user's batch, from a file to rows in the table.

Steps, each a function here that tests call without a browser: :func:`open_upload` (limits, format,
the file's columns), :func:`guess_mapping` (the column-mapping step), :func:`read_upload` (the rows,
through :mod:`attribot_core.runs.inputs`, the one reader of batch inputs), :func:`preview` (which rows
will fail and why, by the batch's own rule :func:`~attribot_core.runs.batch.row_problem`), then
:func:`start`, :func:`stop`, :func:`resume` through the server's one executor (``studio.runs``), whose
worker runs batch rows after every waiting interactive run. :func:`progress` and :func:`export` read the
store. Nothing is stored before :func:`start`: a file that cannot be read, or is over a limit, is one
message and no change to the run database.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from attribot_core import InputError
from attribot_core.runs import RunRecord, RunStore
from attribot_core.runs.batch import (
    BatchSettings,
    BatchSummary,
    done_rows,
    queue_batch,
    resumable,
    resume_batch,
    row_problem,
)
from attribot_core.runs.export import EXPORT_FORMATS, batch_records, export_rows, write_rows
from attribot_core.runs.inputs import INPUT_FIELDS, BatchRow, input_columns, read_rows

__all__ = ["MAX_UPLOAD_MB", "MAX_UPLOAD_ROWS", "UPLOAD_TYPES", "BatchProgress", "Upload", "can_resume", "export",
           "guess_mapping", "limits_text", "open_upload", "preview", "progress", "read_upload", "resume", "running",
           "start", "stop", "unique_name"]

# -- limits: said on the page before anything runs ---------------------------------------------------------
MAX_UPLOAD_ROWS = 500
"""Rows per uploaded batch: at a few seconds a row on a small CPU model, about the most one afternoon runs."""
MAX_UPLOAD_MB = 20
"""Size of an uploaded file, in MB (2**20 bytes, as Streamlit's uploader counts): 500 long RAG rows fit in it."""
UPLOAD_TYPES = ("jsonl", "csv", "parquet", "json")
"""File endings the uploader accepts; the ending names the format (``json``: one array of row objects)."""
_ALIASES = {  # common names of our fields in others' datasets, for the mapping step's first guess
    "context": ("passage", "document", "text"),
    "passages": ("contexts", "retrieved", "documents", "ctxs"),
    "question": ("query", "prompt", "instruction", "input"),
    "response": ("answer", "output", "completion", "generation"),
    "id": ("row_id", "qid", "uid", "example_id", "_id"),
    "gold": ("evidence", "gold_evidence", "supporting_facts", "rationale"),
}


def limits_text() -> str:
    """The limits, as the page says them before an upload."""
    return (f"up to {MAX_UPLOAD_ROWS} rows and {MAX_UPLOAD_MB} MB per file; JSONL, CSV or Parquet "
            "(or a JSON array of rows).")


@dataclass(frozen=True)
class Upload:
    """An uploaded file that passed the size limit and whose columns could be read."""

    name: str
    data: bytes
    fmt: str
    columns: tuple[str, ...]


def open_upload(name: str, data: bytes) -> Upload:
    """Check an uploaded file's size and format and list its columns; a bad file is one :class:`InputError`."""
    if len(data) > MAX_UPLOAD_MB * 2**20:
        raise InputError(f"'{name}' is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_MB} MB. "
                         "Split it into smaller files (each becomes a batch).")
    fmt = Path(name).suffix.lower().lstrip(".")
    if fmt not in UPLOAD_TYPES:
        raise InputError(f"'{name}' is not a {', '.join(UPLOAD_TYPES)} file.")
    if not data.strip():
        raise InputError(f"'{name}' is empty.")
    columns = input_columns(io.BytesIO(data), fmt)
    if not columns:  # JSON(L) with no object at all: say what is wrong with its first line
        try:
            why = f" ({read_rows(io.BytesIO(data), fmt)[0].error})"
        except InputError as exc:
            why = f" ({exc})"
        raise InputError(f"No row of '{name}' could be read{why}; is it a {fmt.upper()} file?")
    return Upload(name, data, fmt, tuple(columns))


def guess_mapping(columns: Sequence[str]) -> dict[str, str]:
    """Field -> the file's column for it: the same name, else a common alias (case-insensitive), else ""."""
    by_lower = {c.lower(): c for c in columns}
    mapping: dict[str, str] = {}
    for field in INPUT_FIELDS:
        found = next((by_lower[n] for n in (field, *_ALIASES.get(field, ())) if n in by_lower), "")
        mapping[field] = found if found not in mapping.values() else ""
    return mapping


def read_upload(upload: Upload, mapping: Mapping[str, str]) -> list[BatchRow]:
    """The rows of ``upload`` with its columns mapped to our fields; over :data:`MAX_UPLOAD_ROWS` is refused."""
    missing = [f for f in ("context", "question") if not mapping.get(f) and not (f == "context" and
                                                                           mapping.get("passages"))]
    if missing:
        raise InputError(f"Choose the column that holds the {' and the '.join(missing)}"
                         + (" (or the passages)." if "context" in missing else "."))
    chosen = [c for c in mapping.values() if c]
    twice = sorted({c for c in chosen if chosen.count(c) > 1})
    if twice:
        raise InputError(f"Column {', '.join(repr(c) for c in twice)} is chosen for two fields; give each its own.")
    rows = read_rows(io.BytesIO(upload.data), upload.fmt, columns={f: c for f, c in mapping.items() if c})
    if len(rows) > MAX_UPLOAD_ROWS:
        raise InputError(f"'{upload.name}' has {len(rows)} rows; the limit is {MAX_UPLOAD_ROWS}. "
                         "Split it into smaller files (each becomes a batch).")
    unread = [r for r in rows if r.error is not None and r.error.startswith(("Line ", "Item "))]
    if len(unread) == len(rows):  # not one row could be parsed: a damaged file, not a batch of bad rows
        raise InputError(f"No row of '{upload.name}' could be read ({unread[0].error}); is it a "
                         f"{upload.fmt.upper()} file?")
    return rows


def preview(rows: Sequence[BatchRow], settings: BatchSettings, store: RunStore | None = None,
            name: str | None = None) -> list[dict[str, str]]:
    """One line per row: what starting the batch will do with it, and why a row will fail.

    The batch's own rules: a later duplicate id is skipped, a row done in batch ``name`` with these
    settings is kept, a row :func:`row_problem` objects to is stored as failed; the others run.
    """
    done = done_rows(store, name, rows, settings) if store is not None and name else {}
    seen: set[str] = set()
    out = []
    for row in rows:
        if row.row_id in seen:
            plan, why = "skipped", f"id '{row.row_id}' appears earlier in the file"
        elif row.row_id in done:
            plan, why = "kept", "done before in this batch with these settings"
        else:
            problem = row_problem(row, settings.request(row))
            plan, why = ("will fail", problem) if problem else ("will run", "")
        seen.add(row.row_id)
        out.append({"row": str(row.index + 1), "id": row.row_id, "plan": plan, "why": why,
                    "question": row.question, "context": row.context[:200]})
    return out


def unique_name(filename: str, existing: Iterable[str]) -> str:
    """A batch name from the file's name that no stored batch has (``qa``, ``qa-2``, ...)."""
    stem = Path(filename).stem.strip() or "upload"
    taken = set(existing)
    name, n = stem, 2
    while name in taken:
        name, n = f"{stem}-{n}", n + 1
    return name


# -- progress ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchProgress:
    """A batch's rows by state, and its pace: rows per minute over its latest rows, and the time left."""

    rows: int
    done: int
    failed: int
    cancelled: int
    waiting: int  # queued or running
    rows_per_min: float | None
    eta_s: float | None

    @property
    def line(self) -> str:
        text = f"{self.done + self.failed} of {self.rows} rows finished: {self.done} done, {self.failed} failed"
        if self.cancelled:
            text += f", {self.cancelled} stopped"
        if self.waiting:
            text += f" · {self.waiting} to go"
        if self.rows_per_min is not None:
            text += f" · {self.rows_per_min:.1f} rows per minute"
        if self.eta_s is not None:
            text += f" · about {_duration(self.eta_s)} left"
        return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


PACE_ROWS = 20
"""Rows per minute is measured over the batch's latest finished rows (a pace from before a restart fades)."""


def progress(records: Sequence[RunRecord], now: float | None = None) -> BatchProgress:
    """The progress of a batch from its stored rows (``now``: the clock, for tests).

    The pace counts the latest :data:`PACE_ROWS` rows that ran (started and finished), from the first of
    them starting to now (or to the last finish once nothing waits), so time spent on interactive runs
    in between is counted: it is the pace the user will see.
    """
    now = time.time() if now is None else now
    status = [r.shown_status for r in records]
    waiting = sum(s in ("queued", "running") for s in status)
    ran = sorted((r for r in records if r.started and r.finished and r.status in ("done", "failed")),
                 key=lambda r: r.finished or 0)[-PACE_ROWS:]
    rate = None
    if ran:
        end = now if waiting else max(r.finished or 0 for r in ran)
        span = end - min(r.started or 0 for r in ran)
        rate = len(ran) / span * 60 if span > 0 else None
    eta = waiting / rate * 60 if rate and waiting else None
    return BatchProgress(len(records), status.count("done"), status.count("failed") + status.count("interrupted"),
                         status.count("cancelled"), waiting, rate, eta)


def can_resume(records: Sequence[RunRecord]) -> int:
    """How many rows :func:`resume` would run again (stopped, interrupted or failed while running)."""
    return sum(resumable(r) for r in records)


# -- actions: through the server's one executor ------------------------------------------------------------
def start(name: str, rows: Sequence[BatchRow], settings: BatchSettings) -> BatchSummary:
    """Store batch ``name`` and queue its rows in the server's worker (it survives the tab); returns the counts."""
    from . import runs

    name = name.strip()
    if not name:
        raise InputError("Give the batch a name.")
    return queue_batch(runs.executor(), name, rows, settings, source="app")


def stop(name: str) -> int:
    """Stop batch ``name``: queued rows become cancelled, the running row stops between two passes."""
    from . import runs

    return runs.executor().cancel_batch(name)


def resume(name: str) -> int:
    """Run the stopped, interrupted and failed-while-running rows of batch ``name`` again; how many."""
    from . import runs

    return resume_batch(runs.executor(), name)


def running(name: str) -> bool:
    """Whether rows of batch ``name`` are queued or running in this server's worker."""
    from . import runs

    return runs.executor().batch_active(name)


def export(store: RunStore, name: str, fmt: str) -> bytes:
    """Batch ``name`` as a JSONL, CSV (formula-like cells neutralised) or Parquet file, as bytes."""
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"Unknown export format '{fmt}'; use one of {', '.join(EXPORT_FORMATS)}.")
    out = io.BytesIO()
    write_rows(export_rows(batch_records(store, name)), fmt, out)
    return out.getvalue()
