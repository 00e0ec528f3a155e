"""Drill-down names passages as every view does: ``source N · title`` in its selector, the title as plain text."""

from __future__ import annotations

import json

from apptools import wait_for_runs

EVIL = "**bold** <b>x</b> [link](http://e.x)"
PASSAGES = [{"id": "doc-7", "title": "Harbour board minutes", "text": "The board met on Monday. It voted to dredge."},
            {"id": "doc-9", "title": EVIL, "text": "Rain fell all week.\nThe river rose."}]


def test_the_selector_lists_each_passage_by_its_source_name(at):
    at.radio(key="in_context_mode").set_value("Passages").run()
    body = json.dumps(PASSAGES).encode()
    at.file_uploader(key="passage_upload").set_value(("p.json", body, "application/json")).run()
    at.text_input(key="in_question").set_value("What did the board vote for?").run()
    at.text_area(key="in_response").set_value("Dredging.").run()
    at.button(key="run").click().run()
    wait_for_runs(at)
    at.switch_page("pages/drilldown.py").run()
    assert not at.exception, at.exception
    selector = at.selectbox(key="in_drill_paragraph")
    assert selector.label == "Passage"
    assert selector.options[0].startswith("source 1 · Harbour board minutes (")
    assert selector.options[0].endswith("): The board met on Monday. It voted to dredge.")
    assert selector.options[1].startswith(f"source 2 · {EVIL} (")  # kept as typed: a selectbox shows text
    assert selector.options[1].endswith("): Rain fell all week. The river rose.")  # one line
