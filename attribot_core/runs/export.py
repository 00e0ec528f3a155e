"""Export a stored batch: one row per input row, with its inputs, status, per-row figures and result.

The columns ``id``, ``context``, ``question``, ``response`` and ``gold`` are those ``attribot batch``
reads, so an export is a valid batch input again. ``result`` holds the full result JSON
(``AttributionResult.from_json`` reads it back); ``sentence_scores`` the sentence scores in context
order (nats, null = not scored). In CSV, lists and the settings are JSON text, and text cells that a
spreadsheet would run as a formula get a leading ``'`` (:mod:`attribot_core.csvsafe`).

A row whose context was a list of retrieved passages names its sources: ``passages`` (each passage's
``id``, ``title`` and ``text``: a JSON list; JSON text in CSV and Parquet) and ``top_source``, the passage
holding the top sentence as every view names it (``source 3 · Harbour board minutes``). Its ``context`` is
left empty, because a batch row gives a context *or* passages: so the export reads back in as the same
passages. A batch without passage rows has exactly the columns and values it had before passages existed.

A file is written whole or not at all: into a temporary file beside it, renamed over ``out`` once
complete. A run that cannot be read back (a damaged stored row) is left out and named; the status of a
run whose process is gone shows as ``interrupted``.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..api import InputError
from ..csvsafe import csv_safe
from .dataset import row_metrics, source_columns
from .store import DamagedRun, RunRecord, RunStore

__all__ = ["EXPORT_FORMATS", "SUFFIXES", "batch_records", "columns_of", "export_batch", "export_format",
           "export_rows", "write_rows"]

EXPORT_FORMATS = ("jsonl", "csv", "parquet")
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
"""File name endings and the format each one means."""
COLUMNS = ("id", "index", "status", "error", "context", "question", "response", "gold", "method", "model",
           "proxy_model", "settings", "top_sentence", "top_score", "log_prob_full", "max_abs_score", "top_share",
           "top_position", "gold_hit", "response_complete", "sentence_scores", "result")
SOURCE_COLUMNS = {"passages": "context", "top_source": "top_sentence"}
"""The columns of passage rows, each placed after the column named here (only when a row has passages)."""
_LISTS = ("gold", "sentence_scores", "passages")


def columns_of(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The export's columns for ``rows``: :data:`COLUMNS`, plus :data:`SOURCE_COLUMNS` when any row has passages."""
    if not any("passages" in row for row in rows):
        return COLUMNS
    after = {v: k for k, v in SOURCE_COLUMNS.items()}
    return tuple(c for column in COLUMNS for c in (column, after.get(column)) if c is not None)


def export_format(fmt: str | None, out: str | os.PathLike[str] | None) -> str:
    """The format to write: ``fmt`` if given, else the one ``out``'s ending names, else JSONL.

    An ending that names no format, or another format than ``fmt`` (``--format jsonl --out x.xlsx``),
    is refused: a file's name must not promise another format than its content.
    """
    if fmt is not None and fmt not in EXPORT_FORMATS:
        raise InputError(f"Unknown export format '{fmt}'; use one of {', '.join(EXPORT_FORMATS)}.")
    suffix = Path(out).suffix.lower() if out is not None and str(out) != "-" else ""
    if not suffix:
        return fmt or "jsonl"
    named = SUFFIXES.get(suffix)
    if named is None or (fmt is not None and named != fmt):
        fitting = [s for s, f in SUFFIXES.items() if f == (fmt or f)]
        raise InputError(f"The output name {out} ends in '{suffix}', which is not "
                         f"{'a ' + fmt if fmt else 'an export'} file's ending ({', '.join(fitting)}); "
                         "rename it or choose --format to match.")
    return named


def batch_records(store: RunStore, name: str, *, damaged: list[DamagedRun] | None = None) -> list[RunRecord]:
    """The stored runs of batch ``name``, in input order (an unknown batch is an error that says so).

    Runs that cannot be read back raise :class:`DamagedRun`, or, when ``damaged`` is a list, are left
    out and added to it.
    """
    if name not in {b["name"] for b in store.batches()}:
        known = ", ".join(b["name"] for b in store.batches()) or "none yet"
        raise InputError(f"No batch named '{name}' in {store.path} (batches: {known}).")
    records = store.list(batch=name, limit=10**9, damaged=damaged)
    return sorted(records, key=lambda r: ((r.row or {}).get("index", 0), r.row_id or ""))


