"""The app as a newcomer meets it, in chromium: its own default model (Qwen2.5-Coder-0.5B, installed and
prepared by set-up) offered first, and a generated answer to a built-in example attributed on it, the
answer right and the evidence sentence first. The other browser tests run on SmolLM2-135M (ServedApp)."""

from __future__ import annotations

import re

import pytest
from pagetools import RUN_TIMEOUT_MS, load_example, open_app, screenshot, wait_idle
from served_app import ServedApp

from attribot_core import DEFAULT_MODEL, PRESETS
from attribot_core.examples import get_example, known_for
from attribot_core.runs import RunStore

pytestmark = pytest.mark.browser

EXAMPLE = get_example("lighthouse")


@pytest.fixture(scope="module")
def default_app(artifacts, tmp_path_factory):
    db = tmp_path_factory.mktemp("default-model") / "runs.sqlite3"
    with ServedApp(artifacts / "default-model-server.log", env={"ATTRIBOT_DB": str(db)}, model=None) as app:
        yield app.url, db


def test_a_newcomer_gets_a_right_answer_explained_by_the_default_model(browser, default_app, artifacts):
    url, db = default_app
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    open_app(page, url)
    picker = page.get_by_role("combobox", name="Model")
    assert PRESETS[DEFAULT_MODEL].title in picker.input_value() or PRESETS[DEFAULT_MODEL].title in picker.inner_text()
    load_example(page, EXAMPLE)
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator(".ab-heatmap .ab-span").first.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    assert re.search(r"loo: done in [0-9.]+ s", page.locator('[data-testid="stMain"]').inner_text())
    screenshot(page, artifacts, "50-default-model-result.png")
    (run,) = RunStore(db).list()
    result = run.result
    assert result.model == DEFAULT_MODEL and run.status == "done"
    known = known_for(result)
    assert known.response_has_answer(result.response)  # the 0.5B answers this one right (README: 80% overall)
    top = max(result.sentences, key=lambda s: s.score)
    assert top.index in known.evidence, (result.response, top.text)
