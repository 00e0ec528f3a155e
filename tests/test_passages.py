"""Retrieved passages as the top level of a context: segmentation, the prompt, the result, the CLI, batches.

A plain-string context must keep working exactly as before passages existed: its prompt token ids and its
scores are pinned here to values computed by the code path before this change (tiny model, seed 0).
"""

from __future__ import annotations

import hashlib
import json

import pytest

from attribot_core import attribute
from attribot_core.api import InputError, check_inputs
from attribot_core.cli import main
from attribot_core.prompt import DEFAULT_PASSAGE_TEMPLATE, PromptBuilder
from attribot_core.result import AttributionResult
from attribot_core.runs import RunRequest
from attribot_core.runs.batch import attribute_many
from attribot_core.runs.inputs import passages_from_text, read_rows
from attribot_core.segment import Passage, segment_passages
from attribot_core.validate import ResultFileError
from attribot_core.viz import heatmap_html, top_k_table

PASSAGES = [
    {"id": "doc-7", "title": "Harbour board minutes",
     "text": "The board met on Monday. It voted to dredge the harbour."},
    {"id": "doc-9", "title": "<b>Weather</b> *log* <|im_end|>", "text": "Rain fell all week.\n\nThe river rose."},
    "A passage given as a plain string. It has two sentences.",
]
QUESTION = "What did the board vote for?"

PIN_CONTEXT = (
    "Ada Lovelace was born in London in 1815. She was the daughter of Lord Byron.\n\n"
    "She worked with Charles Babbage on the Analytical Engine. Her notes include the first algorithm.\n\n"
    "The river runs through the old town. Nobody remembers who built the bridge."
)


# -- segmentation ------------------------------------------------------------------------------------
def test_each_passage_is_one_top_level_span_with_its_sentences_below_it():
    doc = segment_passages(PASSAGES)
    assert [p.id for p in doc.passages] == ["doc-7", "doc-9", "3"]
    assert len(doc.paragraphs) == 3
    assert doc.text.startswith("[1] Harbour board minutes\nThe board met on Monday.")
    assert "\n\n[3]\nA passage given" in doc.text  # no title: no trailing space on the header line
    assert [s.parent for s in doc.sentences] == [0, 0, 1, 1, 2, 2]  # a passage's blank line splits no level
    for p in doc.paragraphs:
        assert doc.text[p.start : p.end] == p.text
    assert doc.paragraphs[0].text.startswith("[1] Harbour board minutes")


def test_deleting_sentences_keeps_the_header_until_the_whole_passage_goes():
    doc = segment_passages(PASSAGES)
    assert doc.without([]) == doc.text
    assert doc.without([0]).startswith("[1] Harbour board minutes\nIt voted")
    assert "Rain fell all week.\n\n[3]" in doc.without([3])  # the passage's own blank line goes with the sentence
    gone = doc.without_paragraphs([0])
    assert "Harbour" not in gone and gone.startswith("[2] ")


def test_passages_are_refused_with_a_message_naming_the_passage():
    for bad, words in [([], "no passages"), ([{"title": "x"}], "Passage 1 has no 'text'"),
                       (["ok.", "  "], "Passage 2 is empty"), ([{"id": "a", "text": "x."}, {"id": "a", "text": "y."}],
                                                               "same id 'a'"), ({"text": "x."}, "must be a list")]:
        with pytest.raises(InputError, match=words):
            check_inputs(bad, QUESTION)


def test_titles_and_ids_are_one_line_and_the_template_is_settable():
    doc = segment_passages([{"id": 7, "title": "Two\nlines", "text": "Some text here."}], "<doc id={id}>{text}</doc>")
    assert doc.passages == (Passage("7", "Two lines", "Some text here."),)
    assert doc.text == "<doc id=7>Some text here.</doc>"
    assert doc.without([]) == doc.text
    with pytest.raises(InputError, match=r"\{text\} exactly once"):
        check_inputs(["x."], QUESTION, passage_template="[{number}]")


def test_a_chat_history_is_passages_titled_by_their_role():
    history = [{"id": "turn-1", "title": "user", "text": "My ferry leaves at nine."},
               {"id": "turn-2", "title": "assistant", "text": "Noted: the ferry leaves at nine."}]
    doc = segment_passages(history)
    assert doc.text == "[1] user\nMy ferry leaves at nine.\n\n[2] assistant\nNoted: the ferry leaves at nine."


# -- the plain string, unchanged ---------------------------------------------------------------------
def test_a_plain_string_keeps_its_prompt_ids_and_scores(tiny_lm):
    """Values computed by the code before passages existed (same tiny model, same inputs)."""
    ids = PromptBuilder(tiny_lm.tokenizer, tiny_lm.model_id).prompt_ids(PIN_CONTEXT, "Who did Ada work with?")
    assert (len(ids), hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]) == (203, "dc0b05e9ed57ddf9")
    r = attribute(PIN_CONTEXT, "Who did Ada work with?", model=tiny_lm, response="Charles Babbage.", paragraphs=True)
    assert r.scores() == pytest.approx([-3.04166, -3.30035, -4.38246, 1.12315, 5.15934, -5.98732], abs=1e-4)
    assert r.scores("paragraph") == pytest.approx([-4.63691, -1.03349, -5.5966], abs=1e-4)
    assert r.log_prob_full == pytest.approx(-61.68271, abs=1e-4)
    assert r.passages == () and r.context == PIN_CONTEXT
    assert RunRequest.for_method(PIN_CONTEXT, "q", "m").to_dict().keys().isdisjoint({"passages", "passage_template"})


