"""A run's address: ``?run=<id>`` in the URL reopens that run after a reload or in another tab, followed
live when it is still going; the Attribute page shows the link to copy.

(That the URL follows the session's run from page to page is a browser test: AppTest runs app.py, which
writes the URL, only on a session's first script run.)
"""

from __future__ import annotations

import time

from apptools import APP, heatmap, messages, run_example, running, wait_for_runs
from streamlit.testing.v1 import AppTest

from attribot_core.examples import get_example


def store():
    from studio import runs

    return runs.store()


def reload(run_id: str | None) -> AppTest:
    """A new session opened on the app's address with ``?run=run_id`` (what F5 or a shared link does)."""
    fresh = AppTest.from_file(APP, default_timeout=120)
    if run_id is not None:
        fresh.query_params["run"] = run_id
    fresh.run()
    assert not fresh.exception, fresh.exception
    return fresh


def test_the_attribute_page_shows_the_link_of_its_result(at):
    run_example(at, "lighthouse", response="In 1874.")
    run_id = at.session_state["current_run"]
    assert [c.value for c in at.code] == [f"/?run={run_id}"]


def test_reloading_reopens_the_run_with_its_inputs(at):
    run_example(at, "lighthouse", response="In 1874.")
    run_id, result = at.session_state["current_run"], at.session_state["result"]
    again = reload(run_id)
    assert again.session_state["result"] == result and again.session_state["current_run"] == run_id
    assert heatmap(again)
    assert again.session_state["inputs"]["in_response"] == "In 1874."  # ready to tweak and re-run
    assert again.query_params["run"] == run_id


def test_reloading_mid_run_follows_its_progress_and_ends_with_its_result(at, slow):
    example = get_example("quillfeather")
    at.button(key=f"example_{example.key}").click().run()
    at.selectbox(key="in_method").set_value("loo-naive").run()
    at.text_area(key="in_response").set_value("Mira Orrin, reloaded.").run()
    at.button(key="run").click().run()
    run_id = at.session_state["runs_attribute"].ids["run"]
    assert [c.value for c in at.code] == [f"/?run={run_id}"]  # a link while it runs, too
    deadline = time.monotonic() + 60
    while store().get(run_id).done < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    again = reload(run_id)
    assert running(again)  # re-attached: the sidebar and the page show it going
    assert any("forward pass" in p.proto.text for p in again.get("progress"))
    assert any("still going" in m for m in messages(again, "info"))
    wait_for_runs(again)
    assert again.session_state["current_run"] == run_id
    assert again.session_state["result"].response == "Mira Orrin, reloaded."
    assert store().count() == 1  # followed, not started again


def test_a_link_to_a_run_that_is_gone_says_so(at):
    again = reload("0" * 32)
    assert any("not in the run database" in m for m in messages(again, "warning"))
    assert "run" not in again.query_params and again.session_state["result"] is None
