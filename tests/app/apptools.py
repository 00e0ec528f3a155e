"""Helpers for the AppTest tests: find the app's HTML blocks and drive the Attribute page."""

from __future__ import annotations

import time
from html.parser import HTMLParser
from pathlib import Path

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 120  # seconds per script run: generous for a shared 2-core machine


def app_on(db: Path, monkeypatch, page: str | None = None):
    """The app run once on run database ``db`` (``ATTRIBOT_DB``, a fresh executor), then on ``page`` if given."""
    from streamlit.testing.v1 import AppTest

    from studio import runs

    monkeypatch.setenv("ATTRIBOT_DB", str(db))
    runs.executor.clear()
    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    assert not app.exception, app.exception
    if page is not None:
        app.switch_page(page).run()
        assert not app.exception, app.exception
    return app


class _Spans(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.spans: list[dict] = []
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "span" and "ab-span" in (a.get("class") or ""):
            self._open = {**a, "text": ""}

    def handle_endtag(self, tag):
        if tag == "span" and self._open is not None:
            self.spans.append(self._open)
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data


def parse(markup: str) -> _Spans:
    """The heatmap spans of ``markup``: their attributes (``data-*``, ``title``) and unescaped text."""
    p = _Spans()
    p.feed(markup)
    return p


def html_bodies(app) -> list[str]:
    return [h.proto.body for h in app.get("html")]


def heatmap(app) -> str:
    found = [b for b in html_bodies(app) if "ab-heatmap" in b]
    assert len(found) == 1, f"expected one heatmap, found {len(found)}"
    return found[0]


def run_example(app, key: str = "lighthouse", *, method: str | None = None, response: str | None = None):
    """Load a built-in example (optionally a method and a fixed response) and press Run."""
    app.button(key=f"example_{key}").click().run()
    if method is not None:
        app.selectbox(key="in_method").set_value(method).run()
    if response is not None:
        app.text_area(key="in_response").set_value(response).run()
    app.button(key="run").click().run()
    assert not app.exception, app.exception
    return wait_for_runs(app)


def running(app, kind: str = "attribute") -> bool:
    """Whether this session still has a ``kind`` run in progress (runs happen in a background worker)."""
    return f"runs_{kind}" in app.session_state and app.session_state[f"runs_{kind}"] is not None


def wait_for_runs(app, kind: str = "attribute", timeout: float = 120.0):
    """Rerun the script, as the page's poll does in a browser, until the session's run has ended."""
    deadline = time.monotonic() + timeout
    while running(app, kind):
        assert time.monotonic() < deadline, f"the {kind} run did not end in {timeout:.0f} s"
        time.sleep(0.2)
        app.run()
        assert not app.exception, app.exception
    return app


class _Messages(HTMLParser):
    def __init__(self, kind: str) -> None:
        super().__init__(convert_charrefs=True)
        self.kind, self.found, self._open = kind, [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div" and "ab-message" in (a.get("class") or "") and a.get("data-kind") == self.kind:
            self._open = ""

    def handle_endtag(self, tag):
        if tag == "div" and self._open is not None:
            self.found.append(self._open)
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            self._open += data


def messages(app, kind: str) -> list[str]:
    """The texts of the app's messages of ``kind`` (info/warning/error): the escaped ``ui.message`` boxes,
    plus any Streamlit alert of that kind (there should be none holding user text)."""
    found = [e.value for e in getattr(app, kind)]
    for body in html_bodies(app):
        p = _Messages(kind)
        p.feed(body)
        found += p.found
    return found


def errors(app) -> list[str]:
    return messages(app, "error")
