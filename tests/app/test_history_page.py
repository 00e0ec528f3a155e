"""History: deleting acts only on the run the user chose, after asking; search, filters and selection
survive a trip to another page."""

from __future__ import annotations

import pytest
from apptools import messages

from attribot_core.runs import RunRequest


def store():
    from studio import runs

    return runs.store()


def add_runs(*questions: str) -> list[str]:
    """Stored runs (as the CLI leaves them: queued, no result), oldest first; returns their ids."""
    return [store().create(RunRequest(f"Context of {q}. Two sentences.", q, "some-model"), source="cli").id
            for q in questions]


@pytest.fixture
def history(at):
    add_runs("First?", "Second?", "Third?")
    at.switch_page("pages/history.py").run()
    assert not at.exception, at.exception
    return at


def select_rows(at, rows: list[int]) -> None:
    """Select table rows as a click in the browser does (the dataframe's selection state)."""
    at.session_state["hist_table"] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception


def questions(at) -> list[str]:
    return at.dataframe[0].value["question"].tolist()


def selected_question(at) -> str | None:
    """The question of the run the "Selected run" panel shows (None when no run is selected)."""
    if "Selected run" not in [h.value for h in at.subheader]:
        return None
    rows = at.session_state["hist_table"]["selection"]["rows"]
    assert len(rows) == 1
    return questions(at)[rows[0]]


def test_delete_asks_first_then_deletes_only_the_chosen_run_and_clears_the_selection(history):
    at = history
    assert questions(at) == ["Third?", "Second?", "First?"]
    select_rows(at, [1])
    at.button(key="hist_delete").click().run()
    assert store().count() == 3  # nothing gone yet: the page asks, naming the run
    assert any("Delete the run" in m and "Second?" in m for m in messages(at, "warning"))
    at.button(key="hist_delete_yes").click().run()
    assert [r.request.question for r in store().list()] == ["Third?", "First?"]
    assert selected_question(at) is None  # the row that moved into its place is not selected
    assert not [b for b in at.button if b.key in ("hist_delete", "hist_delete_yes")]  # a second press cannot be
    said = [m for m in messages(at, "info") if m.startswith("Deleted the run")]
    assert said and "Second?" in said[0]


def test_cancel_or_a_new_selection_drops_the_question_and_deletes_nothing(history):
    at = history
    select_rows(at, [0])
    at.button(key="hist_delete").click().run()
    at.button(key="hist_delete_no").click().run()
    assert store().count() == 3 and not [b for b in at.button if b.key == "hist_delete_yes"]
    at.button(key="hist_delete").click().run()
    select_rows(at, [2])  # the user looks at another run instead
    assert selected_question(at) == "First?"
    assert not [b for b in at.button if b.key == "hist_delete_yes"] and store().count() == 3


def test_the_selection_follows_its_run_when_a_new_run_arrives_above_it(history):
    at = history
    select_rows(at, [0])
    assert selected_question(at) == "Third?"
    add_runs("Fourth?")  # e.g. a batch row, or another tab's run
    at.run()
    assert questions(at)[0] == "Fourth?"
    assert selected_question(at) == "Third?"
    at.button(key="hist_delete").click().run()
    at.button(key="hist_delete_yes").click().run()
    assert [r.request.question for r in store().list()] == ["Fourth?", "Second?", "First?"]


def test_search_filters_and_selection_survive_a_trip_to_another_page(history):
    at = history
    at.text_input(key="in_hist_text").set_value("i").run()  # Third?, First?
    at.multiselect(key="in_hist_status").set_value(["queued"]).run()
    select_rows(at, [1])
    assert selected_question(at) == "First?"
    at.switch_page("pages/learn.py").run()
    at.switch_page("pages/history.py").run()
    assert not at.exception, at.exception
    assert at.text_input(key="in_hist_text").value == "i"
    assert at.multiselect(key="in_hist_status").value == ["queued"]
    assert questions(at) == ["Third?", "First?"]
    assert selected_question(at) == "First?"


def test_two_runs_neither_exact_are_not_called_exact(at):
    from apptools import run_example

    run_example(at, "tessaly", method="hierarchical", response="Caldor.")
    at.selectbox(key="in_method").set_value("tree").run()
    at.button(key="run").click().run()
    from apptools import wait_for_runs

    wait_for_runs(at)
    at.switch_page("pages/history.py").run()
    select_rows(at, [0, 1])
    assert "Two runs side by side" in [h.value for h in at.subheader]
    assert any("Neither run is exact" in m for m in messages(at, "info"))
    scatter = at.get("plotly_chart")[0].proto.spec
    assert "exact" not in scatter.replace("neither is exact", "")


def test_with_one_exact_run_it_is_the_reference(at):
    from apptools import html_bodies, run_example, wait_for_runs

    run_example(at, "tessaly", method="tree", response="Caldor.")
    at.selectbox(key="in_method").set_value("loo").run()
    at.button(key="run").click().run()
    wait_for_runs(at)
    at.switch_page("pages/history.py").run()
    select_rows(at, [1, 0])
    assert any("Reference:" in b and "loo ·" in b and "exact leave-one-out" in b for b in html_bodies(at))
    assert not any("Neither run is exact" in m for m in messages(at, "info"))


def test_the_learn_and_compare_demo_runs_are_left_out_until_asked_for(at):
    add_runs("Mine?")
    store().create(RunRequest("Context of a demo. Two sentences.", "Demo?", "some-model"), source="learn")
    at.switch_page("pages/history.py").run()
    assert questions(at) == ["Mine?"]
    at.toggle(key="in_hist_demos").set_value(True).run()
    assert questions(at) == ["Demo?", "Mine?"]
    assert at.dataframe[0].value["source"].tolist() == ["learn", "cli"]


def test_saving_a_note_says_so_and_the_note_is_a_column_in_view(history):
    at = history
    select_rows(at, [0])
    run_id = store().list()[0].id
    at.text_area(key=f"note_{run_id}").set_value("looks wrong")
    at.button(key="hist_save_note").click().run()
    assert any("Saved the note" in t.value for t in at.toast)
    columns = at.dataframe[0].value.columns.tolist()
    assert columns.index("note") < columns.index("top sentence") and questions(at)[0] == "Third?"
    assert at.dataframe[0].value["note"].tolist()[0] == "looks wrong"
