"""One visit to the served app in chromium, on the real SmolLM2-135M.

The tests are steps of one visit and run in file order on one tab: load, run an example to the heatmap,
download the JSON, drill down into a paragraph, compare methods, learn, paste markup that must not run,
and stop a run midway. Each step saves a screenshot to the artifacts folder.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from pagetools import RUN_TIMEOUT_MS, go_to, load_example, open_app, open_inputs, screenshot, start_slow_run, wait_idle
from playwright.sync_api import expect

from attribot_core import AttributionResult
from attribot_core.examples import get_example

pytestmark = pytest.mark.browser

EXAMPLE = get_example("lighthouse")  # the smallest example: 3 paragraphs, 7 sentences


def test_app_loads_to_a_usable_page(page, app_server, artifacts):
    url, metrics = app_server
    start = time.perf_counter()
    open_app(page, url)
    metrics["first_page_load_s"] = round(time.perf_counter() - start, 2)
    metrics["cold_start_to_first_page_s"] = round(time.perf_counter() - metrics["server_started_at"], 2)
    assert page.get_by_role("heading", name="Attribute").is_visible()
    for title in ("Drill-down", "Compare methods", "Learn"):
        assert page.get_by_role("link", name=title).first.is_visible()
    # first visit at 1400×1000: the hint and the Run button in view without scrolling
    height = page.viewport_size["height"]
    hint = page.get_by_text("Load an example or paste a context").bounding_box()
    run = page.get_by_role("button", name="Run", exact=True).bounding_box()
    assert hint["y"] + hint["height"] <= height and run["y"] + run["height"] <= height, (hint, run)
    screenshot(page, artifacts, "01-attribute-empty.png")


def test_an_example_runs_to_a_heatmap_on_the_default_model(page, app_server, artifacts):
    _, metrics = app_server
    load_example(page, EXAMPLE)
    wait_idle(page)
    start = time.perf_counter()
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator(".ab-heatmap .ab-span").first.wait_for(timeout=RUN_TIMEOUT_MS)
    metrics["run_to_heatmap_s[lighthouse, loo, generate + attribute]"] = round(time.perf_counter() - start, 2)
    wait_idle(page)
    spans = page.locator(".ab-heatmap .ab-span")
    assert spans.count() == 7
    assert [spans.nth(i).inner_text() for i in range(7)][3] == "The lamp was first lit on 3 March 1874."
    colours = spans.evaluate_all(
        "els => els.map(e => [e.dataset.sign, +e.dataset.score, getComputedStyle(e).backgroundColor])")
    for sign, _, colour in colours:
        r, _, b = (int(x) for x in colour[colour.index("(") + 1 : colour.index(")")].split(",")[:3])
        assert (sign == "pos" and r >= b) or (sign == "neg" and b >= r) or sign == "zero"
    top = max(colours, key=lambda c: c[1])[2]
    r, _, b = (int(x) for x in top[top.index("(") + 1 : top.index(")")].split(",")[:3])
    assert r - b > 100  # the strongest supporter is clearly orange
    assert "nats" in spans.nth(3).get_attribute("title") and "rank" in spans.nth(3).get_attribute("title")
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    assert page.get_by_text("Done in").first.is_visible()
    assert not page.get_by_label("Context", exact=True).is_visible()  # the inputs folded away for the result
    screenshot(page, artifacts, "02-attribute-result.png")


def test_the_json_download_is_the_full_result(page, artifacts):
    with page.expect_download() as info:
        page.get_by_role("button", name="Download JSON (full result)").click()
    assert info.value.suggested_filename.endswith(".json")
    path = artifacts / "downloaded-result.json"
    info.value.save_as(path)
    result = AttributionResult.from_json(path.read_text())
    assert result.model == "smollm2-135m" and result.method == "loo" and len(result.sentences) == 7
    assert result.context == EXAMPLE.context and result.response.strip()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download HTML heatmap").click()
    doc = Path(info.value.path()).read_text(encoding="utf-8")
    assert doc.startswith("<!DOCTYPE html>") and "<script" not in doc and result.response.split()[0] in doc
    exported = artifacts / "exported-heatmap.html"
    exported.write_text(doc, encoding="utf-8")
    offline = page.context.new_page()  # the export opens on its own and asks the network for nothing
    requests: list[str] = []
    offline.on("request", lambda r: requests.append(r.url))
    offline.goto(exported.as_uri())
    assert offline.locator(".ab-heatmap .ab-span").count() == 7 + 3  # sentence and paragraph heatmaps
    offline.screenshot(path=str(artifacts / "09-exported-html.png"), full_page=True)
    offline.close()
    assert requests == [exported.as_uri()]


def test_drilldown_shows_a_paragraphs_sentences_when_its_bar_is_clicked(page, artifacts):
    go_to(page, "Drill-down")
    charts = page.locator(".js-plotly-plot")
    charts.nth(1).wait_for()
    assert charts.count() == 2
    result = AttributionResult.from_json((artifacts / "downloaded-result.json").read_text())
    top = max(result.paragraphs, key=lambda p: p.score).index
    assert f"Sentences of paragraph {top + 1}" in charts.nth(1).inner_text()  # opens on the top paragraph
    other = 1 if top != 1 else 0
    target = page.get_by_text(f"Sentences of paragraph {other + 1}")
    for _ in range(3):  # plotly may still be settling its layout when the page looks ready
        page.wait_for_timeout(800)
        bar = charts.nth(0).locator("g.trace.bars g.point path").nth(other).bounding_box()  # that paragraph's bar
        page.mouse.click(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)  # plotly's drag layer
        try:
            target.wait_for(timeout=15_000)
            break
        except Exception:
            screenshot(page, artifacts, "03-drilldown-click-missed.png")
    target.wait_for(timeout=5_000)
    wait_idle(page)
    sentences = [s.text for s in result.sentences if s.paragraph == other]
    assert sentences[0][:30] in charts.nth(1).inner_text().replace("\n", " ")
    screenshot(page, artifacts, "03-drilldown.png")


def test_compare_methods_against_exact_loo(page, app_server, artifacts):
    _, metrics = app_server
    go_to(page, "Compare methods")
    start = time.perf_counter()
    page.get_by_role("button", name="Run comparison").click()
    page.locator(".js-plotly-plot").nth(1).wait_for(timeout=RUN_TIMEOUT_MS)
    metrics["compare_s[loo-naive + hierarchical]"] = round(time.perf_counter() - start, 2)
    wait_idle(page)
    names = page.locator(".js-plotly-plot").nth(1).inner_text()  # the dataframe is a canvas; read the cost chart
    assert "loo-naive" in names and "hierarchical" in names
    screenshot(page, artifacts, "04-compare.png")


def test_learn_page_runs_its_live_example(page, app_server, artifacts):
    _, metrics = app_server
    go_to(page, "Learn")
    start = time.perf_counter()
    page.get_by_role("button", name="Run the live example").click()
    page.get_by_role("heading", name="What each trick saved").wait_for(timeout=RUN_TIMEOUT_MS)
    metrics["learn_s"] = round(time.perf_counter() - start, 2)
    wait_idle(page)
    assert page.locator(".ab-heatmap").count() == 2
    screenshot(page, artifacts, "05-learn.png")


def test_pasted_markup_is_shown_and_never_runs(page, artifacts):
    go_to(page, "Attribute")
    open_inputs(page)
    context = ('Ada wrote notes <script>window.__pwned = 1; alert("ctx")</script> on the engine. '
               'She met Babbage <img src=x onerror="window.__pwned = 2; alert(2)"> in 1833.\n\n'
               "The river is wide. It floods in spring.")
    page.get_by_label("Context", exact=True).fill(context)
    page.get_by_label("Context", exact=True).press("Control+Enter")
    page.get_by_label("Question", exact=True).fill("<script>window.__pwned = 3</script> Who did Ada meet?")
    page.get_by_label("Question", exact=True).press("Enter")
    page.get_by_label("Response (optional)").fill("Babbage <b onmouseover=alert(4)>!</b>")
    page.get_by_label("Response (optional)").press("Control+Enter")
    wait_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("() => (document.querySelector('.ab-heatmap') || {}).textContent?.includes('floods')",
                           timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    assert "Who did Ada meet?" in page.locator('[data-testid="stMain"]').inner_text()  # the new question
    heat = page.locator(".ab-heatmap .ab-text").inner_text()
    assert '<script>window.__pwned = 1; alert("ctx")</script>' in heat
    assert '<img src=x onerror="window.__pwned = 2; alert(2)">' in heat
    assert "Babbage <b onmouseover=alert(4)>!</b>" in page.locator(".ab-response").inner_text()
    page.locator(".ab-heatmap .ab-span").nth(1).hover()
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__pwned") is None
    assert page.dialogs == []
    assert page.locator(".ab-heatmap img, .ab-heatmap script, .ab-response b").count() == 0
    screenshot(page, artifacts, "06-pasted-markup.png")


def test_stop_cancels_a_run_and_keeps_the_previous_result(page, artifacts):
    before = page.locator(".ab-heatmap .ab-text").inner_text()
    example = get_example("tessaly")
    start_slow_run(page, example, "Caldor.")  # ~50 naive passes: still going when Stop is clicked
    # the ETA is measured from the passes after the first (which pays one-time costs), so it shows from pass 3
    progress = page.get_by_text(re.compile(r"forward pass ([3-9]|\d\d+) / "))
    progress.wait_for(timeout=RUN_TIMEOUT_MS)
    assert "s left" in progress.inner_text()
    page.screenshot(path=str(artifacts / "07-running.png"))
    stop = page.locator(".st-key-stop_attribute button").filter(visible=True)  # Streamlit keeps a hidden copy
    stop.click()
    page.get_by_text("Stopped. The run is kept in History as cancelled").first.wait_for(timeout=30_000)
    wait_idle(page)
    assert page.locator(".ab-heatmap .ab-text").inner_text() == before  # the previous result, untouched
    expect(page.locator(".st-key-stop_attribute button")).to_have_count(0)  # nothing left to stop
    screenshot(page, artifacts, "08-stopped.png")
