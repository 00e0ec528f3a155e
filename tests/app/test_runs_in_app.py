"""Runs live in the background: page switches, other sessions and Stop on any page; History reopens them."""

from __future__ import annotations

import time

from apptools import APP, heatmap, html_bodies, messages, parse, run_example, running, wait_for_runs
from streamlit.testing.v1 import AppTest

from attribot_core.examples import get_example
from attribot_core.runs import RunRequest

EXAMPLE = get_example("quillfeather")


def store():
    from studio import runs

    return runs.store()


def start(at, response: str = "Mira Orrin.") -> str:
    at.button(key=f"example_{EXAMPLE.key}").click().run()
    at.selectbox(key="in_method").set_value("loo-naive").run()
    at.text_area(key="in_response").set_value(response).run()
    at.button(key="run").click().run()
    assert running(at)
    return next(iter(at.session_state["runs_attribute"].ids.values()))


def wait_until(at, condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.2)
        at.run()


def test_switching_pages_mid_run_neither_stops_nor_restarts_it(at, slow):
    run_id = start(at)
    wait_until(at, lambda: store().get(run_id).done >= 2)
    at.switch_page("pages/drilldown.py").run()
    at.switch_page("pages/compare.py").run()
    at.switch_page("pages/attribute.py").run()
    record = store().get(run_id)
    assert record.status == "running" and record.done >= 2 and at.session_state["runs_attribute"].ids == {"run": run_id}
    wait_for_runs(at)
    assert store().count() == 1 and store().get(run_id).status == "done"  # one run, finished once
    assert at.session_state["current_run"] == run_id and heatmap(at)


def test_the_heatmap_fills_in_while_the_run_works(at, slow):
    run_id = start(at)
    wait_until(at, lambda: 2 <= len(store().get(run_id).partial.get("sentence", {})) < 8)
    live = [b for b in html_bodies(at) if "ab-live" in b]
    assert live, "no live heatmap while running"
    signs = [s["data-sign"] for s in parse(live[0]).spans]
    assert "pending" in signs and any(s in ("pos", "neg", "zero") for s in signs)
    assert any("forward pass" in p.proto.text for p in at.get("progress"))
    wait_for_runs(at)
    assert not [b for b in html_bodies(at) if "ab-live" in b]
    assert "pending" not in {s["data-sign"] for s in parse(heatmap(at)).spans}


def test_a_hierarchical_run_colours_every_sentence_before_its_paragraph_round_ends(at, slow):
    """No estimator weights for the tiny model: first-order LOO through the question and answer is the first
    preview (any model gets it), and every sentence is coloured before the paragraph round's passes end
    (without a preview the live view would show that round's paragraph scores first: tests/studio)."""
    at.button(key=f"example_{EXAMPLE.key}").click().run()
    at.selectbox(key="in_method").set_value("hierarchical").run()
    at.text_area(key="in_response").set_value("Mira Orrin, hierarchically.").run()
    at.button(key="run").click().run()
    run_id = next(iter(at.session_state["runs_attribute"].ids.values()))
    deadline = time.monotonic() + 60
    while True:  # poll as the page does, until the live view shows the preview
        live = [b for b in html_bodies(at) if "ab-live" in b]
        if live and any(s.get("data-kind") == "estimate" for s in parse(live[0]).spans):
            break
        assert store().get(run_id).active and time.monotonic() < deadline, "no live preview"
        time.sleep(0.05)
        at.run()
    spans = parse(live[0]).spans
    assert 'data-level="sentence"' in live[0] and "first-order-qr" in store().get(run_id).partial
    assert {s["data-kind"] for s in spans} <= {"estimate", "exact"} and all("style" in s for s in spans)
    wait_for_runs(at)
    assert at.session_state["result"].method == "hierarchical"
    final = parse(heatmap(at))
    assert 'data-level="sentence"' in heatmap(at) and "pending" not in {s["data-sign"] for s in final.spans}


def test_a_second_session_sees_its_run_queued_behind_the_first(at, slow, app_env):
    first = start(at)
    other = AppTest.from_file(APP, default_timeout=120).run()
    other_id = start(other, response="Orrin & Daughters.")
    texts = [p.proto.text.replace("\\", "") for p in other.get("progress")]  # Markdown-escaped
    assert store().get(first).status == "running"
    # (labels carry an invisible word joiner after ':' so no text can turn into a link or directive)
    assert any("Queued: waiting behind 1 other run" in t.replace("\u2060", "") for t in texts), texts
    wait_for_runs(other)
    assert store().get(other_id).status == "done" and store().get(first).status == "done"
    assert other.session_state["result"].response == "Orrin & Daughters."


def test_stop_cancels_the_run_which_is_kept_as_cancelled(at, slow):
    """(Stop in the sidebar of another page is a browser test: AppTest drops app.py's sidebar after a run.)"""
    run_id = start(at)
    wait_until(at, lambda: store().get(run_id).done >= 1)
    at.button(key="stop_attribute").click().run()
    assert any("kept in History as cancelled" in m for m in messages(at, "info"))
    wait_until(at, lambda: not store().get(run_id).active)
    assert store().get(run_id).status == "cancelled" and not running(at)
    assert at.session_state["result"] is None
    assert not [b for b in at.button if b.key == "stop_attribute"]  # Stop exists only while a run does


