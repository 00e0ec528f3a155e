"""Export a stored batch: one row per input row, with its inputs, status, per-row figures and result.

The columns ``id``, ``context``, ``question``, ``response`` and ``gold`` are those ``attribot batch``
reads, so an export is a valid batch input again. ``result`` holds the full result JSON
(``AttributionResult.from_json`` reads it back); ``sentence_scores`` the sentence scores in context
order (nats, null = not scored). In CSV, lists and the settings are JSON text.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import IO, Any

from ..api import InputError
from .dataset import row_metrics
from .store import RunRecord, RunStore

__all__ = ["EXPORT_FORMATS", "batch_records", "export_batch", "export_rows", "write_rows"]

EXPORT_FORMATS = ("jsonl", "csv", "parquet")
COLUMNS = ("id", "index", "status", "error", "context", "question", "response", "gold", "method", "model",
           "proxy_model", "settings", "top_sentence", "top_score", "log_prob_full", "max_abs_score", "top_share",
           "top_position", "gold_hit", "response_complete", "sentence_scores", "result")
_LISTS = ("gold", "sentence_scores")


def batch_records(store: RunStore, name: str) -> list[RunRecord]:
    """The stored runs of batch ``name``, in input order (an unknown batch is an error that says so)."""
    if name not in {b["name"] for b in store.batches()}:
        known = ", ".join(b["name"] for b in store.batches()) or "none yet"
        raise InputError(f"No batch named '{name}' in {store.path} (batches: {known}).")
    records = store.list(batch=name, limit=10**9)
    return sorted(records, key=lambda r: ((r.row or {}).get("index", 0), r.row_id or ""))


def export_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    """One flat dict per run (the export's columns)."""
    out = []
    for r in records:
        row, result, req = r.row or {}, r.result, r.request
        out.append({
            "id": r.row_id, "index": row.get("index"), "status": r.status, "error": r.error,
            "context": req.context, "question": req.question,
            "response": result.response if result is not None else req.response,
            "gold": row.get("gold"), "method": req.method, "model": req.model, "proxy_model": req.proxy_model,
            "settings": json.dumps(dict(req.params), sort_keys=True),
            **row_metrics(result, row.get("gold")),
            "sentence_scores": result.scores() if result is not None else None,
            "result": result.to_json(None) if result is not None else None,
        })
    return out


def write_rows(rows: list[dict[str, Any]], fmt: str, out: IO[bytes]) -> None:
    """Write ``rows`` as JSONL, CSV or Parquet to a binary stream."""
    if fmt == "jsonl":
        for row in rows:
            out.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    elif fmt == "csv":
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if k in _LISTS and v is not None else v for k, v in row.items()})
        out.write(text.getvalue().encode("utf-8"))
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([
            ("id", pa.string()), ("index", pa.int64()), ("status", pa.string()), ("error", pa.string()),
            ("context", pa.string()), ("question", pa.string()), ("response", pa.string()),
            ("gold", pa.list_(pa.string())), ("method", pa.string()), ("model", pa.string()),
            ("proxy_model", pa.string()), ("settings", pa.string()), ("top_sentence", pa.string()),
            ("top_score", pa.float64()), ("log_prob_full", pa.float64()), ("max_abs_score", pa.float64()),
            ("top_share", pa.float64()), ("top_position", pa.float64()), ("gold_hit", pa.bool_()),
            ("response_complete", pa.bool_()), ("sentence_scores", pa.list_(pa.float64())), ("result", pa.string()),
        ])
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), out)
    else:
        raise InputError(f"Unknown export format '{fmt}'; use one of {', '.join(EXPORT_FORMATS)}.")


def export_batch(store: RunStore, name: str, fmt: str, out: str | Path | None = None) -> int:
    """Write batch ``name`` to ``out`` (stdout when None); returns the number of rows written."""
    rows = export_rows(batch_records(store, name))
    if out is None or str(out) == "-":
        write_rows(rows, fmt, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        path = Path(out)
        buffer = io.BytesIO()
        write_rows(rows, fmt, buffer)
        path.write_bytes(buffer.getvalue())
    return len(rows)
