"""The generated response streams onto the page while the run generates it, and Stop ends it there."""

from __future__ import annotations

import html
import re
import time

from apptools import html_bodies, messages, running, wait_for_runs

from attribot_core.examples import get_example

EXAMPLE = get_example("quillfeather")


def store():
    from studio import runs

    return runs.store()


def start_generating(at) -> str:
    """Run an example with no response given, so the run generates one (64 tokens at most)."""
    at.button(key=f"example_{EXAMPLE.key}").click().run()
    at.selectbox(key="in_method").set_value("loo-naive").run()
    at.text_area(key="in_response").set_value("").run()
    at.button(key="run").click().run()
    assert running(at)
    return next(iter(at.session_state["runs_attribute"].ids.values()))


def streamed(at) -> str | None:
    """The response text the live panel shows while generating (unescaped), or None when it shows none."""
    for body in html_bodies(at):
        if 'class="ab-streaming" data-generating="true"' in body:
            return html.unescape(re.search(r'class="ab-streaming-text"[^>]*>(.*?)</span>', body, re.S)[1])
    return None


def poll_until(at, condition, what: str, timeout: float = 60.0):
    """Rerun the page as its poll does until ``condition()`` gives something truthy; return it."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
        at.run()
    return value


def test_the_response_appears_on_the_page_while_it_is_generated(at, slow):
    run_id = start_generating(at)
    first = poll_until(at, lambda: streamed(at), "no response text shown while generating")
    assert store().get(run_id).total <= 0, "shown only once generation had ended"
    later = poll_until(at, lambda: (s := streamed(at)) and len(s) > len(first) and s, "the shown text did not grow")
    wait_for_runs(at)
    final = at.session_state["result"].response
    assert final.startswith(first) and final.startswith(later) and len(later) < len(final)
    assert streamed(at) is None  # the finished result replaces the live panel


def test_stop_during_generation_ends_the_run_there(at, slow):
    run_id = start_generating(at)
    poll_until(at, lambda: streamed(at), "no response text shown while generating")
    at.button(key="stop_attribute").click().run()
    stopped = time.monotonic()
    assert any("kept in History as cancelled" in m for m in messages(at, "info"))
    poll_until(at, lambda: not store().get(run_id).active, "the run did not end after Stop", timeout=30)
    record = store().get(run_id)
    assert record.status == "cancelled" and record.result is None and not running(at)
    r = record.request
    assert store().generated(r.model, r.context, r.question, r.max_new_tokens) is None  # stopped mid-generation
    assert time.monotonic() - stopped < 10, "Stop waited for the generation to end (64 tokens at 0.15 s each)"
