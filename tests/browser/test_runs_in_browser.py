"""Runs in the background, seen in chromium: leave the page mid-run and come back; Stop from another page.

Steps of one visit, in file order, on the real SmolLM2-135M; the run database is the
served app's own file, read here to check what was stored.
"""

from __future__ import annotations

import re
import time

import pytest
from pagetools import RUN_TIMEOUT_MS, go_to, open_app, screenshot, start_slow_run, wait_idle

from attribot_core.examples import get_example
from attribot_core.runs import RunStore

pytestmark = pytest.mark.browser

EXAMPLE = get_example("quillfeather")
# Responses no earlier step used: an identical request would return its stored result at once, with no run to watch.
TAG = f"(browser run {time.time_ns()})"
FINISHED, STOPPED = f"Mira Orrin founded it. {TAG}", f"Orrin & Daughters makes it. {TAG}"


def _store_a_finished_run(run_db) -> str:
    """A finished run written straight into the served app's database (as the CLI's `--db` would)."""
    from attribot_core import AttributionResult, SpanScore, segment
    from attribot_core.runs import RunRequest

    doc = segment(EXAMPLE.context)
    result = AttributionResult(
        context=EXAMPLE.context, question=f"Who founded it? {TAG}", response="Mira Orrin.", method="loo",
        model="smollm2-135m", settings={"paragraphs": True}, log_prob_full=-3.0,
        paragraphs=tuple(SpanScore(p.index, p.start, p.end, p.text, 0.1, "smollm2-135m") for p in doc.paragraphs),
        sentences=tuple(SpanScore(x.index, x.start, x.end, x.text, 0.2, "smollm2-135m", x.parent)
                        for x in doc.sentences),
        forward_passes={"smollm2-135m": 1}, timings={"total_s": 0.1})
    store = RunStore(run_db)
    run = store.create(RunRequest(result.context, result.question, "smollm2-135m", "loo", (("paragraphs", True),)),
                       source="cli")
    store.start(run.id)
    store.finish(run.id, result)
    return run.id


def passes_done(page) -> int:
    text = page.get_by_text(re.compile(r"forward pass \d+ /")).first.inner_text()
    return int(re.search(r"forward pass (\d+) /", text).group(1))


def test_leaving_the_page_mid_run_neither_stops_nor_restarts_it(page, app_server, run_db, artifacts):
    url, _ = app_server
    open_app(page, url)
    start_slow_run(page, EXAMPLE, FINISHED)
    page.get_by_text(re.compile(r"forward pass ([2-9]|\d\d) /")).first.wait_for(timeout=RUN_TIMEOUT_MS)
    # the progress line and the live heatmap are drawn from one poll of the store, but a pass may be counted
    # before its score is written: wait (do not sample once) for a heatmap filling in, sentence by sentence
    page.wait_for_function(
        """() => {
            const signs = [...document.querySelectorAll('.ab-live .ab-span')].map(e => e.dataset.sign);
            return signs.includes('pending') && signs.some(s => ['pos', 'neg', 'zero'].includes(s));
        }""", timeout=RUN_TIMEOUT_MS)
    screenshot(page, artifacts, "10-live-heatmap.png")
    before = passes_done(page)
    go_to(page, "Drill-down")
    sidebar = page.locator('[data-testid="stSidebar"]')
    # still running (the sidebar counts it), or finished meanwhile and charted (plotly draws late: wait for either)
    sidebar.get_by_text("Attribute (0/1 runs)").or_(page.locator(".js-plotly-plot")).first.wait_for()
    go_to(page, "Attribute")
    progress = page.get_by_text(re.compile(r"forward pass \d+ /"))
    if progress.count():  # still running (on an idle machine it may have finished meanwhile)
        assert passes_done(page) >= before  # it went on while we were away; it did not start again
    page.locator(".ab-heatmap .ab-span").first.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    assert page.locator(".ab-live").count() == 0
    runs = [r for r in RunStore(run_db).list() if r.request.response == FINISHED]
    assert [r.status for r in runs] == ["done"]  # one run, finished once
    assert runs[0].result.scores() and FINISHED in page.locator(".ab-response").inner_text()
    screenshot(page, artifacts, "11-after-coming-back.png")


def test_stop_in_the_sidebar_of_another_page_cancels_the_run(page, run_db, artifacts):
    start_slow_run(page, EXAMPLE, STOPPED)
    page.get_by_text(re.compile(r"forward pass [1-9]\d* /")).first.wait_for(timeout=RUN_TIMEOUT_MS)
    go_to(page, "Learn")
    page.locator(".st-key-side_stop_attribute button").filter(visible=True).click()
    page.get_by_text("Stopped. The run is kept in History as cancelled").first.wait_for(timeout=30_000)
    wait_idle(page)
    deadline = time.monotonic() + 60  # Stop acts between two forward passes: the worker ends it moments later
    while (stopped := [r for r in RunStore(run_db).list() if r.request.response == STOPPED])[0].active:
        assert time.monotonic() < deadline, "the stopped run did not end"
        time.sleep(0.2)
    assert [r.status for r in stopped] == ["cancelled"]
    assert page.locator(".st-key-side_stop_attribute button").count() == 0


def test_history_shows_the_stored_runs(page, app_server, run_db, artifacts):
    stored = _store_a_finished_run(run_db)  # this test's own run: it does not rely on the steps above
    page.goto(app_server[0])
    go_to(page, "History")
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    shown = page.get_by_text(re.compile(r"(\d+) run\(s\) shown of (\d+) stored")).first
    total = int(re.search(r"shown of (\d+) stored", shown.inner_text()).group(1))
    assert total == RunStore(run_db).count() and RunStore(run_db).get(stored).status == "done"
    screenshot(page, artifacts, "12-history.png")
