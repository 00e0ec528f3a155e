"""The app's side of runs, without a browser: what a poll of a running run draws."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from attribot_core.runs import RunRequest, RunStore
from attribot_core.runs.execute import ESTIMATE_LEVEL, FIRST_ORDER_LEVEL, FIRST_ORDER_QR_LEVEL
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


def _seen_after(store: RunStore, run_id: str, delay: float, change) -> runs.RunRecord:
    """What a poll draws when ``change`` happens to the run ``delay`` s after the poll starts."""
    timer = threading.Timer(delay, change)
    timer.start()
    try:
        return runs._first_news(store.get(run_id), within=30.0)
    finally:
        timer.cancel()


def test_a_poll_of_a_run_being_generated_draws_its_first_text_as_soon_as_it_is_stored(run_store):
    run_id = _started(run_store)
    seen = _seen_after(run_store, run_id, 0.3, lambda: run_store.set_partial_response(run_id, "Ada"))
    assert seen.partial_response == "Ada"  # the poll waited for it instead of drawing an empty line


@pytest.mark.parametrize("case", ["fixed response", "generated, passes started", "estimate shown"])
def test_a_poll_of_a_run_with_no_exact_score_yet_draws_its_next_scores_as_soon_as_they_are_stored(run_store, case):
    run_id = _started(run_store, response="" if case == "generated, passes started" else "Babbage.")
    if case == "generated, passes started":
        run_store.set_partial_response(run_id, "Babbage.")
        run_store.progress(run_id, 0, 5)
    if case == "estimate shown":
        run_store.add_partial(run_id, ESTIMATE_LEVEL, {0: 0.5})
    seen = _seen_after(run_store, run_id, 0.3, lambda: run_store.add_partial(run_id, "sentence", {0: 1.5}))
    assert seen.partial["sentence"] == {0: 1.5}


def test_a_poll_that_waits_for_the_first_exact_score_draws_the_estimate_when_it_comes_first(run_store):
    run_id = _started(run_store, response="Babbage.")
    seen = _seen_after(run_store, run_id, 0.3, lambda: run_store.add_partial(run_id, ESTIMATE_LEVEL, {0: 0.5}))
    assert seen.partial == {ESTIMATE_LEVEL: {0: 0.5}}


def test_a_poll_after_the_estimate_draws_the_first_order_preview_as_soon_as_it_replaces_it(run_store):
    run_id = _started(run_store, response="Babbage.")
    run_store.add_partial(run_id, ESTIMATE_LEVEL, {0: 0.5})
    seen = _seen_after(run_store, run_id, 0.3, lambda: run_store.add_partial(run_id, FIRST_ORDER_LEVEL, {0: -0.25}))
    assert seen.partial[FIRST_ORDER_LEVEL] == {0: -0.25}
    drawn = runs.live_result(seen).extra["estimate"]
    assert drawn == {"by": FIRST_ORDER_LEVEL, "sentences": [-0.25]}  # the later preview is the one drawn
    assert runs.live_level(seen) == "sentence"


def test_the_live_view_draws_the_preview_closest_to_exact_and_paragraphs_only_without_one(run_store):
    run_id = _started(run_store, response="Babbage.")
    run_store.add_partial(run_id, "paragraph", {0: 0.75})
    assert runs.live_level(run_store.get(run_id)) == "paragraph"  # a paragraph round's scores, nothing else yet
    for level, score in ((ESTIMATE_LEVEL, 0.5), (FIRST_ORDER_QR_LEVEL, 0.25), (FIRST_ORDER_LEVEL, -0.25)):
        run_store.add_partial(run_id, level, {0: score})
        seen = run_store.get(run_id)
        assert runs.live_level(seen) == "sentence"  # every sentence previewed: they are drawn
        assert runs.live_result(seen).extra["estimate"] == {"by": level, "sentences": [score]}


def test_a_poll_draws_at_once_the_estimate_stored_since_the_page_last_drew_the_run(run_store, monkeypatch):
    run_id = _started(run_store)
    run_store.set_partial_response(run_id, "Babbage.")
    drawn = runs._milestones(run_store.get(run_id))  # the page drew the answer still being generated
    run_store.progress(run_id, 0, 5)  # the answer ended: its passes are planned
    run_store.add_partial(run_id, ESTIMATE_LEVEL, {0: 0.5})  # and the estimate came before this poll
    record = run_store.get(run_id)
    reads = []
    monkeypatch.setattr(runs, "store", lambda: reads.append(1) or run_store)
    assert runs._first_news(record, within=3.0, drawn=drawn) is record and not reads  # not held for the exact score
    assert runs._first_news(record, within=0.2) == record and reads  # drawn already: the poll waits for more


@pytest.mark.parametrize("case", ["text shown", "scores shown", "queued behind another", "finished"])
def test_a_poll_draws_at_once_what_it_finds_outside_the_waits_for_the_first_text_and_scores(run_store, monkeypatch,
                                                                                            case):
    run_id = _started(run_store)
    if case == "text shown":
        run_store.set_partial_response(run_id, "Ada")
    elif case == "scores shown":
        run_store.progress(run_id, 1, 5)
        run_store.add_partial(run_id, "sentence", {0: 1.5})
    elif case == "queued behind another":
        run_id = run_store.create(RunRequest.for_method("Ada met Babbage.", "When?", "m", "loo")).id
    elif case == "finished":
        run_store.cancel(run_id)
    record = run_store.get(run_id)
    if case == "queued behind another":  # submitted 5 s ago and still queued: the worker is busy elsewhere
        record = replace(record, created=record.created - 5.0)
    reads = []
    monkeypatch.setattr(runs, "store", lambda: reads.append(1) or run_store)
    assert runs._first_news(record, within=30.0) is record and not reads


def test_run_waits_for_the_first_text_before_the_page_draws_and_no_longer_than_its_limit(run_store):
    """The Run button's wait (:func:`runs.first_news`): the page draws once the first text is stored, or at
    the limit when the run has nothing yet (a model still loading)."""
    import time

    run_id = _started(run_store)
    group = runs.Group("attribute", {"run": run_id})
    timer = threading.Timer(0.3, lambda: run_store.set_partial_response(run_id, "Ada"))
    timer.start()
    start = time.monotonic()
    runs.first_news(group, within=30.0)
    assert 0.25 < time.monotonic() - start < 5.0  # it waited for the text, not for the limit
    timer.cancel()
    quiet = runs.Group("attribute", {"run": _started(run_store)})
    start = time.monotonic()
    runs.first_news(quiet, within=0.3)
    assert 0.25 < time.monotonic() - start < 2.0  # nothing came: the page draws at the limit