def test_a_new_run_replaces_the_previous_result_on_the_page_which_comes_back_if_it_is_stopped(at, slow):
    at.button(key=f"example_{EXAMPLE.key}").click().run()
    at.text_area(key="in_response").set_value("Mira Orrin, first.").run()
    at.button(key="run").click().run()
    wait_for_runs(at)
    before = heatmap(at)
    run_id = start(at)  # a slow second run over the same context
    wait_until(at, lambda: store().get(run_id).done >= 1)
    assert [b for b in html_bodies(at) if "ab-live" in b]  # the run in progress is what the page shows,
    assert not [b for b in html_bodies(at) if "ab-heatmap" in b]  # not the stale answer under it
    assert any("previous result is kept in History" in c.value for c in at.caption)
    at.button(key="stop_attribute").click().run()
    wait_until(at, lambda: not store().get(run_id).active)
    assert heatmap(at) == before and at.session_state["result"].response == "Mira Orrin, first."


def test_history_lists_runs_and_opening_one_makes_it_current_and_fills_the_inputs(at, app_env):
    run_example(at, "lighthouse", response="In 1874.")
    lighthouse = at.session_state["result"]
    run_example(at, "tessaly", response="Caldor.")
    store().create(RunRequest("A CLI context. Two sentences.", "From the CLI?", "some-model"), source="cli")
    at.switch_page("pages/history.py").run()
    table = at.dataframe[0].value
    assert table["question"].tolist() == ["From the CLI?", get_example("tessaly").question, lighthouse.question]
    assert table["source"].tolist() == ["cli", "app", "app"]
    at.text_input(key="in_hist_text").set_value("lighthouse").run()
    assert at.dataframe[0].value["question"].tolist() == [lighthouse.question]
    at.text_input(key="in_hist_text").set_value("").run()
    at.multiselect(key="in_hist_status").set_value(["queued"]).run()
    assert at.dataframe[0].value["question"].tolist() == ["From the CLI?"]
    at.multiselect(key="in_hist_status").set_value([]).run()
    select_rows(at, [2])
    at.button(key="hist_open").click().run()
    assert not at.exception
    assert at.title[0].value == "Attribute" and any("Opened the stored run" in m for m in messages(at, "info"))
    assert at.session_state["result"] == lighthouse
    at.switch_page("pages/attribute.py").run()
    assert at.text_area(key="in_context").value == lighthouse.context
    assert at.text_input(key="in_question").value == lighthouse.question
    assert at.text_area(key="in_response").value == "In 1874."


def test_history_notes_tags_delete_and_compares_two_runs_on_one_context(at, app_env):
    run_example(at, "tessaly", response="Caldor.")
    at.selectbox(key="in_method").set_value("hierarchical").run()
    at.button(key="run").click().run()
    wait_for_runs(at)
    at.switch_page("pages/history.py").run()
    select_rows(at, [0, 1])
    assert not at.exception and "Two runs side by side" in [h.value for h in at.subheader]
    assert any(m.startswith("loo ·") for m in at.dataframe[1].value["method"])
    select_rows(at, [0])
    run_id = store().list()[0].id
    at.text_area(key=f"note_{run_id}").set_value("looks wrong").run()
    at.text_input(key=f"tags_{run_id}").set_value("review, rag").run()
    at.button(key="hist_save_note").click().run()
    assert store().get(run_id).note == "looks wrong" and store().get(run_id).tags == ("review", "rag")
    at.button(key="hist_delete").click().run()
    at.button(key="hist_delete_yes").click().run()  # deleting asks first (tests/app/test_history_page.py)
    assert store().get(run_id) is None and store().count() == 1


def select_rows(at, rows: list[int]) -> None:
    """Select table rows as a click in the browser does (the dataframe's selection state)."""
    at.session_state["hist_table"] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    at.run()


def test_the_live_heatmap_uses_the_final_views_scale_and_says_its_maximum_is_provisional(at, slow):
    from attribot_core.viz import DEFAULT_SCALE

    run_id = start(at, response="Mira Orrin, live.")
    wait_until(at, lambda: 1 <= len(store().get(run_id).partial.get("sentence", {})) < 8)
    live = [b for b in html_bodies(at) if "ab-live" in b]
    assert live and f'data-scale="{DEFAULT_SCALE}"' in live[0]  # not linear first, then another scale at the end
    assert "Provisional scale" in live[0] and "nats so far" in live[0]
    wait_for_runs(at)
    final = heatmap(at)
    assert f'data-scale="{DEFAULT_SCALE}"' in final and "Provisional scale" not in final
    record = store().get(run_id)
    assert record.done == record.total == record.result.total_forward_passes  # the bar ended full
