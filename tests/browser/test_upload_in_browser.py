"""A browser-only user's batch in chromium: upload a JSONL on the Dataset page, start it, leave the page and
close the tab (the batch goes on in the server), come back, Stop; the real SmolLM2-135M, its own server."""

from __future__ import annotations

import json
import re

import pytest
from pagetools import RUN_TIMEOUT_MS, go_to, open_app, screenshot, wait_idle
from playwright.sync_api import expect
from served_app import ServedApp

from attribot_core.examples import EXAMPLES

pytestmark = pytest.mark.browser
ROWS = 30  # enough rows (a few seconds each) that the batch is still going when Stop is clicked
NAME = "upload-qa"
J = "\u2060?"  # the word joiner markdown_literal puts after a ':' in Markdown-rendered text


def done_count(page) -> int:
    """Rows done, read from the batch's progress bar ("NAME: 3 of 30 rows finished: 2 done, 1 failed ...")."""
    text = page.get_by_text(re.compile(rf"^{NAME}:{J} \d+ of {ROWS} rows finished")).first.inner_text()
    return int(re.search(r"(\d+) done", text).group(1))


def test_an_uploaded_batch_runs_in_the_server_survives_leaving_and_stops(browser, tmp_path, artifacts):
    source = tmp_path / f"{NAME}.jsonl"
    rows = [{"id": f"q{i}", "context": EXAMPLES[i % len(EXAMPLES)].context,
             "question": EXAMPLES[i % len(EXAMPLES)].question, "response": "It was first lit in 1874."}
            for i in range(ROWS)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with ServedApp(artifacts / "upload-server.log", env={"ATTRIBOT_DB": str(tmp_path / "runs.sqlite3")}) as app:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        open_app(page, app.url)
        go_to(page, "Dataset")
        page.get_by_text("up to 500 rows and 20 MB per file").first.wait_for()  # limits said up front
        page.locator('.st-key-up_file [data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(source))
        page.get_by_text(re.compile(rf"Preview of {ROWS} rows:{J} {ROWS} will run, 0 will fail")).wait_for()
        wait_idle(page)
        screenshot(page, artifacts, "upload-01-preview.png")
        page.get_by_role("button", name="Start the batch").click()
        page.get_by_text(f"Batch '{NAME}' started: {ROWS} rows queued").wait_for()
        page.wait_for_function(  # the page polls the store: rows appear without a click
            f"() => /{NAME}:\\u2060? [1-9]\\d* of {ROWS} rows finished/.test(document.body.innerText)",
            timeout=RUN_TIMEOUT_MS)
        screenshot(page, artifacts, "upload-02-running.png")

        go_to(page, "Attribute")  # leave the page, then close the tab: the batch is the server's, not the tab's
        page.close()
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{app.url}/dataset")
        page.get_by_role("heading", name="Dataset").first.wait_for()
        before = done_count(page)
        page.wait_for_function(
            f"() => {{ const m = document.body.innerText.match(/(\\d+) done/); return m && +m[1] > {before}; }}",
            timeout=RUN_TIMEOUT_MS)  # still going in the server
        assert "rows per minute" in page.get_by_text(re.compile(rf"^{NAME}:")).first.inner_text()

        page.locator(f".st-key-up_stop_{NAME} button").filter(visible=True).click()
        resume = page.get_by_role("button", name=re.compile(r"^Resume \(\d+ rows\)$"))
        resume.wait_for(timeout=60_000)
        wait_idle(page)
        bar = page.get_by_text(re.compile(rf"^{NAME}:")).first.inner_text()
        assert "stopped" in bar and done_count(page) < ROWS
        expect(page.locator(f".st-key-up_stop_{NAME} button")).to_have_count(0)
        screenshot(page, artifacts, "upload-03-stopped.png")
        context.close()
