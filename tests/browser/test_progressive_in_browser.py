"""Instant, then exact, seen in chromium on the real SmolLM2-135M (it ships estimator weights): the live
heatmap is coloured by the one-pass estimate before the exact passes land, and the finished heatmap
compares the two in one summary line and in every sentence's tooltip."""

from __future__ import annotations

import time

import pytest
from pagetools import RUN_TIMEOUT_MS, load_example, open_app, screenshot, start_slow_run, wait_idle

from attribot_core.examples import get_example
from attribot_core.methods import get_method
from attribot_core.runs import RunStore
from attribot_core.runs.execute import FIRST_ORDER_LEVEL, FIRST_ORDER_MIN_PASSES, FIRST_ORDER_QR_LEVEL, PREVIEW_LEVELS
from attribot_core.segment import segment
from attribot_core.viz.heatmap import estimate_key

pytestmark = pytest.mark.browser

EXAMPLE = get_example("lighthouse")
RESPONSE = f"It was first lit in 1874. (progressive {time.time_ns()})"  # new inputs: no stored result to reuse


def test_the_live_heatmap_shows_the_estimate_then_the_final_one_compares_it_with_exact(
        page, app_server, run_db, artifacts):
    url, _ = app_server
    open_app(page, url)
    load_example(page, EXAMPLE)
    page.get_by_label("Response (optional)").fill(RESPONSE)
    page.get_by_label("Response (optional)").press("Control+Enter")
    wait_idle(page)
    page.get_by_role("combobox", name="Method").click()  # naive LOO: the exact passes take long enough to watch
    page.get_by_role("option", name="loo-naive · Exact LOO (naive)").click()
    wait_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()

    # the whole live heatmap coloured, some of it by the estimate (its exact passes still to land)
    page.wait_for_function(
        """() => {
            const spans = [...document.querySelectorAll('.ab-live .ab-span')];
            const kinds = spans.map(e => e.dataset.kind);
            return spans.length > 0 && kinds.includes('estimate')
                && kinds.every(k => k === 'estimate' || k === 'exact')
                && spans.every(e => e.style.backgroundColor !== '');
        }""", timeout=RUN_TIMEOUT_MS)
    assert "estimate (one pass)" in page.locator(".ab-live .ab-legend").first.inner_text()
    screenshot(page, artifacts, "40-live-estimate.png", full=False)

    page.locator(".ab-heatmap .ab-estimate-summary").first.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    assert page.locator(".ab-live").count() == 0
    summary = page.locator(".ab-heatmap .ab-estimate-summary").first.inner_text()
    assert "Spearman" in summary and "top-3 overlap" in summary
    final = page.locator(".ab-heatmap .ab-span")
    assert final.count() > 1
    assert {final.nth(i).get_attribute("data-kind") for i in range(final.count())} == {"exact"}
    assert "vs exact" in final.first.get_attribute("title")
    screenshot(page, artifacts, "41-estimate-vs-exact.png")
    runs = [r for r in RunStore(run_db).list() if r.request.response == RESPONSE]
    assert [r.status for r in runs] == ["done"] and runs[0].result.extra["estimate"]["passes"] == 1


def test_a_long_run_redraws_the_estimate_as_first_order_loo_before_its_first_exact_pass(
        page, app_server, run_db, artifacts):
    """A run planned at FIRST_ORDER_MIN_PASSES passes or more shows two previews: the learned estimate, then
    first-order LOO; the live legend names the one drawn, the final summary compares both with exact."""
    doc = segment("\n\n".join([EXAMPLE.context] * 4))  # what start_slow_run pastes
    assert get_method("loo-naive").planned_passes(len(doc.paragraphs), len(doc.sentences), {}) >= FIRST_ORDER_MIN_PASSES
    url, _ = app_server
    open_app(page, url)
    response = f"It was first lit in 1874. (first-order {time.time_ns()})"
    start_slow_run(page, EXAMPLE, response)

    page.wait_for_function(
        """() => [...document.querySelectorAll('.ab-live .ab-legend')]
                  .some(e => e.innerText.includes('first-order LOO'))
              && [...document.querySelectorAll('.ab-live .ab-span')].some(e => e.dataset.kind === 'estimate')""",
        timeout=RUN_TIMEOUT_MS)
    titles = page.locator(".ab-live .ab-span[data-kind='estimate']").evaluate_all("els => els.map(e => e.title)")
    assert titles and all("first-order LOO" in t for t in titles), titles[:3]
    screenshot(page, artifacts, "42-live-first-order.png", full=False)

    summary = page.locator(".ab-heatmap .ab-estimate-summary").first
    summary.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    assert summary.get_attribute("data-by") == "first-order"
    text = summary.inner_text()
    assert "first-order LOO" in text and "before it, the estimate (one pass" in text, text
    runs = [r for r in RunStore(run_db).list() if r.request.response == response]
    assert [r.status for r in runs] == ["done"]
    kept = runs[0].result.extra["estimate"]
    assert kept["by"] == "first-order" and [p["by"] for p in kept["before"]] == ["estimate"]


