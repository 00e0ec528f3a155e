"""A second browser tab queued behind the first, seen in chromium: it waits in line, then gets the same
estimate-first view as a run that never waited (issue 19: "works for a second browser tab queued behind
the first"). Two independent sessions (browser contexts) on one served app, real SmolLM2-135M."""

from __future__ import annotations

import re
import time

import pytest
from pagetools import RUN_TIMEOUT_MS, load_example, screenshot, wait_idle

from attribot_core.examples import get_example
from attribot_core.runs import RunStore

pytestmark = pytest.mark.browser

SLOW, QUICK = get_example("quillfeather"), get_example("lighthouse")
TAG = f"(queued tab {time.time_ns()})"  # new inputs: no stored result answers them at once
FIRST, SECOND = f"Mira Orrin founded it. {TAG}", f"It was first lit in 1874. {TAG}"
# every live span the page ever drew, recorded as the DOM changes (a poll redraws the panel twice a second)
RECORD_KINDS = """() => {
    window.__kinds = new Set();
    new MutationObserver(() => document.querySelectorAll('.ab-live .ab-span')
        .forEach(e => window.__kinds.add(e.dataset.kind))).observe(document.body, {childList: true, subtree: true});
}"""


def fill(tab, example, context: str, response: str, method: str) -> None:
    """Load a built-in example in ``tab``, set its context, a fixed response and the method."""
    tab.get_by_role("button", name="Run", exact=True).wait_for(timeout=60_000)
    load_example(tab, example)
    tab.get_by_label("Context", exact=True).fill(context)
    tab.get_by_label("Context", exact=True).press("Control+Enter")
    tab.get_by_label("Response (optional)").fill(response)
    tab.get_by_label("Response (optional)").press("Control+Enter")
    wait_idle(tab)
    tab.get_by_role("combobox", name="Method").click()
    tab.get_by_role("option", name=method).click()
    wait_idle(tab)


def test_a_run_queued_behind_another_tab_starts_with_the_estimate_then_ends_exact(
        page, browser, app_server, run_db, artifacts):
    url, _ = app_server
    page.goto(url)
    fill(page, SLOW, "\n\n".join([SLOW.context] * 4), FIRST, "loo-naive · Exact LOO (naive)")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text(re.compile(r"forward pass [1-9]\d* /")).first.wait_for(timeout=RUN_TIMEOUT_MS)

    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        tab = other.new_page()
        tab.set_default_timeout(30_000)
        tab.goto(url)
        fill(tab, QUICK, QUICK.context, SECOND, "loo · Exact LOO (KV-cache reuse)")
        tab.evaluate(RECORD_KINDS)
        tab.get_by_role("button", name="Run", exact=True).click()
        tab.wait_for_function(  # progress texts are Markdown-escaped: word joiners sit between some characters
            "() => document.body.innerText.replaceAll('\\u2060', '').includes('Queued: waiting behind 1 other run')",
            timeout=RUN_TIMEOUT_MS)
        screenshot(tab, artifacts, "50-second-tab-queued.png", full=False)

        page.locator(".st-key-stop_attribute button").first.click()  # the first tab stops its run: the queue moves on
        tab.locator(".ab-heatmap .ab-estimate-summary").first.wait_for(timeout=RUN_TIMEOUT_MS)
        wait_idle(tab)
        assert "estimate" in tab.evaluate("() => [...window.__kinds]")  # drawn live, before the exact scores
        summary = tab.locator(".ab-heatmap .ab-estimate-summary").first.inner_text()
        assert "Spearman" in summary and "top-3 overlap" in summary
        screenshot(tab, artifacts, "51-second-tab-done.png")
    finally:
        other.close()
    by_response = {r.request.response: r for r in RunStore(run_db).list() if TAG in (r.request.response or "")}
    assert by_response[FIRST].status == "cancelled" and by_response[SECOND].status == "done"
    assert by_response[SECOND].result.extra["estimate"]["passes"] == 1