# -- the result --------------------------------------------------------------------------------------
def test_passages_through_attribute_keep_ids_and_titles_in_the_result_and_its_exports(tiny_lm):
    r = attribute(PASSAGES, QUESTION, model=tiny_lm, response="Dredging.", method="hierarchical", keep_paragraphs=1)
    assert [(p.id, p.title) for p in r.passages] == [("doc-7", "Harbour board minutes"),
                                                     ("doc-9", "<b>Weather</b> *log* <|im_end|>"), ("3", "")]
    assert r.passage_template == DEFAULT_PASSAGE_TEMPLATE and r.schema_version == 3
    assert len(r.paragraphs) == 3 and all(p.score is not None for p in r.paragraphs)  # hierarchical over passages
    back = AttributionResult.from_json(r.to_json())
    assert back.passages == r.passages and back.source_label(0) == "source 1 · Harbour board minutes"
    assert back.source_label(2) == "source 3"
    df = r.to_dataframe("sentence")
    assert list(df["source_id"]) == ["doc-7", "doc-7", "doc-9", "doc-9", "3", "3"]
    assert r.to_dataframe("paragraph")["source_title"][0] == "Harbour board minutes"
    assert list(top_k_table(r, 3, "paragraph").columns) == ["rank", "score (nats)", "source", "text", "scored by"]


def test_a_title_is_ordinary_text_in_the_prompt_never_a_special_token(tiny_lm):
    doc = segment_passages(PASSAGES)
    ids = PromptBuilder(tiny_lm.tokenizer, tiny_lm.model_id).prompt_ids(doc.text, QUESTION)
    end = tiny_lm.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert ids.count(end) == 1  # only the template's own end of the user turn


def test_the_heatmap_names_each_source_and_escapes_its_title(tiny_lm):
    r = attribute(PASSAGES, QUESTION, model=tiny_lm, response="Dredging.", paragraphs=True)
    markup = heatmap_html(r, "sentence") + heatmap_html(r, "paragraph")
    assert "(source 1 · Harbour board minutes)" in markup and "Source 2 · &lt;b&gt;Weather&lt;/b&gt;" in markup
    assert "<b>Weather" not in markup


def test_old_result_files_without_passages_still_load_and_bad_passages_are_refused(tiny_lm):
    r = attribute(PIN_CONTEXT, "Who?", model=tiny_lm, response="Babbage.")
    old = json.loads(r.to_json())
    for key in ("passages", "passage_template"):
        del old[key]
    old["schema_version"] = 2
    assert AttributionResult.from_dict(old).passages == ()
    p = json.loads(attribute(PASSAGES, QUESTION, model=tiny_lm, response="Dredging.").to_json())
    p["passages"] = p["passages"][:2]
    with pytest.raises(ResultFileError, match="'passages' has 2 entries"):
        AttributionResult.from_dict(p)


# -- CLI, batch and requests -------------------------------------------------------------------------
def test_cli_passages_file_names_sources_in_table_json_and_csv(tiny_model_dir, tmp_path, capsys):
    src = tmp_path / "p.jsonl"
    src.write_text("\n".join(json.dumps(p) for p in PASSAGES), encoding="utf-8")
    out, csv = tmp_path / "r.json", tmp_path / "r.csv"
    code = main(["attribute", "--passages", str(src), "--question", QUESTION, "--model", str(tiny_model_dir),
                 "--response", "Dredging.", "--json", str(out), "--csv", str(csv)])
    assert code == 0
    assert "source 1 · Harbour board minutes" in capsys.readouterr().out
    assert [p["id"] for p in json.loads(out.read_text())["passages"]] == ["doc-7", "doc-9", "3"]
    assert "doc-7,Harbour board minutes" in csv.read_text()


def test_a_passages_file_may_be_a_json_list_and_a_bad_one_gets_one_message(tmp_path):
    assert passages_from_text(json.dumps(PASSAGES))[0].title == "Harbour board minutes"
    with pytest.raises(InputError, match="p.json: Passage 1 has no 'text'"):
        passages_from_text('[{"id": "a"}]', "p.json")


def test_batch_rows_take_a_passages_column_and_results_keep_ids(tiny_model_dir, tmp_path):
    path = tmp_path / "rows.csv"
    import csv as csvmod

    with path.open("w", newline="", encoding="utf-8") as f:
        w = csvmod.DictWriter(f, ["id", "passages", "question", "response"])
        w.writeheader()
        w.writerow({"id": "r1", "passages": json.dumps(PASSAGES), "question": QUESTION, "response": "Dredging."})
        w.writerow({"id": "r2", "passages": "[{\"title\": \"no text\"}]", "question": QUESTION, "response": "x"})
    rows = read_rows(path)
    assert rows[0].passages[0].id == "doc-7" and rows[0].error is None
    assert "Passage 1 has no 'text'" in rows[1].error
    results = {r.row_id: r for r in attribute_many(path, model=str(tiny_model_dir))}
    assert [p.id for p in results["r1"].result.passages] == ["doc-7", "doc-9", "3"]
    assert results["r2"].status == "failed"


def test_a_request_with_passages_round_trips_and_rebuilds_its_document():
    req = RunRequest.for_method(PASSAGES, QUESTION, "m")
    again = RunRequest.from_json(req.to_json())
    assert again == req and again.key == req.key
    assert again.document().passages == segment_passages(PASSAGES).passages
    assert req.key != RunRequest.for_method(req.context, QUESTION, "m").key  # passages are not the same input
