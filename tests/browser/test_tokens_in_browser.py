"""In chromium, on the real SmolLM2-135M: click a word of the response and the context heatmap recolours
from stored per-token values (no run); click a cell of the token x sentence matrix and that token and that
sentence are outlined. Steps of one visit, in file order; screenshots go to the artifacts folder.
"""

from __future__ import annotations

import time

import pytest
from pagetools import RUN_TIMEOUT_MS, load_example, open_app, screenshot, wait_idle

from attribot_core.examples import get_example

pytestmark = pytest.mark.browser

EXAMPLE = get_example("lighthouse")
RESPONSE = "The lamp was first lit on 3 March 1874."
SCORES_JS = "() => [...document.querySelectorAll('.ab-heatmap .ab-span')].map(e => e.dataset.score).join()"


def test_a_run_shows_the_response_token_by_token(page, app_server, artifacts):
    url, _ = app_server
    open_app(page, url)
    load_example(page, EXAMPLE)
    page.get_by_label("Response (optional)").fill(RESPONSE)
    page.get_by_label("Response (optional)").press("Control+Enter")
    wait_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    try:
        page.locator(".ab-heatmap .ab-span").first.wait_for(timeout=RUN_TIMEOUT_MS)
    except Exception:
        screenshot(page, artifacts, "10-token-run-failed.png")
        raise
    wait_idle(page)
    pills = page.get_by_role("toolbar", name="Explain part of the response: pick one or more tokens")
    pills.locator("button").nth(len(RESPONSE.split()) - 1).wait_for(timeout=60_000)  # drawn below the heatmap
    assert pills.locator("button").count() >= len(RESPONSE.split())
    assert page.locator(".ab-tokens").inner_text().startswith("The lamp was first lit")


def test_clicking_a_word_recolours_the_context_without_a_run(page, app_server, artifacts):
    _, metrics = app_server
    before = page.evaluate(SCORES_JS)
    facts = page.locator(".ab-facts").inner_text()  # forward passes and attribution time of the run
    start = time.perf_counter()
    page.get_by_role("toolbar", name="Explain part of the response: pick one or more tokens").locator(
        "button").filter(has_text="lamp").first.click()
    page.wait_for_function(f"b => ({SCORES_JS})() !== b", arg=before, timeout=30_000)
    metrics["token_click_to_recoloured_heatmap_s"] = round(time.perf_counter() - start, 2)
    wait_idle(page)
    after = page.evaluate(SCORES_JS)
    assert after != before and len(after.split(",")) == 7
    assert page.get_by_text("Exact for loo").first.is_visible()
    assert page.locator(".ab-tok-on").inner_text().strip() == "lamp"
    assert page.locator(".ab-facts").inner_text() == facts  # the same run: nothing was re-run
    screenshot(page, artifacts, "10-token-picked.png")
    page.get_by_role("toolbar", name="Explain part of the response: pick one or more tokens").locator(
        "button").filter(has_text="March").first.click()  # a second word: both parts together
    page.wait_for_function(f"b => ({SCORES_JS})() !== b", arg=after, timeout=30_000)
    wait_idle(page)
    assert page.locator(".ab-tok-on").count() == 2


def test_clicking_a_matrix_cell_outlines_that_token_and_sentence(page, artifacts):
    page.get_by_text("Token × sentence matrix").click()
    plot = page.locator(".js-plotly-plot").first
    plot.wait_for()
    plot.scroll_into_view_if_needed()  # a mouse click lands only inside the viewport
    page.wait_for_timeout(800)
    cells = plot.locator("g.scatterlayer path.point")
    assert cells.count() == 7 * page.locator(".ab-tokens .ab-tok").count()
    box = cells.nth(3).bounding_box()  # token 1, sentence 4
    for _ in range(3):  # plotly may still be settling its layout
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        try:
            page.locator(".ab-tok-focus").wait_for(timeout=15_000)
            break
        except Exception:
            page.wait_for_timeout(800)
            plot.scroll_into_view_if_needed()
            box = cells.nth(3).bounding_box()
    wait_idle(page)
    assert page.locator(".ab-tok-focus").inner_text() == "The"
    outlined = page.locator('.ab-heatmap .ab-span[data-index="3"]').evaluate("e => getComputedStyle(e).outlineStyle")
    assert outlined == "solid"
    screenshot(page, artifacts, "11-token-matrix-cell.png")