LEGEND_WATCH = """() => {
  window.__legends = [];
  new MutationObserver(() => {
    const now = [...document.querySelectorAll('.ab-live .ab-legend')].map(e => e.innerText).join(' | ');
    if (now && now !== window.__legends[window.__legends.length - 1]) window.__legends.push(now);
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def test_a_cached_loo_run_goes_estimate_then_first_order_through_the_question_and_answer_then_first_order(
        page, app_server, run_db, artifacts):
    """A long `loo` run (its base pass keeps the context's keys) has three previews before its first exact
    pass: the learned estimate, first-order LOO through the question and answer (the answer's rows on the
    base pass's keys), first-order LOO through every row; the live legend names the latest one it has and
    never an older one after it; the final summary gives all three, latest first.

    Which previews the live view draws depends on the pace: one that a later preview replaces within a
    poll (``studio.runs.POLL_S``) is never drawn, as a user would want, and first-order LOO through the
    question and answer lasts only for first-order's pass (CI once missed it). So this records every legend
    the page drew (``LEGEND_WATCH``) and asks for their order, not for each; that a run drawn by it names it
    is specified in ``tests/app/test_progressive_in_app.py``, where the runs are paced."""
    url, _ = app_server
    open_app(page, url)
    page.evaluate(LEGEND_WATCH)
    response = f"It was first lit in 1874. (three previews {time.time_ns()})"
    start_slow_run(page, EXAMPLE, response, "loo · Exact LOO (KV-cache reuse)")

    summary = page.locator(".ab-heatmap .ab-estimate-summary").first
    summary.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    legends = page.evaluate("() => window.__legends")
    drawn = [[by for by in PREVIEW_LEVELS if estimate_key(by) in legend] for legend in legends]
    assert all(len(found) <= 1 for found in drawn), legends
    order = [PREVIEW_LEVELS.index(found[0]) for found in drawn if found]
    assert order and order == sorted(order), legends  # drawn by a preview, each no older than the one before
    assert {PREVIEW_LEVELS[i] for i in order} & {FIRST_ORDER_QR_LEVEL, FIRST_ORDER_LEVEL}, legends
    text = summary.inner_text()
    qa, learned = text.find("through the question and answer"), text.find("before it, the estimate (one pass")
    assert summary.get_attribute("data-by") == "first-order" and 0 < qa < learned, text
    screenshot(page, artifacts, "44-three-previews-vs-exact.png")
    runs = [r for r in RunStore(run_db).list() if r.request.response == response]
    assert [r.status for r in runs] == ["done"]
    kept = runs[0].result.extra["estimate"]
    assert kept["by"] == "first-order" and [p["by"] for p in kept["before"]] == ["estimate", "first-order-qr"]


STALE_WATCH = """() => {
  window.__stale = [];
  new MutationObserver(records => {
    for (const r of records) {
      if (r.target.dataset.stale !== 'true') continue;
      const s = getComputedStyle(r.target);
      window.__stale.push({opacity: s.opacity, transition: s.transitionDuration});
    }
  }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-stale']});
}"""


def test_the_page_does_not_fade_while_run_waits_for_the_first_text(page, app_server):
    """Streamlit fades a page that a script run has not redrawn yet; a browser without a GPU repaints every
    frame of that fade and takes a core from the model's first pass (``studio.ui.QUIET_RERUNS_CSS``)."""
    url, _ = app_server
    open_app(page, url)
    load_example(page, EXAMPLE)
    page.get_by_label("Response (optional)").fill(f"{RESPONSE} (no fade)")
    page.get_by_label("Response (optional)").press("Control+Enter")
    wait_idle(page)
    page.evaluate(STALE_WATCH)
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator(".ab-heatmap .ab-estimate-summary").first.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    seen = page.evaluate("() => window.__stale")
    assert seen, "no element was ever marked stale: the check saw nothing"
    assert {(s["opacity"], s["transition"]) for s in seen} == {("1", "0s")}
