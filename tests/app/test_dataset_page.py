"""The Dataset page on a batch made by the real ``attribot batch`` command (tiny model, temporary database)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from apptools import app_on

from attribot_core.examples import EXAMPLES

ATTRIBOT = str(Path(sys.executable).with_name("attribot"))
EVIL = "<b>bold?</b> **not markdown**"


ROWS = [{"id": e.key, "context": e.context, "question": e.question if i else f"{e.question} {EVIL}",
         "response": "It was first lit in 1874.", "gold": [e.context.split(". ")[1]]}
        for i, e in enumerate(EXAMPLES)] + [{"id": "bad", "context": "", "question": "Why?"}]


@pytest.fixture(scope="module")
def batch_db(tiny_model_dir, tmp_path_factory) -> Path:
    """A batch of the built-in examples (gold = their second sentence) and one bad row, made by the CLI once."""
    folder = tmp_path_factory.mktemp("dataset")
    source = folder / "qa.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    db = folder / "runs.sqlite3"
    proc = subprocess.run([ATTRIBOT, "batch", str(source), "--model", str(tiny_model_dir), "--no-progress"],
                          env={**os.environ, "ATTRIBOT_DB": str(db)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return db


@pytest.fixture
def at_batch(app_env, batch_db, monkeypatch):
    """The app on the database the CLI wrote (ATTRIBOT_DB), run once."""
    return app_on(batch_db, monkeypatch)


def open_dataset(at):
    at.switch_page("pages/dataset.py").run()
    assert not at.exception, at.exception
    return at


def test_without_a_batch_the_page_says_how_to_make_one(at):
    open_dataset(at)
    assert "attribot batch" in at.info[0].value


def test_the_page_lists_the_rows_of_a_batch_made_by_the_cli(at_batch):
    at = open_dataset(at_batch)
    batch = ROWS
    assert at.multiselect(key="in_ds_batches").value == ["qa"]
    table = at.dataframe[0].value
    assert list(table["id"]) == [r["id"] for r in batch]
    assert list(table["status"]) == ["done"] * len(EXAMPLES) + ["failed"]
    assert "context is empty" in table["error"].iloc[-1]
    assert table["top share"].dropna().between(0, 1).all() and table["top position"].dropna().between(0, 1).all()
    assert table["top is gold"].iloc[: len(EXAMPLES)].isin([True, False]).all()
    assert table["question"].iloc[0].endswith(EVIL)  # user text is data in the table
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert titles[0].startswith("Top sentence position") and titles[1].startswith("Max |score| per row")
    assert titles[2].startswith("Gold hit rate by method")
    assert not any(EVIL in m.value for m in at.markdown)


def test_sorting_and_filtering_change_the_rows_shown(at_batch):
    at = open_dataset(at_batch)
    at.selectbox(key="in_ds_sort").set_value("max |score|").run()
    values = at.dataframe[0].value["max |score|"].dropna().tolist()
    assert values == sorted(values, reverse=True) and len(values) == len(EXAMPLES)
    at.multiselect(key="in_ds_status").set_value(["failed"]).run()
    assert list(at.dataframe[0].value["id"]) == ["bad"]
    at.multiselect(key="in_ds_status").set_value([]).run()
    at.text_input(key="in_ds_text").set_value(EXAMPLES[1].question[:12]).run()
    assert list(at.dataframe[0].value["id"]) == [EXAMPLES[1].key]


def test_selecting_a_row_opens_it_as_the_current_result_with_its_inputs(at_batch):
    at = open_dataset(at_batch)
    at.session_state["ds_table"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    result, request = at.session_state["result"], at.session_state["request"]  # selecting opens it
    assert result.question == EXAMPLES[1].question and request.context == EXAMPLES[1].context
    assert at.session_state["inputs"]["in_question"] == EXAMPLES[1].question  # the owned inputs
    assert at.session_state["current_run"]
    assert at.button(key="ds_open").label == "Open in Attribute"
    at.button(key="ds_open").click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Attribute"]  # switched to the Attribute page
    assert any(EXAMPLES[1].context[:30] in t.value for t in at.text_area)  # the inputs hold the row


def test_the_table_shows_each_rows_response_and_gold_evidence(at_batch):
    at = open_dataset(at_batch)
    table = at.dataframe[0].value
    assert list(table["response"].iloc[: len(EXAMPLES)]) == ["It was first lit in 1874."] * len(EXAMPLES)
    assert list(table["gold"].iloc[: len(EXAMPLES)]) == [r["gold"][0] for r in ROWS[: len(EXAMPLES)]]


def test_sort_filters_and_selection_survive_opening_a_row_elsewhere_and_coming_back(at_batch):
    at = open_dataset(at_batch)
    at.selectbox(key="in_ds_sort").set_value("max |score|").run()
    at.toggle(key="in_ds_desc").set_value(False).run()
    at.multiselect(key="in_ds_status").set_value(["done"]).run()
    order = list(at.dataframe[0].value["id"])
    at.session_state["ds_table"] = {"selection": {"rows": [2], "columns": [], "cells": []}}
    at.run()
    at.button(key="ds_open").click().run()
    assert [t.value for t in at.title] == ["Attribute"]
    open_dataset(at)
    assert at.selectbox(key="in_ds_sort").value == "max |score|" and at.toggle(key="in_ds_desc").value is False
    assert at.multiselect(key="in_ds_status").value == ["done"]
    assert list(at.dataframe[0].value["id"]) == order
    assert at.session_state["ds_table"]["selection"]["rows"] == [2]
    assert any(b.key == "ds_open" for b in at.button)  # the selected row's panel is back too


def test_next_and_previous_row_follow_the_tables_order_in_attribute_and_drilldown(at_batch):
    at = open_dataset(at_batch)
    at.selectbox(key="in_ds_sort").set_value("max |score|").run()
    order = list(at.dataframe[0].value["id"])
    at.session_state["ds_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    at.button(key="ds_open").click().run()
    at.button(key="attr_rows_next").click().run()
    assert not at.exception, at.exception
    question = {r["id"]: r["question"] for r in ROWS}
    assert at.session_state["request"].question == question[order[1]]
    at.switch_page("pages/drilldown.py").run()
    at.button(key="drill_rows_prev").click().run()
    assert at.session_state["request"].question == question[order[0]]
    assert at.button(key="drill_rows_prev").disabled  # the first row of the order
    open_dataset(at)
    assert at.session_state["ds_table"]["selection"]["rows"] == [0]  # the Dataset table follows
