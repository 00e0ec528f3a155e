"""Browser fixtures: ``streamlit run app.py`` on a free loopback port, driven by Debian's chromium.

The app runs on the real SmolLM2-135M. Screenshots and measured figures (cold start,
peak RSS of the app process) go to ``$ATTRIBOT_ARTIFACTS`` (default ``test-artifacts/``), in a folder per
pytest-xdist worker when the suite runs on several (``make test``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from served_app import CHROMIUM, CHROMIUM_ARGS, ROOT, ServedApp


def pytest_collection_modifyitems(config, items):
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh dev "
                                       "or apt-get install chromium); never `playwright install`.")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(os.environ.get("ATTRIBOT_ARTIFACTS") or ROOT / "test-artifacts")
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker serves its own app: its own database and log
        path = path / os.environ["PYTEST_XDIST_WORKER"]
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def run_db(artifacts) -> Path:
    """The served app's run database (emptied when the server starts)."""
    return artifacts / "served-app-runs.sqlite3"


@pytest.fixture(scope="session")
def app_server(artifacts, run_db):
    """The app served by ``streamlit run`` (real SmolLM2-135M); yields its URL and a metrics dict."""
    metrics: dict = {}
    with ServedApp(artifacts / "streamlit-server.log", run_db) as app:
        metrics["server_healthy_s"] = round(app.healthy_after, 2)
        metrics["server_started_at"] = app.started_at
        try:
            yield app.url, metrics
        finally:
            metrics["peak_rss_mb"] = app.peak_rss_mb
    metrics.pop("server_started_at", None)
    (artifacts / "browser-metrics.json").write_text(json.dumps(metrics, indent=2))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, app_server):
    """One browser tab for a module: its tests are steps of one visit, in file order."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.dialogs = []
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    yield tab
    context.close()