def export_rows(records: list[RunRecord], *, damaged: list[DamagedRun] | None = None) -> list[dict[str, Any]]:
    """One flat dict per run (the export's columns).

    A run whose stored result is damaged raises :class:`DamagedRun`, or, when ``damaged`` is a list,
    is left out and added to it.
    """
    out = []
    for r in records:
        try:
            result = r.result
        except ValueError as exc:  # the stored result JSON fails validation
            problem = DamagedRun(f"Run {r.id} (batch {r.batch}, row {r.row_id}) is damaged: cannot read its "
                                 f"result ({exc}).", r.id, r.row_id)
            if damaged is None:
                raise problem from None
            damaged.append(problem)
            continue
        row, req = r.row or {}, r.request
        out.append({
            "id": r.row_id, "index": row.get("index"), "status": r.shown_status, "error": r.error,
            "context": None if req.passages else req.context, "question": req.question,
            "response": result.response if result is not None else req.response,
            "gold": row.get("gold"), "method": req.method, "model": req.model, "proxy_model": req.proxy_model,
            "settings": json.dumps(dict(req.params), sort_keys=True),
            **row_metrics(result, row.get("gold")),
            "sentence_scores": result.scores() if result is not None else None,
            "result": result.to_json(None) if result is not None else None,
            **source_columns(req.passages, result),
        })
    if any("passages" in row for row in out):  # each row's keys in the file's column order
        columns = columns_of(out)
        out = [{c: row[c] for c in columns if c in row} for row in out]
    return out


def write_rows(rows: list[dict[str, Any]], fmt: str, out: IO[bytes]) -> None:
    """Write ``rows`` as JSONL, CSV or Parquet to a binary stream."""
    if fmt == "jsonl":
        for row in rows:
            out.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    elif fmt == "csv":
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=list(columns_of(rows)), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: csv_safe(json.dumps(v) if k in _LISTS and v is not None else v)
                             for k, v in row.items()})
        out.write(text.getvalue().encode("utf-8"))
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {"index": pa.int64(), "gold": pa.list_(pa.string()), "top_score": pa.float64(),
                 "log_prob_full": pa.float64(), "max_abs_score": pa.float64(), "top_share": pa.float64(),
                 "top_position": pa.float64(), "gold_hit": pa.bool_(), "response_complete": pa.bool_(),
                 "sentence_scores": pa.list_(pa.float64())}  # every other column is text
        schema = pa.schema([(c, types.get(c, pa.string())) for c in columns_of(rows)])
        rows = [{**row, "passages": json.dumps(row["passages"], ensure_ascii=False)} if row.get("passages") else row
                for row in rows]  # the passages as JSON text, as in CSV
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), out)
    else:
        raise InputError(f"Unknown export format '{fmt}'; use one of {', '.join(EXPORT_FORMATS)}.")


def export_batch(store: RunStore, name: str, fmt: str, out: str | Path | None = None, *,
                 damaged: list[DamagedRun] | None = None) -> int:
    """Write batch ``name`` to ``out`` (stdout when None or ``-``); returns the number of rows written.

    ``damaged``: as in :func:`batch_records` (a list: damaged runs are left out and added to it). A file
    that cannot be written raises :class:`InputError` with one line, and leaves no partial file behind.
    A closed stdout raises ``BrokenPipeError`` (the caller decides what that means).
    """
    rows = export_rows(batch_records(store, name, damaged=damaged), damaged=damaged)
    if out is None or str(out) == "-":
        write_rows(rows, fmt, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        _write_whole(Path(out), lambda f: write_rows(rows, fmt, f))
    return len(rows)


def _write_whole(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write to a temporary file beside ``path``, then rename it over ``path``: never a partial file."""
    if path.is_dir():
        raise InputError(f"Cannot write the export to {path}: it is a folder; give a file name.")
    if not path.parent.is_dir():
        raise InputError(f"Cannot write the export to {path}: the folder {path.parent} does not exist.")
    tmp: Path | None = None
    try:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")  # same folder: the rename is atomic
        with open(tmp, "xb") as f:  # the file mode the user's umask gives, like a plain write
            write(f)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        why = {errno.ENOSPC: "the disk is full", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied", errno.EROFS: "the file system is read-only",
               errno.EDQUOT: "the disk quota is exceeded"}.get(exc.errno, exc.strerror or str(exc))
        raise InputError(f"Cannot write the export to {path}: {why}; nothing was written.") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
