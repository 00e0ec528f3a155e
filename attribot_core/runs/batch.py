"""Batches: attribute every row of a dataset, resumably, here or on Ray actors.

A batch is a named set of stored runs, one per input row (the store's unique (batch, row id) index
makes a row impossible to store twice). Running a batch again skips the rows already done with the
same settings and redoes the others (failed ones, and those in flight when a process was killed), so
a killed batch loses at most its rows in flight. A row that cannot be attributed (empty context, too
long for the model's window, ...) is stored as failed with its message, and the batch goes on.

Where rows run is a *backend* (:class:`LocalBackend` in this process, or
:class:`~attribot_core.runs.ray_executor.RayBackend`); backends only compute and hand back
:class:`Outcome` values. Only the driver (:func:`iter_batch`) writes the store.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from ..api import InputError, check_params
from ..methods import get_method
from ..models import DEFAULT_MODEL
from ..prompt import Response
from ..result import AttributionResult
from .execute import USER_ERRORS, ModelCache, RunReport, check_request, execute
from .executor import StoreReport
from .request import RunRequest
from .store import RunStore

__all__ = [
    "INPUT_FORMATS",
    "Backend",
    "BatchRow",
    "BatchSettings",
    "BatchSummary",
    "LocalBackend",
    "Outcome",
    "RowResult",
    "attempt",
    "attribute_many",
    "iter_batch",
    "read_rows",
    "rows_from_records",
    "run_batch",
]

log = logging.getLogger("attribot.batch")

INPUT_FORMATS = ("jsonl", "csv", "parquet")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet",
             ".pq": "parquet"}


# -- input rows --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchRow:
    """One input row. ``error`` is set when the row itself cannot be read (it is stored as failed)."""

    index: int  # 0-based position in the input
    row_id: str  # the input's ``id``, else a hash of (context, question, response)
    context: str = ""
    question: str = ""
    response: str = ""
    gold: tuple[str, ...] | None = None
    error: str | None = None

    def stored(self) -> dict[str, Any]:
        """What the run keeps of the row besides its request (the Dataset page reads ``gold``)."""
        return {"index": self.index, "id": self.row_id, "gold": list(self.gold) if self.gold is not None else None}


def content_id(context: str, question: str, response: str) -> str:
    """A row's id when the input gives none: equal rows get equal ids, in any run of the batch."""
    return hashlib.sha256(json.dumps([context, question, response]).encode("utf-8")).hexdigest()[:16]


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN (an empty cell)
        return ""
    return value if isinstance(value, str) else str(value)


def _gold(value: Any) -> tuple[str, ...] | None:
    """``gold``: a list of evidence strings; in a CSV cell a JSON list, or one plain string."""
    if value is None or (isinstance(value, float) and value != value) or value == "":
        return None
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError("'gold' looks like a JSON list but is not valid JSON.") from None
        else:
            return (value,)
    if hasattr(value, "tolist"):  # a numpy array (pandas-written Parquet)
        value = value.tolist()
    if not isinstance(value, list | tuple) or not all(isinstance(g, str) for g in value):
        raise ValueError("'gold' must be a list of evidence strings.")
    return tuple(value)


def rows_from_records(records: Iterable[Mapping[str, Any] | str]) -> list[BatchRow]:
    """Rows from dicts with ``context``, ``question`` and optional ``response``, ``id``, ``gold``.

    A string in ``records`` is a row that could not be read at all (its message).
    """
    rows = []
    for i, rec in enumerate(records):
        if isinstance(rec, str):
            rows.append(BatchRow(i, f"row-{i + 1}", error=rec))
            continue
        context, question, response = (_text(rec.get(k)) for k in ("context", "question", "response"))
        row_id = _text(rec.get("id")).strip() or content_id(context, question, response)
        missing = [k for k in ("context", "question") if k not in rec]
        try:
            gold = _gold(rec.get("gold"))
        except ValueError as exc:
            rows.append(BatchRow(i, row_id, context, question, response, error=f"Row {i + 1}: {exc}"))
            continue
        error = f"Row {i + 1} has no {' and no '.join(repr(k) for k in missing)} field." if missing else None
        rows.append(BatchRow(i, row_id, context, question, response, gold, error))
    return rows


