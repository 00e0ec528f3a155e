"""The Dataset page in chromium: a batch made by ``attribot batch`` (real SmolLM2-135M), open a row.

Its own served app (module scope), pointed by ``ATTRIBOT_DB`` at the database the CLI wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pagetools import open_app, screenshot, wait_idle
from served_app import ServedApp

from attribot_core.examples import EXAMPLES

pytestmark = pytest.mark.browser
ATTRIBOT = str(Path(sys.executable).with_name("attribot"))


@pytest.fixture(scope="module")
def batch_app(tmp_path_factory, artifacts):
    """``attribot batch`` on the built-in examples (fixed responses, gold = their answer sentence), then the app."""
    folder = tmp_path_factory.mktemp("dataset-browser")
    rows = [{"id": e.key, "context": e.context, "question": e.question, "response": "It was in 1874.",
             "gold": [e.context.split(". ")[1]]} for e in EXAMPLES]
    rows.append({"id": "empty-context", "context": "", "question": "What?"})
    source = folder / "qa.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    db = folder / "runs.sqlite3"
    proc = subprocess.run([ATTRIBOT, "batch", str(source), "--model", "smollm2-135m", "--method", "hierarchical",
                           "--keep-paragraphs", "2",
                           "--db", str(db), "--no-progress"], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert f"{len(EXAMPLES)} done, 1 failed" in proc.stdout
    with ServedApp(artifacts / "dataset-server.log", env={"ATTRIBOT_DB": str(db)}) as app:
        yield app.url


@pytest.fixture(scope="module")
def tab(browser, batch_app):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def test_the_dataset_page_shows_the_batch_and_its_plots(tab, batch_app, artifacts):
    open_app(tab, batch_app)  # app.py's navigation is up
    wait_idle(tab)
    tab.get_by_role("link", name="Dataset", exact=True).first.click()
    tab.get_by_role("heading", name="Dataset").first.wait_for()
    wait_idle(tab)
    tab.locator('[data-testid="stDataFrame"]').first.wait_for()
    tab.locator(".js-plotly-plot").nth(2).wait_for()
    text = tab.locator('[data-testid="stMain"]').inner_text()
    assert f"{len(EXAMPLES) + 1} of {len(EXAMPLES) + 1} rows shown" in text and "1 failed" in text
    assert "Gold hit rate by method" in tab.locator(".js-plotly-plot").nth(2).inner_text()
    tab.screenshot(path=str(artifacts / "10-dataset.png"))
    screenshot(tab, artifacts, "10-dataset-full.png")


def test_clicking_a_row_opens_it_in_attribute(tab, artifacts):
    grid = tab.locator('[data-testid="stDataFrame"]').first
    box = grid.bounding_box()
    row_height = 35  # Streamlit's data grid: a 35 px header, then 35 px rows
    tab.mouse.click(box["x"] + 18, box["y"] + row_height + row_height * 1 + row_height / 2)  # row 2's box
    open_button = tab.get_by_role("button", name="Open in Attribute")
    open_button.wait_for()
    wait_idle(tab)
    assert EXAMPLES[1].key in tab.locator('[data-testid="stMain"]').inner_text()
    tab.locator(".ab-heatmap .ab-span").first.wait_for()
    screenshot(tab, artifacts, "11-dataset-row.png")
    open_button.click()
    tab.get_by_role("heading", name="Attribute").first.wait_for()
    wait_idle(tab)
    tab.wait_for_function("t => [...document.querySelectorAll('textarea')].some(a => a.value === t)",
                          arg=EXAMPLES[1].context)
    assert tab.get_by_text(f"Opened row '{EXAMPLES[1].key}'").first.is_visible()
    tab.locator(".ab-heatmap .ab-span").first.wait_for()  # the row's result is the current one
    screenshot(tab, artifacts, "12-dataset-row-in-attribute.png")
