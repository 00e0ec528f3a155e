"""F5 in chromium: mid-run the reloaded page is re-attached to the run's progress; after it, the result is
still there; the URL names the run from any page.

Steps of one visit, in file order, on the real SmolLM2-135M.
"""

from __future__ import annotations

import re
import time

import pytest
from pagetools import RUN_TIMEOUT_MS, go_to, open_app, screenshot, start_slow_run, wait_idle

from attribot_core.examples import get_example

pytestmark = pytest.mark.browser

EXAMPLE = get_example("quillfeather")
RESPONSE = f"Mira Orrin founded it. (reload {time.time_ns()})"  # new: no stored result to return at once
PROGRESS = re.compile(r"forward pass \d+ /")


def run_param(page) -> str | None:
    match = re.search(r"[?&]run=([0-9a-f]+)", page.url)
    return match.group(1) if match else None


def test_reload_mid_run_shows_its_progress_again(page, app_server, artifacts):
    url, _ = app_server
    open_app(page, url)
    start_slow_run(page, EXAMPLE, RESPONSE)  # ~50 passes
    page.get_by_text(re.compile(r"forward pass ([1-9]|\d\d) /")).first.wait_for(timeout=RUN_TIMEOUT_MS)
    page.wait_for_function("() => /[?&]run=[0-9a-f]+/.test(location.search)")
    run_id = run_param(page)
    page.reload()
    page.get_by_text(PROGRESS).first.wait_for(timeout=60_000)  # re-attached to the run, not an empty page
    assert run_param(page) == run_id
    screenshot(page, artifacts, "30-reloaded-mid-run.png", full=False)
    page.locator(".ab-heatmap .ab-span").first.wait_for(timeout=RUN_TIMEOUT_MS)  # it ends as the result
    wait_idle(page)
    assert RESPONSE in page.locator(".ab-response").inner_text()


def test_reload_after_the_run_keeps_the_result_and_the_url_names_it_on_every_page(page, artifacts):
    run_id = run_param(page)
    page.reload()
    page.locator(".ab-heatmap .ab-span").first.wait_for(timeout=60_000)
    wait_idle(page)
    assert RESPONSE in page.locator(".ab-response").inner_text()
    assert run_id
    page.locator("code").filter(has_text=f"/?run={run_id}").first.wait_for()  # the link to copy
    screenshot(page, artifacts, "31-reloaded-after-run.png", full=False)
    go_to(page, "History")
    page.wait_for_function("id => location.search.includes('run=' + id)", arg=run_id)
    page.reload()
    page.get_by_role("heading", name="History").first.wait_for()
    wait_idle(page)
    go_to(page, "Drill-down")
    # the reloaded session has the result on every page (plotly draws after the script run: wait, do not sample)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
