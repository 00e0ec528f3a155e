"""Batches in the app's worker: rows queue behind interactive runs, stop, and resume (also after a restart)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from attribot_core.examples import EXAMPLES
from attribot_core.runs import MODEL_LOCK, LocalExecutor, ModelCache, RunRequest, RunStore
from attribot_core.runs.batch import BatchSettings, done_rows, queue_batch, resume_batch
from attribot_core.runs.inputs import rows_from_records

RESPONSE = "It was first lit in 1874."


@pytest.fixture
def executor(tmp_path) -> LocalExecutor:
    return LocalExecutor(RunStore(tmp_path / "runs.sqlite3"), ModelCache())


@pytest.fixture
def settings(tiny_model_dir) -> BatchSettings:
    return BatchSettings(str(tiny_model_dir), "loo")


def rows(n: int, *, bad: bool = False):
    records = [{"id": f"r{i}", "context": EXAMPLES[i % len(EXAMPLES)].context,
                "question": EXAMPLES[i % len(EXAMPLES)].question, "response": RESPONSE} for i in range(n)]
    return rows_from_records(records + ([{"id": "empty", "context": "", "question": "Why?"}] if bad else []))


def settle(store: RunStore, name: str, timeout: float = 120):
    """The batch's runs once none is queued or running."""
    deadline = time.monotonic() + timeout
    while True:
        recs = store.list(batch=name, limit=1000)
        if not any(r.active for r in recs):
            return {r.row_id: r for r in recs}
        assert time.monotonic() < deadline, "the batch did not settle"
        time.sleep(0.05)


def test_a_queued_batch_runs_its_rows_in_the_worker_and_fails_bad_rows_at_once(executor, settings):
    summary = queue_batch(executor, "b", rows(3, bad=True), settings)
    assert (summary.rows, summary.failed, summary.skipped) == (4, 1, 0)
    stored = settle(executor.store, "b")
    assert {k: r.status for k, r in stored.items()} == {"r0": "done", "r1": "done", "r2": "done", "empty": "failed"}
    assert "context is empty" in stored["empty"].error
    again = queue_batch(executor, "b", rows(3, bad=True), settings)  # done rows are skipped, as the CLI's batch does
    assert (again.skipped, again.failed) == (3, 1)


def test_an_interactive_run_goes_before_the_batch_rows_still_waiting(executor, settings):
    with MODEL_LOCK:  # the worker takes the first row and waits for the model: the rest are queued
        queue_batch(executor, "big", rows(5), settings)
        deadline = time.monotonic() + 30
        while not executor.store.list(batch="big", statuses=["running"]):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        single = executor.submit(RunRequest(EXAMPLES[0].context, "Who built it?", settings.model, response=RESPONSE))
        assert executor.queue_position(single.id) == 1  # behind the one row in progress only
    stored = settle(executor.store, "big")
    run = executor.store.get(single.id)
    while run.active:
        time.sleep(0.05)
        run = executor.store.get(single.id)
    batch_starts = sorted(r.started for r in stored.values())
    assert batch_starts[0] < run.started < batch_starts[1]  # one batch row, then the single run, then the others


def test_stop_cancels_the_waiting_rows_and_resume_runs_only_those(executor, settings):
    with MODEL_LOCK:
        queue_batch(executor, "s", rows(4, bad=True), settings)
        assert executor.batch_active("s")
        assert executor.cancel_batch("s") == 4  # three queued rows and the one waiting for the model
    stored = settle(executor.store, "s")
    assert not executor.batch_active("s")
    assert sorted(r.status for r in stored.values()) == ["cancelled"] * 4 + ["failed"]
    assert resume_batch(executor, "s") == 4  # the row that cannot run is not run again
    stored = settle(executor.store, "s")
    assert sorted(r.status for r in stored.values()) == ["done"] * 4 + ["failed"]
    assert resume_batch(executor, "s") == 0


def test_a_batch_still_running_cannot_be_started_twice(executor, settings):
    with MODEL_LOCK:
        queue_batch(executor, "twice", rows(2), settings)
        with pytest.raises(Exception, match="still running"):
            queue_batch(executor, "twice", rows(2), settings)
        executor.cancel_batch("twice")
    settle(executor.store, "twice")


def test_rows_left_by_a_stopped_server_are_resumed_by_the_next_one(tmp_path, settings):
    """A server that died with rows queued: the next server's store marks them interrupted, and Resume
    runs them with their stored requests (the uploaded file is gone by then)."""
    path = tmp_path / "runs.sqlite3"
    store = RunStore(path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    owner = f"{socket.gethostname()}:{dead.stdout.strip()}"
    batch = rows(3)
    store.ensure_batch("old", settings=settings.to_dict())
    for row in batch:
        record = store.create(settings.request(row), source="app", batch="old", row_id=row.row_id, row=row.stored())
        store.claim(record.id, owner)
    store.close()

    restarted = LocalExecutor(RunStore(path), ModelCache())
    assert restarted.store.recover_interrupted() == 3
    assert resume_batch(restarted, "old") == 3
    stored = settle(restarted.store, "old")
    assert {r.status for r in stored.values()} == {"done"}
    assert set(done_rows(restarted.store, "old", batch, settings)) == {"r0", "r1", "r2"}