def _sniff(head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    return "jsonl" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


def _records(data: bytes, fmt: str, where: str) -> list[Mapping[str, Any] | str]:
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"Cannot read {where} as Parquet: {exc}") from None
        _need_columns(table.column_names, where)
        return table.to_pylist()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{where} is not UTF-8 text (JSONL or CSV), nor Parquet.") from None
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        _need_columns(reader.fieldnames or [], where)
        return list(reader)
    out: list[Mapping[str, Any] | str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            out.append(f"Line {n} is not valid JSON ({exc.msg}).")
            continue
        out.append(rec if isinstance(rec, dict) else f"Line {n} is not a JSON object.")
    return out


def _need_columns(columns: Iterable[str], where: str) -> None:
    missing = [c for c in ("context", "question") if c not in columns]
    if missing:
        raise InputError(f"{where} has no {' and no '.join(repr(c) for c in missing)} column "
                         f"(columns: {', '.join(columns) or 'none'}).")


def read_rows(source: str | Path | IO[bytes], fmt: str | None = None) -> list[BatchRow]:
    """Read a JSONL, CSV or Parquet file (``"-"``: stdin); the format comes from the suffix, else the content."""
    if fmt is not None and fmt not in INPUT_FORMATS:
        raise InputError(f"Unknown input format '{fmt}'; use one of {', '.join(INPUT_FORMATS)}.")
    if isinstance(source, str | Path) and str(source) != "-":
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"Cannot read {path}: {exc.strerror or exc}.") from None
        where, fmt = str(path), fmt or _SUFFIXES.get(path.suffix.lower())
    else:
        stream = sys.stdin.buffer if str(source) == "-" else source
        data, where = stream.read(), "stdin" if str(source) == "-" else "the input"
    rows = rows_from_records(_records(data, fmt or _sniff(data[:64]), where))
    if not rows:
        raise InputError(f"{where} has no rows.")
    return rows


# -- settings and outcomes ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchSettings:
    """What every row of a batch is attributed with."""

    model: str = DEFAULT_MODEL
    method: str = "loo"
    params: tuple[tuple[str, Any], ...] = ()
    proxy_model: str | None = None
    max_new_tokens: int = 64

    def __post_init__(self) -> None:
        spec = get_method(self.method)
        check_params(self.method, dict(self.params))
        if spec.needs_proxy and not self.proxy_model:
            raise InputError(f"Method '{self.method}' needs a proxy model (--proxy-model).")

    def request(self, row: BatchRow) -> RunRequest:
        spec = get_method(self.method)
        params = tuple(sorted({**spec.params, **dict(self.params)}.items()))
        return RunRequest(row.context, row.question, self.model, self.method, params,
                          self.proxy_model if spec.needs_proxy else None, row.response,
                          max_new_tokens=self.max_new_tokens)

    def models(self) -> list[str]:
        return [self.model] + ([self.proxy_model] if self.proxy_model and get_method(self.method).needs_proxy else [])

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "method": self.method, "params": dict(self.params),
                "proxy_model": self.proxy_model, "max_new_tokens": self.max_new_tokens}


@dataclass(frozen=True)
class Outcome:
    """What a backend hands back for one row: a result or an error message, and a generated response."""

    result: AttributionResult | None = None
    error: str | None = None
    generated: Response | None = None


class _Collect(RunReport):
    """Keeps what a run reports that the driver stores afterwards (its generated response)."""

    def __init__(self, known: Response | None) -> None:
        self.known, self.response = known, None

    def generated(self, response: Response) -> None:
        self.response = response

    def known_response(self, request: RunRequest) -> Response | None:
        return self.known


def error_message(exc: BaseException) -> str:
    """A user error's own message; anything else (a bug) as its type and the start of its message."""
    if isinstance(exc, USER_ERRORS):
        return str(exc)
    log.error("a batch row failed", exc_info=exc)
    return f"Something went wrong ({type(exc).__name__}): {str(exc)[:300]}"


