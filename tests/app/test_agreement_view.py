"""The Dataset page's Agreement view (``studio/agreement.py``) on batches made with the tiny model."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from apptools import app_on, html_bodies

from attribot_core import attribute_many
from attribot_core.examples import EXAMPLES
from attribot_core.runs import RunStore
from attribot_core.runs.batch import measure_batch
from attribot_core.runs.export import batch_records

EVIL = "<b>row</b> **1**"
ROWS = [{"id": EVIL if i == 0 else e.key, "context": e.context, "question": e.question,
         "response": "It was first lit in 1874.", "gold": [e.context.split(". ")[1]]} for i, e in enumerate(EXAMPLES)]


@pytest.fixture(scope="module")
def agreement_db(tiny_model_dir, tmp_path_factory) -> Path:
    """``exact`` (loo), then the newer ``fast`` (hierarchical k=1, last row left out) and ``upside-down``
    (``exact`` with every score's sign flipped, so every row disagrees completely)."""
    path = tmp_path_factory.mktemp("agreement-view") / "runs.sqlite3"
    store = RunStore(path)
    model = str(tiny_model_dir)
    list(attribute_many(ROWS, model=model, method="loo", db=store, name="exact"))
    list(attribute_many(ROWS[:-1], model=model, method="hierarchical", keep_paragraphs=1, db=store, name="fast"))
    store.ensure_batch("upside-down", source="test")
    for r in batch_records(store, "exact"):
        run = store.create(r.request, source="test", batch="upside-down", row_id=r.row_id, row=r.row)
        store.start(run.id)
        result = r.result
        store.finish(run.id, replace(result, sentences=tuple(replace(s, score=None if s.score is None else -s.score)
                                                             for s in result.sentences)))
    store.close()
    return path


@pytest.fixture(scope="module")
def measured_db(tiny_model_dir, tmp_path_factory) -> Path:
    """``exact`` (loo) and ``quick`` (hierarchical k=1), both measured (top-k drop, LDS on 4 masks), and the
    newer ``plain`` (tree), not measured."""
    path = tmp_path_factory.mktemp("agreement-measures") / "runs.sqlite3"
    store = RunStore(path)
    model = str(tiny_model_dir)
    list(attribute_many(ROWS, model=model, method="loo", db=store, name="exact"))
    list(attribute_many(ROWS, model=model, method="hierarchical", keep_paragraphs=1, db=store, name="quick"))
    for name in ("exact", "quick"):
        assert measure_batch(store, name, ["topk", "lds"], masks=4).measured == len(ROWS)
    list(attribute_many(ROWS, model=model, method="tree", db=store, name="plain"))
    store.close()
    return path


def open_dataset(db: Path, monkeypatch):
    """The Dataset page on ``db``."""
    return app_on(db, monkeypatch, "pages/dataset.py")


@pytest.fixture
def dataset(app_env, agreement_db, monkeypatch):
    """The Dataset page on the database of ``agreement_db``."""
    return open_dataset(agreement_db, monkeypatch)


def agreement_table(at):
    tables = [t.value for t in at.dataframe if "Spearman" in t.value.columns]
    assert len(tables) == 1
    return tables[0]


def test_the_view_takes_the_loo_batch_as_reference_and_shows_intervals(dataset):
    at = dataset
    assert at.selectbox(key="in_ag_reference").value == "exact"  # though newer batches exist
    assert at.multiselect(key="in_ag_batches").value == ["upside-down", "fast"]
    table = agreement_table(at).set_index("batch")
    assert table.loc["upside-down", "Spearman"] == "-1.000 [-1.000, -1.000]"
    assert table.loc["upside-down", "rows compared"] == len(ROWS)
    assert table.loc["fast", "rows compared"] == len(ROWS) - 1 and table.loc["fast", "not compared"] == 1
    assert table.loc["fast", "method"] == "hierarchical"
    bodies = html_bodies(at)
    assert any(f"{ROWS[-1]['id']} (not in the batch)" in b for b in bodies)  # the missing row is named
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "Spearman against exact, per row" in titles


def test_a_disagreeing_row_opens_both_results_side_by_side(dataset):
    at = dataset
    button = at.button(key="ag_open_0_0")  # the upside-down batch's worst row
    assert button.label.endswith("· -1.00")  # the row's Spearman
    button.click().run()
    assert not at.exception, at.exception
    batch, row_id = at.session_state["ag_open"]
    assert batch == "upside-down" and row_id in {r["id"] for r in ROWS}
    heatmaps = [b for b in html_bodies(at) if "ab-heatmap" in b]
    assert len(heatmaps) == 2
    assert any("upside-down · loo" in b for b in html_bodies(at))  # which batch each side shows


def test_user_text_in_row_ids_stays_text(dataset):
    at = dataset
    at.selectbox(key="in_ag_metric").set_value("top1").run()
    assert not at.exception, at.exception
    assert not any(EVIL in m.value for m in at.markdown)
    labels = [b.label for b in at.button if b.key and b.key.startswith("ag_open_")]
    assert any(label.startswith(r"\<b\>row\<\/b\> \*\*1\*\* · ") for label in labels)  # escaped for Markdown
    figure = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                  if "against exact, per row" in json.loads(c.proto.spec)["layout"]["title"]["text"])
    hover = [h for trace in figure["data"] for h in trace.get("hovertext") or []]
    assert "&lt;b&gt;row&lt;/b&gt; **1**" in hover and EVIL not in hover


def test_with_one_batch_the_view_says_how_to_make_a_second(app_env, tiny_model_dir, tmp_path, monkeypatch):
    path = tmp_path / "one.sqlite3"
    list(attribute_many(ROWS[:1], model=str(tiny_model_dir), method="loo", db=path, name="only"))
    at = open_dataset(path, monkeypatch)
    assert any("Agreement needs two batches" in i.value for i in at.info)


def test_the_measures_of_each_batch_stand_beside_the_references_on_the_same_rows(app_env, measured_db, monkeypatch):
    at = open_dataset(measured_db, monkeypatch)
    assert at.selectbox(key="in_ag_reference").value == "exact"
    assert at.multiselect(key="in_ag_batches").value == ["plain", "quick"]
    (table,) = [t.value for t in at.dataframe if "LDS" in t.value.columns]
    assert list(table.columns) == ["batch", "scores of", "rows measured", "top-1 log-prob drop (nats)",
                                   "top-3 log-prob drop (nats)", "top-5 log-prob drop (nats)", "LDS"]
    assert list(table["batch"]) == ["quick", "quick"]  # plain carries no measures: no rows of its own
    assert list(table["scores of"]) == ["the batch (hierarchical)", "the reference (exact)"]
    assert all(table["rows measured"] == len(ROWS))
    interval = r"^-?\d+\.\d{3} \[-?\d+\.\d{3}, -?\d+\.\d{3}\]$"
    assert table["top-1 log-prob drop (nats)"].str.match(interval).all()
    hints = [b for b in html_bodies(at) if "faithfulness measures (top-k log-prob drop, LDS) are on" in b]
    assert len(hints) == 1 and hints[0].count("plain: ") == 1 and "--measures topk,lds" in hints[0]


def test_batches_without_any_measures_get_one_caption_saying_how_to_add_them(dataset):
    captions = [c.value for c in dataset.caption if "No faithfulness measures" in c.value]
    assert len(captions) == 1 and "--measures topk,lds" in captions[0]
    assert not [t for t in dataset.dataframe if "LDS" in t.value.columns]
