"""The app's run queue: one background worker thread of this process runs submitted runs in order.

The app asks the queue (:class:`LocalExecutor`) to ``submit``, ``cancel`` and tell the
``queue_position`` of runs, then reads the store to show them; nothing about a run lives in a page or
a session, so leaving the page, closing the tab or another session's activity never stops or restarts
a run.

Batches started from the browser queue here too, one stored run per row (:func:`.batch.queue_batch`),
in a second, lower-priority queue: the worker takes the next interactive run (Attribute, Compare,
Learn) whenever one waits, and a batch row only when none does. So a single run waits for at most the
one batch row in progress, never behind a 500-row batch, and the batch goes on when the worker is idle.
The command line's ``attribot batch`` does not queue here: it drives its own backends (:mod:`.backends`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from ..generate import prefill
from ..kv import KeptPass
from ..prompt import Response
from .execute import MODEL_LOCK, USER_ERRORS, Cancelled, ModelCache, RunReport, execute
from .request import RunRequest
from .store import RunRecord, RunStore

__all__ = ["LocalExecutor", "StoreReport", "stored_result"]

log = logging.getLogger("attribot.runs")


def stored_result(store: RunStore, request: RunRequest) -> RunRecord | None:
    """A finished run that answers ``request``: the identical request, or the same inputs whose
    response was generated then (a "generate" request) or written out now (its generated text)."""
    done = store.find_done(request)
    if done is not None:
        return done
    if request.generates:
        generated = store.generated(request.model, request.context, request.question, request.max_new_tokens)
        return store.find_done(request.but(response=generated.text)) if generated is not None else None
    as_generated = store.find_done(request.but(response=""))
    if as_generated is not None and as_generated.result is not None and \
            as_generated.result.response == request.response:
        return as_generated
    return None


class StoreReport(RunReport):
    """Turns what a run reports into store writes (progress, phase, partial scores, generated response)."""

    def __init__(self, store: RunStore, run_id: str, request: RunRequest) -> None:
        self.store, self.run_id, self.request = store, run_id, request

    def phase(self, text: str) -> None:
        self.store.set_phase(self.run_id, text)

    def progress(self, done: int, total: int, eta_s: float | None = None) -> None:
        self.store.progress(self.run_id, done, total, eta_s=eta_s)

    def partial(self, level: str, scores: dict[int, float]) -> None:
        self.store.add_partial(self.run_id, level, scores)

    def partial_response(self, text: str) -> None:
        self.store.set_partial_response(self.run_id, text)

    def generated(self, response: Response) -> None:
        r = self.request
        self.store.put_response(r.model, r.context, r.question, r.max_new_tokens, response)

    def known_response(self, request: RunRequest) -> Response | None:
        if request.generates:
            return self.store.generated(request.model, request.context, request.question, request.max_new_tokens)
        return self.store.known_response(request.model, request.context, request.question, request.response)


def run_one(store: RunStore, record: RunRecord, models: ModelCache, cancel: threading.Event, *,
            estimate_first: bool = False, prefilled: KeptPass | None = None) -> None:
    """Execute a stored queued run and store how it ended (done, failed with its message, cancelled).

    ``estimate_first``: report the one-pass estimate before the exact passes; ``prefilled``: the prompt's keys
    and values computed ahead (see :func:`.execute.execute` for both)."""
    store.start(record.id)
    try:
        result = execute(record.request, models, StoreReport(store, record.id, record.request), cancel,
                         on_wait=lambda s: store.set_phase(record.id, f"Waiting for the model ({s:.0f} s) …"),
                         estimate_first=estimate_first, prefilled=prefilled)
    except Cancelled:
        store.cancel(record.id)
    except USER_ERRORS as exc:
        store.fail(record.id, str(exc))
    except Exception as exc:  # a bug: keep it in the log and in the run, never as a traceback on a page
        log.exception("run %s failed", record.id)
        store.fail(record.id, f"Something went wrong ({type(exc).__name__}): {str(exc)[:300]}")
    else:
        store.finish(record.id, result)


def _prefill_key(model: str, context: str, question: str) -> tuple[str, str, str]:
    """What a prefill is for: the prompt of these inputs on this model."""
    return model.strip(), context, question


class LocalExecutor:
    """One background worker thread that runs queued runs one at a time: interactive runs in submission
    order, and batch rows (lower priority) in theirs when no interactive run waits.

    While no run waits, the worker computes ahead the prompt of the inputs a page shows (:meth:`prepare`),
    so that a Run of them starts its answer after one step rather than after a pass over the prompt.
    """

    def __init__(self, store: RunStore, models: ModelCache | None = None, *, estimate_first: bool = False) -> None:
        """``estimate_first``: interactive runs show the one-pass estimate before their exact scores (the
        app turns it on; batch rows are not watched live and skip it)."""
        self.store = store
        self.models = models or ModelCache()
        self.estimate_first = estimate_first
        self._queue: deque[str] = deque()
        self._batch_rows: deque[tuple[str, str]] = deque()  # (run id, batch name), after every interactive run
        self._running: str | None = None
        self._running_batch: str | None = None
        self._cancel: dict[str, threading.Event] = {}
        self._wanted: RunRequest | None = None  # inputs to prefill when idle (prepare), the latest only
        # (_prefill_key, its pass, whether it covers the whole prompt or was stopped after some chunks)
        self._prefilled: tuple[tuple[str, str, str], KeptPass, bool] | None = None
        self._prefilling: tuple[str, str, str] | None = None  # the key of the prefill in progress
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="attribot-runs", daemon=True)
        self._thread.start()

    def submit(self, request: RunRequest, *, source: str = "app", force: bool = False) -> RunRecord:
        """The run for ``request``: a stored finished one (unless ``force``), the same one already queued
        or running here, or a new queued run."""
        if not force:
            done = stored_result(self.store, request)
            if done is not None:
                return done
            with self._cv:
                for run_id in [self._running, *self._queue]:
                    record = self.store.get(run_id) if run_id else None
                    if record is not None and record.request == request:
                        return record
        record = self.store.create(request, source=source)
        with self._cv:
            self._cancel[record.id] = threading.Event()
            self._queue.append(record.id)
            self._cv.notify()
        return record

    def prepare(self, request: RunRequest) -> None:
        """Compute ahead the keys and values of ``request``'s prompt (:func:`~attribot_core.generate.prefill`)
        while a page shows its inputs: a Run of them then shows the answer's first token after one step,
        and the estimate of a given response after a pass over its rows only.

        Only the latest inputs are kept, only while no run waits (the prefill stops after the chunk in
        progress when one is submitted), and only on a model already loaded (it never loads one). Each
        prefill starts from the one before where their prompts agree (an edited question after a long
        context computes only the question; one stopped early, asked for again, goes on where it stopped).
        Inputs with no question yet get the part of their prompt before it: the context is computed while
        the question is typed.
        """
        key = _prefill_key(request.model, request.context, request.question)
        with self._cv:
            # a page asks again at every rerun: the same inputs neither restart nor interrupt their prefill
            if key != self._prefilling and not self._prefilled_whole(key):
                self._wanted = request
                self._cv.notify()

    def _prefilled_whole(self, key: tuple[str, str, str]) -> bool:
        kept = self._prefilled
        return kept is not None and kept[0] == key and kept[2]

    def prefilled(self, model: str, context: str, question: str) -> KeptPass | None:
        """The prefill kept for these inputs (None when it was for others or there is none)."""
        kept = self._prefilled
        return kept[1] if kept is not None and kept[0] == _prefill_key(model, context, question) else None

    def _prefill(self, request: RunRequest) -> None:
        """The worker's prefill of ``request``'s prompt (see :meth:`prepare`); it replaces the kept one."""
        key = _prefill_key(request.model, request.context, request.question)
        lm = self.models.loaded(key[0])
        if lm is None or self._prefilled_whole(key):
            return
        if not MODEL_LOCK.acquire(blocking=False):  # a batch of this process holds the model
            return
        self._prefilling = key
        stopped: list[bool] = []

        def should_stop() -> bool:
            stopped.append(self._interrupted())
            return stopped[-1]

        earlier = self._prefilled[1] if self._prefilled is not None else None
        try:
            kept = prefill(lm, request.context, request.question, start=earlier, should_stop=should_stop)
        except Exception:  # a prefill only saves time: never let it stop the worker
            log.warning("prefill skipped", exc_info=True)
            return
        finally:
            self._prefilling = None
            MODEL_LOCK.release()
        if kept is not None:
            self._prefilled = (key, kept, not any(stopped))

    def _interrupted(self) -> bool:
        return bool(self._queue or self._batch_rows) or self._wanted is not None

    def submit_batch_rows(self, batch: str, run_ids: list[str]) -> None:
        """Queue stored runs of batch ``batch`` (made and claimed by :func:`.batch.queue_batch`) behind
        every interactive run, in order."""
        with self._cv:
            self._batch_rows.extend((run_id, batch) for run_id in run_ids)
            self._cv.notify()

    def cancel(self, run_id: str) -> None:
        """Stop a run: a queued one at once, a running one between two forward passes (or tokens)."""
        with self._cv:
            queued = run_id in self._queue or any(r == run_id for r, _ in self._batch_rows)
            if queued:
                self._queue = deque(r for r in self._queue if r != run_id)
                self._batch_rows = deque(item for item in self._batch_rows if item[0] != run_id)
                self._cancel.pop(run_id, None)
            event = self._cancel.get(run_id)
        if queued:
            self.store.cancel(run_id)
        elif event is not None:
            event.set()

    def cancel_batch(self, batch: str, message: str = "Stopped by the user; Resume runs it again.") -> int:
        """Stop batch ``batch``: its queued rows are stored as cancelled at once, its running row stops
        between two forward passes. Returns how many rows were stopped."""
        with self._cv:
            dropped = [r for r, b in self._batch_rows if b == batch]
            self._batch_rows = deque(item for item in self._batch_rows if item[1] != batch)
            event = self._cancel.get(self._running) if self._running_batch == batch and self._running else None
        for run_id in dropped:
            self.store.cancel(run_id, message)
        if event is not None:
            event.set()
        return len(dropped) + (event is not None)

    def batch_active(self, batch: str) -> bool:
        """Whether rows of batch ``batch`` are queued or running in this executor."""
        with self._cv:
            return self._running_batch == batch or any(b == batch for _, b in self._batch_rows)

    def queue_position(self, run_id: str) -> int | None:
        """0 while running, N when N runs go before it, None when it is not waiting here."""
        with self._cv:
            running = self._running is not None
            if run_id == self._running:
                return 0
            if run_id in self._queue:
                return self._queue.index(run_id) + running
            for i, (queued, _) in enumerate(self._batch_rows):
                if queued == run_id:
                    return len(self._queue) + i + running
        return None

    def busy(self) -> bool:
        with self._cv:
            return self._running is not None or bool(self._queue) or bool(self._batch_rows)

    def _next(self) -> tuple[str, str | None]:
        """The next run to work on (the lock held): the oldest interactive run, else the oldest batch row."""
        if self._queue:
            return self._queue.popleft(), None
        run_id, batch = self._batch_rows.popleft()
        self._cancel[run_id] = threading.Event()
        return run_id, batch

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._batch_rows and self._wanted is None:
                    self._cv.wait()
                wanted = None
                if not self._queue and not self._batch_rows:  # idle: compute ahead what a page shows
                    wanted, self._wanted = self._wanted, None
                else:
                    run_id, self._running_batch = self._next()
                    self._running = run_id
                    cancel = self._cancel[run_id]
            if wanted is not None:
                self._prefill(wanted)
                continue
            try:
                record = self.store.get(run_id)
                if record is not None:
                    run_one(self.store, record, self.models, cancel,
                            estimate_first=self.estimate_first and self._running_batch is None,
                            # whatever inputs it was for: the run starts from the prompt they share (the
                            # context, when only the question differs)
                            prefilled=self._prefilled[1] if self._prefilled is not None else None)
            except Exception:  # the store itself failed: keep the worker alive for the next run
                log.exception("run %s could not be stored", run_id)
            finally:
                with self._cv:
                    self._running = self._running_batch = None
                    self._cancel.pop(run_id, None)