def attempt(request: RunRequest, models: ModelCache, known: Response | None = None) -> Outcome:
    """Run one request wherever this is called (this process, a Ray actor); never raises for a row."""
    report = _Collect(known)
    try:
        return Outcome(execute(request, models, report), generated=report.response)
    except Exception as exc:
        return Outcome(error=error_message(exc))


Item = tuple[str, RunRequest, Response | None]  # (run id, request, a known response to reuse)


class Backend(Protocol):
    """Where rows run. ``run`` yields (run id, outcome) as rows finish, calling ``on_start`` on dispatch."""

    workers: int

    def prepare(self, settings: BatchSettings) -> None: ...

    def run(self, items: Iterable[Item], on_start: Callable[[str], None]) -> Iterator[tuple[str, Outcome]]: ...


class LocalBackend:
    """One row at a time in this process (models loaded once; ``threads`` torch threads)."""

    workers = 1

    def __init__(self, models: ModelCache | None = None, threads: int | None = None) -> None:
        self.models = models or ModelCache()
        self.threads = threads

    def prepare(self, settings: BatchSettings) -> None:
        """Load the models first, so a bad model is one clear error rather than every row failing."""
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        for spec in settings.models():
            self.models.get(spec)

    def run(self, items: Iterable[Item], on_start: Callable[[str], None]) -> Iterator[tuple[str, Outcome]]:
        for run_id, request, known in items:
            on_start(run_id)
            yield run_id, attempt(request, self.models, known)


# -- the driver --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RowResult:
    """One row of a batch as it ended. ``status``: done, failed, or skipped (done before, not rerun)."""

    index: int
    row_id: str
    status: str
    result: AttributionResult | None = None
    error: str | None = None
    run_id: str | None = None


@dataclass
class BatchSummary:
    """Counts of a batch run; ``store_s`` is the time spent in store calls (the driver's overhead)."""

    name: str
    rows: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    store_s: float = 0.0
    store_calls: int = 0
    messages: list[str] = field(default_factory=list)

    def count(self, row: RowResult) -> None:
        setattr(self, row.status, getattr(self, row.status) + 1)

    @property
    def line(self) -> str:
        return (f"batch '{self.name}': {self.done} done, {self.failed} failed, {self.skipped} skipped "
                f"(already done) of {self.rows} rows in {self.seconds:.1f} s")


class _TimedStore:
    """The store, with the time its calls take added up (the per-row overhead a benchmark reports)."""

    def __init__(self, store: RunStore, summary: BatchSummary) -> None:
        self._store, self._summary = store, summary

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._store, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self._summary.store_s += time.perf_counter() - start
                self._summary.store_calls += 1

        return timed


