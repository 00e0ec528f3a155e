"""The Attribute page's passages editor: upload, move, run, and the sources named in the result."""

from __future__ import annotations

import json

from apptools import heatmap, wait_for_runs

PASSAGES = [
    {"id": "doc-7", "title": "Harbour board minutes",
     "text": "The board met on Monday. It voted to dredge the harbour."},
    {"id": "doc-9", "title": "<i>Weather</i> log", "text": "Rain fell all week. The river rose."},
]


def _upload(at):
    body = "\n".join(json.dumps(p) for p in PASSAGES).encode()
    at.radio(key="in_context_mode").set_value("Passages").run()
    at.file_uploader(key="passage_upload").set_value(("p.jsonl", body, "application/json")).run()
    assert not at.exception, at.exception


def test_uploaded_passages_run_and_the_heatmap_names_their_source(at):
    _upload(at)
    at.text_input(key="in_question").set_value("What did the board vote for?").run()
    at.text_area(key="in_response").set_value("Dredging.").run()
    at.button(key="run").click().run()
    wait_for_runs(at)
    markup = heatmap(at)
    assert "(source 1 · Harbour board minutes)" in markup
    assert "&lt;i&gt;Weather&lt;/i&gt;" in markup and "<i>Weather" not in markup
    assert [p.id for p in at.session_state["result"].passages] == ["doc-7", "doc-9"]


def test_moving_a_passage_reorders_the_owned_passages(at):
    _upload(at)
    at.selectbox(key="passage_to_move").set_value(1).run()
    at.button(key="passage_up").click().run()
    assert [p["id"] for p in at.session_state["inputs"]["in_passages"]] == ["doc-9", "doc-7"]


def test_a_passages_file_without_text_gets_one_message(at):
    at.radio(key="in_context_mode").set_value("Passages").run()
    at.file_uploader(key="passage_upload").set_value(("p.json", b'[{"id": "a"}]', "application/json")).run()
    assert "Passage 1 has no 'text'" in at.session_state["passage_upload_error"]
