"""Bad input never shows a traceback: each case gets a clear message and the page stays usable."""

from __future__ import annotations

import re

import pytest
from apptools import APP, errors, heatmap, run_example, running, wait_for_runs

from studio.config import CUSTOM

ONE_SENTENCE = "The lamp was first lit on 3 March 1874."
LONG = "\n\n".join(f"The quick brown fox number {i} jumps over the lazy dog near the river bank."
                   for i in range(400))


def test_a_one_sentence_context_is_attributed_as_the_api_cli_and_batches_accept_it(at):
    at.text_area(key="in_context").set_value(ONE_SENTENCE)
    at.text_input(key="in_question").set_value("When was it lit?")
    at.text_area(key="in_response").set_value("In 1874.")
    at.button(key="run").click().run()
    wait_for_runs(at, "attribute")
    assert not at.exception and not errors(at)
    assert len(at.session_state["result"].sentences) == 1


@pytest.mark.parametrize(
    ("context", "question", "message"),
    [
        ("", "When?", "The context is empty"),
        ("   \n\n ", "When?", "The context is empty"),
        ("The lamp was lit. It burned oil.", "   ", "The question is empty"),
        (LONG, "Which fox?", r"takes \d{4,} tokens.* the 1024-token window"),  # both numbers
    ],
    ids=["empty-context", "blank-context", "empty-question", "too-long"],
)
def test_bad_input_gets_a_clear_message_and_no_traceback(at, context, question, message):
    at.text_area(key="in_context").set_value(context)
    at.text_input(key="in_question").set_value(question)
    at.button(key="run").click().run()
    wait_for_runs(at, "attribute")
    assert not at.exception
    assert re.search(message, errors(at)[0])
    assert at.session_state["result"] is None and not running(at)
    # still usable: an example runs right after
    run_example(at, "lighthouse", response="In 1874.")
    assert at.session_state["result"] is not None and not errors(at)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "Could not read 'binary.txt' as UTF-8 text"),
        ("latin1.md", "caf\xe9 cr\xe8me".encode("latin-1"), "Could not read 'latin1.md' as UTF-8 text"),
        ("empty.txt", b"  \n", "'empty.txt' is empty"),
    ],
)
def test_unreadable_upload_gets_a_message_and_keeps_the_context(at, name, data, message):
    at.text_area(key="in_context").set_value("Kept text. Still here.").run()
    at.file_uploader(key="upload").set_value((name, data, "text/plain")).run()
    assert not at.exception
    assert message in errors(at)[0]
    assert at.text_area(key="in_context").value == "Kept text. Still here."


def test_a_model_path_that_does_not_exist_gets_a_message(at):
    at.button(key="example_lighthouse").click().run()
    at.selectbox(key="in_model").set_value(CUSTOM).run()
    at.text_input(key="in_model_custom").set_value("/no/such/model-folder").run()
    at.button(key="run").click().run()
    wait_for_runs(at, "attribute")
    assert not at.exception
    assert "Model path not found: /no/such/model-folder" in errors(at)[0]
    at.selectbox(key="in_model").set_value(at.selectbox(key="in_model").options[0]).run()


def test_custom_model_box_is_hidden_when_the_deployment_disallows_it(app_env, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ATTRIBOT_ALLOW_CUSTOM_MODEL", "0")
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert app.selectbox(key="in_model").options == [f"{app_env.name} (folder)"]


def test_a_proxy_method_without_a_second_model_explains_what_it_needs(at):
    at.button(key="example_lighthouse").click().run()
    at.selectbox(key="in_method").set_value("proxy").run()
    at.selectbox(key="in_proxy").set_value(CUSTOM).run()
    at.button(key="run").click().run()
    wait_for_runs(at, "attribute")
    assert "needs a proxy model" in errors(at)[0] and not at.exception


def test_an_empty_character_range_means_the_whole_response(at):
    run_example(at, "lighthouse", response="In 1874.")
    at.radio(key="in_part_mode").set_value("Character range").run()
    next(w for w in at.slider if w.label == "Characters of the response").set_value((3, 3)).run()
    at.button(key="run_part").click().run()
    wait_for_runs(at, "attribute")
    assert at.session_state["result"].response_span is None and not at.exception and not errors(at)
    assert heatmap(at)