def iter_batch(
    store: RunStore,
    name: str,
    rows: Iterable[BatchRow],
    settings: BatchSettings,
    backend: Backend | None = None,
    *,
    source: str = "batch",
    summary: BatchSummary | None = None,
) -> Iterator[RowResult]:
    """Run the rows of batch ``name`` not yet done with these settings; yield every row as it ends.

    Skipped and unreadable rows come first, then computed rows in the order they finish. If the
    iteration stops early (Ctrl-C), rows not finished are stored as cancelled; rerun to resume.
    """
    backend = backend or LocalBackend()
    summary = summary if summary is not None else BatchSummary(name)
    db = _TimedStore(store, summary)
    rows = list(rows)
    summary.rows = len(rows)
    backend.prepare(settings)
    db.recover_interrupted()
    db.ensure_batch(name, source=source, settings=settings.to_dict())
    stored = db.batch_keys(name)
    seen: set[str] = set()
    todo: list[tuple[BatchRow, RunRequest]] = []
    for row in rows:
        if row.row_id in seen:
            summary.messages.append(f"Row {row.index + 1}: id '{row.row_id}' appears earlier in the input; skipped.")
            result = RowResult(row.index, row.row_id, "skipped", error="duplicate id")
            summary.count(result)
            yield result
            continue
        seen.add(row.row_id)
        request = settings.request(row)
        status, key, run_id = stored.get(row.row_id, (None, None, None))
        if status == "done" and key == request.key:
            record = db.get(run_id)
            result = RowResult(row.index, row.row_id, "skipped", record.result if record else None, run_id=run_id)
            summary.count(result)
            yield result
            continue
        todo.append((row, request))

    pending: dict[str, BatchRow] = {}
    items: list[Item] = []
    for row, request in todo:
        record = db.create(request, source=source, batch=name, row_id=row.row_id, row=row.stored())
        message = row.error
        if message is None:
            try:
                check_request(request)
            except USER_ERRORS as exc:
                message = str(exc)
        if message is not None:
            db.fail(record.id, message)
            result = RowResult(row.index, row.row_id, "failed", error=message, run_id=record.id)
            summary.count(result)
            yield result
            continue
        db.claim(record.id)
        pending[record.id] = row
        known = StoreReport(db, record.id, request).known_response(request)  # type: ignore[arg-type]
        items.append((record.id, request, known))

    start = time.perf_counter()
    try:
        for run_id, outcome in backend.run(items, db.start):
            row = pending.pop(run_id)
            if outcome.result is not None:
                if outcome.generated is not None:
                    r = settings.request(row)
                    db.put_response(r.model, r.context, r.question, r.max_new_tokens, outcome.generated)
                db.finish(run_id, outcome.result)
                result = RowResult(row.index, row.row_id, "done", outcome.result, run_id=run_id)
            else:
                db.fail(run_id, outcome.error or "The row failed.")
                result = RowResult(row.index, row.row_id, "failed", error=outcome.error, run_id=run_id)
            summary.count(result)
            summary.seconds = time.perf_counter() - start
            yield result
    finally:
        summary.seconds = time.perf_counter() - start
        for run_id in pending:
            db.cancel(run_id, "The batch stopped before this row finished; run it again to resume.")


def run_batch(store: RunStore, name: str, rows: Iterable[BatchRow], settings: BatchSettings,
              backend: Backend | None = None, *, source: str = "batch",
              on_row: Callable[[RowResult, BatchSummary], None] | None = None) -> BatchSummary:
    """:func:`iter_batch` to the end; returns the counts (``on_row`` sees every row as it ends)."""
    summary = BatchSummary(name)
    for row in iter_batch(store, name, rows, settings, backend, source=source, summary=summary):
        if on_row is not None:
            on_row(row, summary)
    return summary


def attribute_many(
    rows: Iterable[Mapping[str, Any]] | str | Path,
    *,
    model: str = DEFAULT_MODEL,
    method: str = "loo",
    proxy_model: str | None = None,
    max_new_tokens: int = 64,
    db: str | Path | RunStore | None = None,
    name: str = "attribute_many",
    ray: str | bool | None = None,
    workers: int | None = None,
    threads: int | None = None,
    **params: Any,
) -> Iterator[RowResult]:
    """Attribute many (context, question[, response]) rows; an iterator of :class:`RowResult`.

    ``rows``: dicts (``context``, ``question``, optional ``response``, ``id``, ``gold``) or a JSONL /
    CSV / Parquet path. With ``db`` (a file or a :class:`RunStore`) the rows are stored as batch
    ``name`` and a rerun skips those done; without it nothing is kept. ``ray=True`` starts a local Ray
    (``workers`` actors of ``threads`` CPU threads each), ``ray="host:port"`` joins a cluster.
    Models are specs (preset, folder, .gguf), as workers load their own.
    """
    batch_rows = read_rows(rows) if isinstance(rows, str | Path) else rows_from_records(rows)
    settings = BatchSettings(model, method, tuple(sorted(params.items())), proxy_model, max_new_tokens)
    store = db if isinstance(db, RunStore) else RunStore(db if db is not None else ":memory:")
    if ray:
        from .ray_executor import RayBackend

        with RayBackend(None if ray is True else str(ray), workers=workers, threads=threads or 1) as backend:
            yield from iter_batch(store, name, batch_rows, settings, backend, source="api")
    else:
        yield from iter_batch(store, name, batch_rows, settings, LocalBackend(threads=threads), source="api")
