"""The Dataset page names each passage row's sources: the passage of the top sentence and the row's passages.

Batches made by the real ``attribot batch`` command on the tiny model (temporary database): one whose rows are
retrieved passages (a title holds Markdown and HTML), one of plain-string contexts, whose table is unchanged.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from apptools import app_on

from attribot_core.runs import RunStore

ATTRIBOT = str(Path(sys.executable).with_name("attribot"))
EVIL = "**bold** <b>x</b> [link](http://e.x)"
PASSAGES = [{"id": "doc-7", "title": "Harbour board minutes", "text": "The board met on Monday. It voted to dredge."},
            {"id": "doc-9", "title": EVIL, "text": "Rain fell all week. The river rose."},
            {"id": "doc-3", "text": "The lighthouse was first lit in 1874."}]
PASSAGE_ROWS = [{"id": "board", "passages": PASSAGES, "question": "What did the board vote for?",
                 "response": "Dredging."},
                {"id": "rain", "passages": PASSAGES[1:], "question": "Did it rain?", "response": "Yes, all week."}]
PLAIN_ROWS = [{"id": "plain", "context": "The board met on Monday. It voted to dredge.", "question": "What?",
               "response": "Dredging."}]


def _batch(folder: Path, db: Path, name: str, rows: list[dict], model: Path) -> None:
    source = folder / f"{name}.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    proc = subprocess.run([ATTRIBOT, "batch", str(source), "--model", str(model), "--name", name, "--no-progress"],
                          env={**os.environ, "ATTRIBOT_DB": str(db)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def batch_db(tiny_model_dir, tmp_path_factory) -> Path:
    """The passage batch and the plain-string batch, made by the CLI once."""
    folder = tmp_path_factory.mktemp("dataset-sources")
    db = folder / "runs.sqlite3"
    _batch(folder, db, "retrieved", PASSAGE_ROWS, tiny_model_dir)
    _batch(folder, db, "plain", PLAIN_ROWS, tiny_model_dir)
    return db


@pytest.fixture
def dataset(app_env, batch_db, monkeypatch):
    """The Dataset page on the CLI's database."""
    return app_on(batch_db, monkeypatch, "pages/dataset.py")


def _show(at, batch: str):
    at.multiselect(key="in_ds_batches").set_value([batch]).run()
    assert not at.exception, at.exception
    return at.dataframe[0].value


def test_a_passage_batch_shows_the_top_source_as_every_view_names_it_and_the_rows_passages(dataset, batch_db):
    table = _show(dataset, "retrieved")
    results = {r.row_id: r.result for r in RunStore(batch_db).list(batch="retrieved")}
    for row_id, top_source in zip(table["id"], table["top source"], strict=True):
        result = results[row_id]
        assert top_source == result.source_label(result.top_k(1)[0].paragraph)  # the one labelling rule
        assert top_source.startswith("source ")
    assert list(table["passages"].iloc[0]) == ["doc-7 · Harbour board minutes", f"doc-9 · {EVIL}", "doc-3"]
    assert list(table["passages"].iloc[1]) == [f"doc-9 · {EVIL}", "doc-3"]
    assert not any(EVIL in m.value for m in dataset.markdown)  # the title is data in the table, never Markdown


def test_a_plain_string_batch_keeps_the_table_it_had(dataset):
    table = _show(dataset, "plain")
    assert "top source" not in table.columns and "passages" not in table.columns
    assert list(table["id"]) == ["plain"] and table["top sentence"].iloc[0]


def test_searching_a_passage_title_finds_the_rows_whose_top_source_it_is(dataset, batch_db):
    table = _show(dataset, "retrieved")
    title_of = {row_id: source.split(" · ", 1)[1] for row_id, source in zip(table["id"], table["top source"],
                                                                             strict=True) if " · " in source}
    row_id, title = next(iter(title_of.items()))
    dataset.text_input(key="in_ds_text").set_value(title[:8]).run()
    assert row_id in list(dataset.dataframe[0].value["id"])


def test_the_selected_row_names_its_top_source_as_escaped_text(dataset):
    table = _show(dataset, "retrieved")
    dataset.session_state["ds_table"] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    dataset.run()
    assert not dataset.exception, dataset.exception
    shown = [h.proto.body for h in dataset.get("html") if "Top source:" in h.proto.body]
    assert len(shown) == 1 and html.escape(table["top source"].iloc[1]) in shown[0]
    assert "<b>x</b>" not in shown[0]
