"""Batches: attribute every row of a dataset, resumably, with one backend; and :func:`attribute_many`.

A batch is a named set of stored runs, one per input row (the store's unique (batch, row id) index
makes a row impossible to store twice). Running a batch again skips the rows already done with the
same settings (:func:`done_rows`, the one rule for it) and redoes the others (failed ones, and those
in flight when a process was killed), so a killed batch loses at most its rows in flight. A row that
cannot be attributed (empty context, too long for the model's window, ...) is stored as failed with
its message, and the batch goes on.

Rows come from :mod:`.inputs`; where they run is a backend (:mod:`.backends`), which only computes
and hands back outcomes. Only the driver (:func:`iter_batch`) writes the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import faithfulness
from ..api import InputError, check_params
from ..methods import get_method
from ..models import DEFAULT_MODEL
from ..result import AttributionResult
from .app_queue import LocalExecutor, StoreReport
from .backends import Backend, Item, LocalBackend, choose_backend
from .execute import MODEL_LOCK, USER_ERRORS, ModelCache, check_request
from .inputs import BatchRow, read_rows, rows_from_records
from .request import RunRequest
from .store import RunRecord, RunStore, StoreError

__all__ = [
    "BatchSettings",
    "BatchSummary",
    "MeasureSummary",
    "RowResult",
    "attribute_many",
    "done_rows",
    "iter_batch",
    "measure_batch",
    "queue_batch",
    "resumable",
    "resume_batch",
    "row_problem",
    "run_batch",
    "sibling_name",
    "sibling_settings",
]


# -- settings ------------------------------------------------------------------------------------------
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
        """The run of ``row`` with these settings (its key tells whether a stored run already answers it)."""
        return RunRequest.for_method(row.source, row.question, self.model, self.method, dict(self.params),
                                     self.proxy_model, row.response, max_new_tokens=self.max_new_tokens)

    def models(self) -> list[str]:
        """The model specs every row needs (what a backend loads before the first row)."""
        return [self.model] + ([self.proxy_model] if self.proxy_model and get_method(self.method).needs_proxy else [])

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "method": self.method, "params": dict(self.params),
                "proxy_model": self.proxy_model, "max_new_tokens": self.max_new_tokens}


def sibling_name(name: str, method: str) -> str:
    """The batch of ``method`` among the sibling batches of input ``name``: ``NAME-METHOD``."""
    return f"{name}-{method}"


def sibling_settings(methods: Iterable[str], params: Mapping[str, Any], *, model: str = DEFAULT_MODEL,
                     proxy_model: str | None = None, max_new_tokens: int = 64) -> list[BatchSettings]:
    """One :class:`BatchSettings` per method, for sibling batches over one input (``--methods loo,tree``).

    Each method takes the parameters of ``params`` it has (``keep_paragraphs`` goes to hierarchical and
    tree, not to loo); a parameter no listed method has is an :class:`InputError`, as a flag of another
    method is for one batch. Run them in order over one store: the first generates each row's response
    and stores it with its token ids, the others are handed that response (one generation per row).
    """
    methods = list(dict.fromkeys(m.strip() for m in methods if m.strip()))
    if not methods:
        raise InputError("Name at least one method.")
    specs = {m: get_method(m) for m in methods}
    unused = [k for k in params if not any(k in spec.params for spec in specs.values())]
    if unused:
        raise InputError(f"Parameter {', '.join(unused)} applies to none of the methods {', '.join(methods)}.")
    return [BatchSettings(model, m, tuple(sorted((k, v) for k, v in params.items() if k in specs[m].params)),
                          proxy_model, max_new_tokens) for m in methods]


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


def done_rows(store: RunStore, name: str, rows: Iterable[BatchRow], settings: BatchSettings) -> dict[str, str]:
    """Row id -> run id of the rows of batch ``name`` already done *with these settings*.

    The one rule for "already done": the driver skips these rows, the CLI's progress bar leaves them
    out of its total. A row done with other settings (another method, model or parameter) is not done.
    When an id appears twice in the input, its first row decides (the driver skips the later ones).
    """
    stored = store.batch_keys(name)
    done: dict[str, str] = {}
    seen: set[str] = set()
    for row in rows:
        if row.row_id in seen:
            continue
        seen.add(row.row_id)
        status, key, run_id = stored.get(row.row_id, (None, None, None))
        if status == "done" and key == settings.request(row).key:
            done[row.row_id] = run_id
    return done


def row_problem(row: BatchRow, request: RunRequest) -> str | None:
    """Why ``row`` will fail before any model loads (its own read error, else the input checks), or None.

    The one rule for it: the driver stores such a row as failed, the app's preview shows the message.
    """
    if row.error is not None:
        return row.error
    try:
        check_request(request)
    except USER_ERRORS as exc:
        return str(exc)
    return None


def _store_rows(db: RunStore, name: str, rows: list[BatchRow], settings: BatchSettings, source: str,
                summary: BatchSummary, pending: dict[str, BatchRow], items: list[Item]) -> Iterator[RowResult]:
    """Store the batch and its rows to compute (queued and claimed by this process, added to ``pending``
    and ``items``); yield the rows that end here: duplicates, rows already done, rows that cannot run."""
    summary.rows = len(rows)
    db.recover_interrupted()
    db.ensure_batch(name, source=source, settings=settings.to_dict())
    done = done_rows(db, name, rows, settings)
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
        if row.row_id in done:
            record = db.get(done[row.row_id])
            result = RowResult(row.index, row.row_id, "skipped", record.result if record else None,
                               run_id=done[row.row_id])
            summary.count(result)
            yield result
            continue
        todo.append((row, settings.request(row)))

    for row, request in todo:
        record = db.create(request, source=source, batch=name, row_id=row.row_id, row=row.stored())
        message = row_problem(row, request)
        if message is not None:
            db.fail(record.id, message)
            result = RowResult(row.index, row.row_id, "failed", error=message, run_id=record.id)
            summary.count(result)
            yield result
            continue
        db.claim(record.id)
        pending[record.id] = row
        known = StoreReport(db, record.id, request).known_response(request)
        items.append((record.id, request, known))


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
    backend.prepare(settings.models())
    pending: dict[str, BatchRow] = {}
    items: list[Item] = []
    yield from _store_rows(db, name, rows, settings, source, summary, pending, items)  # type: ignore[arg-type]

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


def queue_batch(executor: LocalExecutor, name: str, rows: Iterable[BatchRow], settings: BatchSettings, *,
                source: str = "app") -> BatchSummary:
    """Start batch ``name`` in the app's background worker: store its rows, queue those to compute.

    The same rules as :func:`iter_batch` (rows done with these settings are skipped, rows that cannot
    run are stored as failed at once, the rest stored as queued and claimed by this process, so a server
    restart marks them interrupted), but the rows run in ``executor``'s low-priority batch queue, each as
    one stored run; they end in the store, where the page reads them. Returns the counts so far
    (``skipped``, ``failed``; the queued rows are ``rows - skipped - failed``). A batch whose rows are
    still queued or running here is refused (its rows would be queued twice): stop it first.
    """
    if executor.batch_active(name):
        raise InputError(f"Batch '{name}' is still running; stop it, or choose another name.")
    summary = BatchSummary(name)
    pending: dict[str, BatchRow] = {}
    items: list[Item] = []
    for _ in _store_rows(executor.store, name, list(rows), settings, source, summary, pending, items):
        pass  # each row is counted in the summary
    executor.submit_batch_rows(name, [run_id for run_id, _, _ in items])
    return summary


def resumable(record: RunRecord) -> bool:
    """Whether :func:`resume_batch` runs this stored row again: stopped, interrupted by a restart, or
    failed while running. A row refused before it ran (unclaimed: its input cannot run) stays failed."""
    return record.owner is not None and (record.status in ("cancelled", "failed") or record.interrupted)


def resume_batch(executor: LocalExecutor, name: str) -> int:
    """Queue again the rows of batch ``name`` that :func:`resumable` names, with their stored requests;
    rows done stay done. Works after a server restart: every row's request is in the store. Returns
    how many rows were queued."""
    store = executor.store
    store.recover_interrupted()
    again = []
    for record in store.list(batch=name, limit=10**9):
        if resumable(record):
            fresh = store.create(record.request, source=record.source, batch=name, row_id=record.row_id,
                                 row=record.row)
            store.claim(fresh.id)
            again.append(((record.row or {}).get("index", 0), fresh.id))
    executor.submit_batch_rows(name, [run_id for _, run_id in sorted(again)])
    return len(again)


def run_batch(store: RunStore, name: str, rows: Iterable[BatchRow], settings: BatchSettings,
              backend: Backend | None = None, *, source: str = "batch",
              on_row: Callable[[RowResult, BatchSummary], None] | None = None) -> BatchSummary:
    """:func:`iter_batch` to the end; returns the counts (``on_row`` sees every row as it ends)."""
    summary = BatchSummary(name)
    for row in iter_batch(store, name, rows, settings, backend, source=source, summary=summary):
        if on_row is not None:
            on_row(row, summary)
    return summary


# -- faithfulness measures ---------------------------------------------------------------------------
@dataclass
class MeasureSummary:
    """Counts of a measuring pass over a batch: rows measured now, already measured, failed."""

    name: str
    measured: int = 0
    skipped: int = 0
    failed: int = 0
    forward_passes: int = 0
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        return (f"measures of batch '{self.name}': {self.measured} rows measured ({self.forward_passes} forward "
                f"passes), {self.skipped} already measured, {self.failed} failed, in {self.seconds:.1f} s")


def measure_batch(store: RunStore, name: str, measures: Iterable[str] = faithfulness.MEASURES, *,
                  models: ModelCache | None = None, masks: int = faithfulness.LDS_MASKS,
                  on_row: Callable[[str, MeasureSummary], None] | None = None) -> MeasureSummary:
    """Add the faithfulness ``measures`` to every done row of batch ``name`` that lacks them; resumable.

    Each row is re-scored on its own target model (in this process, whatever backend attributed it),
    with the generated response's token ids where the store has them, and stored as soon as it is
    measured, so a stopped pass loses at most one row. The masked log-probs go to the store's cache,
    shared by the row's sibling batches.
    """
    measures = faithfulness.parse_measures(measures)
    models = models or ModelCache()
    summary = MeasureSummary(name)
    start = time.perf_counter()
    for row_id, (status, _key, run_id) in store.batch_keys(name).items():
        if status != "done":
            continue
        try:
            record = store.get(run_id)
            result = record.result if record is not None else None
        except (StoreError, ValueError) as exc:  # a damaged run: named, and the others are measured
            summary.failed += 1
            summary.messages.append(f"Row {row_id}: not measured: {exc}")
            continue
        if result is None or faithfulness.measured(result, measures, masks):
            summary.skipped += 1
            continue
        r = record.request
        try:
            lm = models.get(r.model.strip())
            response = store.known_response(r.model, r.context, r.question, result.response)
            with MODEL_LOCK:
                values = faithfulness.measure(result, faithfulness.scorer_for(result, lm, response), measures,
                                              masks=masks, cache=store)
        except USER_ERRORS as exc:
            summary.failed += 1
            summary.messages.append(f"Row {row_id}: not measured: {exc}")
            continue
        store.update_result(run_id, faithfulness.with_measures(result, values))
        summary.measured += 1
        summary.forward_passes += values["measures_passes"]
        summary.seconds = time.perf_counter() - start
        if on_row is not None:
            on_row(row_id, summary)
    summary.seconds = time.perf_counter() - start
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
    JSON / CSV / Parquet path. With ``db`` (a file or a :class:`RunStore`) the rows are stored as batch
    ``name`` and a rerun skips those done; without it nothing is kept. ``ray=True`` starts a local Ray
    (``workers`` actors of ``threads`` CPU threads each), ``ray="host:port"`` joins a cluster.
    Models are specs (preset, folder, .gguf), as workers load their own.
    """
    backend = choose_backend(ray, workers, threads)
    batch_rows = read_rows(rows) if isinstance(rows, str | Path) else rows_from_records(rows)
    settings = BatchSettings(model, method, tuple(sorted(params.items())), proxy_model, max_new_tokens)
    store = db if isinstance(db, RunStore) else RunStore(db if db is not None else ":memory:")
    with backend:
        yield from iter_batch(store, name, batch_rows, settings, backend, source="api")
