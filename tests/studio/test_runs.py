"""The app's side of runs, without a browser: what a poll of a running run draws."""

from __future__ import annotations

import threading

import pytest

from attribot_core.runs import RunRequest, RunStore
from studio import runs


@pytest.fixture
def run_store(tmp_path, monkeypatch) -> RunStore:
    """A real SQLite store standing in for the executor's (the poll reads runs from it)."""
    store = RunStore(tmp_path / "runs.sqlite")
    monkeypatch.setattr(runs, "store", lambda: store)
    return store


def _started(store: RunStore, response: str = "") -> str:
    record = store.create(RunRequest.for_method("Ada met Babbage.", "Who?", "m", "loo", response=response))
    store.start(record.id)
    return record.id


def test_a_poll_of_a_run_being_generated_draws_its_first_text_as_soon_as_it_is_stored(run_store):
    run_id = _started(run_store)
    timer = threading.Timer(0.3, run_store.set_partial_response, (run_id, "Ada"))
    timer.start()
    try:
        seen = runs._first_text(run_store.get(run_id), within=30.0)
    finally:
        timer.cancel()
    assert seen.partial_response == "Ada"  # the poll waited for it instead of drawing an empty line


@pytest.mark.parametrize("case", ["text shown", "fixed response", "passes started", "finished"])
def test_a_poll_draws_at_once_what_it_finds_outside_the_wait_for_the_first_token(run_store, monkeypatch, case):
    run_id = _started(run_store, response="Babbage." if case == "fixed response" else "")
    if case == "text shown":
        run_store.set_partial_response(run_id, "Ada")
    elif case == "passes started":
        run_store.progress(run_id, 0, 5)
    elif case == "finished":
        run_store.cancel(run_id)
    record = run_store.get(run_id)
    reads = []
    monkeypatch.setattr(runs, "store", lambda: reads.append(1) or run_store)
    assert runs._first_text(record, within=30.0) is record and not reads
