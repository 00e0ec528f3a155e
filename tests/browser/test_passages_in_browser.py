"""Retrieved passages in chromium, on the real SmolLM2-135M: three passages with ids and titles go into the
Attribute page's passages editor (its JSONL upload), a fixed response is attributed, and every view names the
passages as sources (``source 2 · title``), a title of Markdown and HTML shown as the characters typed.

The steps are one visit on one tab, in file order: run, Drill-down and back, History. Every request the tab
makes is recorded, and the last step fails on any host but the app's own (127.0.0.1).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pagetools import RUN_TIMEOUT_MS, fill_question_and_response, go_to, open_app, screenshot, span_titles, wait_idle

pytestmark = pytest.mark.browser

EVIL = "**bold** <b>x</b> [link](http://e.x)"
PASSAGES = [
    {"id": "doc-7", "title": "Harbour board minutes",
     "text": "The harbour board met on Monday. It voted to dredge the harbour in May."},
    {"id": "doc-9", "title": EVIL, "text": "Rain fell all week in the valley. The river rose by a metre."},
    {"id": "doc-3", "title": "Lighthouse log", "text": "The lighthouse keeper lit the lamp at dusk."},
]
QUESTION = "What did the harbour board vote for?"
RESPONSE = "It voted to dredge the harbour in May."
SOURCES = ["source 1 · Harbour board minutes", f"source 2 · {EVIL}", "source 3 · Lighthouse log"]


@pytest.fixture(scope="module")
def visit(browser, app_server):
    """One tab for the module, and the URL of every request it makes."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.dialogs = []
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    yield tab, requests
    context.close()


@pytest.fixture
def page(visit):
    return visit[0]


@pytest.fixture(scope="module")
def passages_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("passages") / "retrieved.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PASSAGES), encoding="utf-8")
    return path


def assert_no_markup_ran(page) -> None:
    """The title's Markdown and HTML made no bold element, no link and no dialog anywhere on the page."""
    main = page.locator('[data-testid="stMain"]')
    assert main.locator('a[href^="http://e.x"]').count() == 0
    # the title's own markup never renders (other bold text on the page, e.g. "Estimate vs exact", may hold an x)
    assert main.locator("b", has_text=re.compile(r"^x$")).count() == 0
    assert main.locator("strong", has_text="bold").count() == 0
    assert page.dialogs == []


def test_three_passages_run_to_a_heatmap_that_names_their_sources(page, app_server, passages_file, artifacts):
    open_app(page, app_server[0])
    wait_idle(page)
    page.locator(".st-key-in_context_mode").get_by_text("Passages", exact=True).click()
    uploader = page.locator('.st-key-passage_upload [data-testid="stFileUploaderDropzoneInput"]')
    uploader.wait_for(state="attached")
    wait_idle(page)
    uploader.set_input_files(str(passages_file))
    page.locator(".st-key-passage_to_move").wait_for()  # the editor holds several passages now
    wait_idle(page)
    fill_question_and_response(page, QUESTION, RESPONSE)
    screenshot(page, artifacts, "passages-01-editor.png")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Done in").first.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    titles = span_titles(page)
    for source in SOURCES:  # each sentence's tooltip names its passage, the title as typed
        assert any(f"({source})" in t for t in titles), (source, titles)
    heat = page.locator(".ab-heatmap .ab-text").first.inner_text()
    assert f"[2] {EVIL}" in heat and RESPONSE in page.locator(".ab-response").first.inner_text()
    assert_no_markup_ran(page)
    screenshot(page, artifacts, "passages-02-heatmap.png")


def test_drilldown_names_the_sources_and_the_result_is_there_on_coming_back(page, artifacts):
    go_to(page, "Drill-down")
    charts = page.locator(".js-plotly-plot")
    charts.nth(1).wait_for()
    chart = " ".join(charts.nth(1).inner_text().split())
    assert any(f"Sentences of {source}" in chart for source in SOURCES), chart  # the chart names its source
    selector = page.locator(".st-key-in_drill_paragraph")
    chosen = selector.locator("input").input_value()  # the chosen option is the value of its search box
    assert chosen.startswith(tuple(SOURCES)), chosen
    selector.click()
    options = page.get_by_role("option")
    options.first.wait_for()
    shown = options.all_inner_texts()
    assert [o.split(" (", 1)[0] for o in shown] == SOURCES  # the title shown literally, not as Markdown
    page.keyboard.press("Escape")
    wait_idle(page)
    assert_no_markup_ran(page)
    screenshot(page, artifacts, "passages-03-drilldown.png")
    go_to(page, "Attribute")
    page.locator(".ab-heatmap .ab-span").first.wait_for()
    assert any(f"({SOURCES[1]})" in t for t in span_titles(page))


def test_history_shows_the_run_with_its_sources(page, artifacts):
    go_to(page, "History")
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for()
    if not page.get_by_role("heading", name="Selected run").is_visible():
        box = grid.bounding_box()
        row_height = 35  # Streamlit's data grid: a 35 px header, then 35 px rows; the newest run first
        page.mouse.click(box["x"] + 18, box["y"] + row_height + row_height / 2)  # its selection box
        page.get_by_role("heading", name="Selected run").wait_for()
        wait_idle(page)
    assert QUESTION in page.locator('[data-testid="stMain"]').inner_text()
    titles = span_titles(page)
    assert all(any(f"({source})" in t for t in titles) for source in SOURCES), titles
    assert_no_markup_ran(page)
    screenshot(page, artifacts, "passages-04-history.png")


def test_no_request_left_the_apps_own_host(visit, app_server):
    _, requests = visit
    assert requests  # the recorder saw the visit
    hosts = {urlsplit(u).hostname for u in requests if urlsplit(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts == {urlsplit(app_server[0]).hostname} == {"127.0.0.1"}, sorted(set(requests))
