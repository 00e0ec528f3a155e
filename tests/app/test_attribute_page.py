"""The Attribute page end to end on a tiny model: run, heatmap, table, facts, exports, part re-attribution."""

from __future__ import annotations

import csv
import io
import json
import time

from apptools import errors, heatmap, html_bodies, messages, parse, run_example, wait_for_runs

from attribot_core import AttributionResult, segment
from attribot_core.examples import get_example


def test_home_page_offers_examples_and_asks_for_input(at):
    assert at.title[0].value == "Attribute"
    assert [b.label for b in at.button][:3] == [
        "The Varn lighthouse (answer in one sentence)",
        "The Quillfeather pen (needs two sentences)",
        "The capital of Tessaly (with a distractor)",
    ]
    assert "press **Run**" in at.info[0].value
    assert at.session_state["result"] is None


def test_example_loads_with_one_click(at):
    at.button(key="example_quillfeather").click().run()
    example = get_example("quillfeather")
    assert at.text_area(key="in_context").value == example.context
    assert at.text_input(key="in_question").value == example.question
    assert at.text_area(key="in_response").value == ""


def test_inputs_and_result_survive_a_page_switch(at):
    run_example(at, "tessaly", response="Caldor.")
    at.text_input(key="in_question").set_value("Which town is the capital?").run()
    at.selectbox(key="in_method").set_value("hierarchical").run()
    result = at.session_state["result"]
    at.switch_page("pages/drilldown.py").run()
    at.switch_page("pages/learn.py").run()
    at.switch_page("pages/attribute.py").run()
    assert at.text_area(key="in_context").value == get_example("tessaly").context
    assert at.text_input(key="in_question").value == "Which town is the capital?"
    assert at.selectbox(key="in_method").value == "hierarchical"
    assert at.session_state["result"] is result and heatmap(at)


def test_a_pasted_context_is_computed_ahead_while_its_question_is_still_to_be_typed(at, app_env):
    """The idle worker prefills the inputs on screen (``studio.runs.prepare``); before a question exists, the
    context's part of the prompt, from which the question's prefill and the Run then go on."""
    from studio import runs

    run_example(at, "tessaly", response="Caldor.")  # loads the model: a prefill never does
    context = get_example("lighthouse").context
    at.text_input(key="in_question").set_value("").run()
    at.text_area(key="in_context").set_value(context).run()
    deadline = time.monotonic() + 60
    while runs.executor().prefilled(str(app_env), context, "") is None:
        assert time.monotonic() < deadline, "the pasted context was not computed ahead"
        time.sleep(0.05)
    at.text_input(key="in_question").set_value("Who kept the light?").run()
    while runs.executor().prefilled(str(app_env), context, "Who kept the light?") is None:
        assert time.monotonic() < deadline, "the question was not computed ahead"
        time.sleep(0.05)


def test_example_runs_end_to_end_to_a_heatmap(at, app_env):
    run_example(at, "lighthouse")
    assert not errors(at)
    result: AttributionResult = at.session_state["result"]
    example = get_example("lighthouse")
    assert result.context == example.context and result.model == str(app_env)
    assert result.response.strip() and "generate_s" in result.timings  # generated, then attributed
    spans = parse(heatmap(at)).spans
    assert len(spans) == len(segment(example.context).sentences) == len(result.sentences)
    for span, s in zip(spans, result.sentences, strict=True):
        assert span["data-sign"] == ("pos" if s.score > 0 else "neg" if s.score < 0 else "zero")
    table = at.dataframe[0].value
    assert list(table.columns) == ["rank", "score (nats)", "paragraph", "text", "scored by"]
    assert table["text"].tolist() == [s.text for s in result.top_k(5)]
    facts = next(b for b in html_bodies(at) if "<table class=\"ab-facts\">" in b)
    assert "Forward passes" in facts and f"{result.total_forward_passes}:" in facts and "loo (paragraphs=True)" in facts
    assert any(c.value.startswith("loo: done in") for c in at.caption)


def test_rerunning_identical_inputs_returns_the_cached_result(at):
    run_example(at, "tessaly")
    first, run_id = at.session_state["result"], at.session_state["current_run"]
    at.button(key="run").click().run()
    wait_for_runs(at, "attribute")
    assert at.session_state["result"] == first and at.session_state["current_run"] == run_id
    assert any("stored result of identical inputs" in c.value for c in at.caption)


def test_exports_json_csv_and_self_contained_html(at, downloads):
    run_example(at, "lighthouse", response="It was first lit on 3 March 1874.")
    result = at.session_state["result"]
    files = {name.rsplit(".", 1)[1]: (mime, data) for name, mime, data in downloads if name}
    assert set(files) == {"json", "csv", "html"}
    assert AttributionResult.from_json(files["json"][1].decode()) == result
    csv = files["csv"][1].decode().splitlines()
    assert csv[0].startswith("index,start,end,text,score") and len(csv) == len(result.sentences) + 1
    page = files["html"][1].decode()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    assert files["html"][0] == "text/html"


def _fresh(at):
    """A new session of the same app (AppTest shows the sidebar of app.py on a session's first run only)."""
    app = at.__class__.from_file(at._script_path, default_timeout=60)
    return app.run()


def test_a_saved_json_result_reopens_in_the_app(at):
    run_example(at, "lighthouse", response="It was first lit on 3 March 1874.")
    saved = at.session_state["result"].to_json()
    again = _fresh(at)
    again.sidebar.file_uploader(key="result_file").set_value(("result.json", saved.encode(), "application/json"))
    again.run()
    assert again.session_state["result"] == AttributionResult.from_json(saved)
    assert "Opened 'result.json'" in messages(again, "info")[0]
    assert len(parse(heatmap(again)).spans) == len(again.session_state["result"].sentences)


def test_a_file_that_is_not_a_result_gets_a_message(at):
    at.sidebar.file_uploader(key="result_file").set_value(("bad.json", b'{"not": "a result"}', "application/json"))
    at.run()
    assert "Could not open 'bad.json'" in errors(at)[0] and not at.exception
    assert at.session_state["result"] is None and at.button(key="run")


def test_hierarchical_marks_pruned_sentences_as_not_scored(at):
    at.button(key="example_tessaly").click().run()
    at.selectbox(key="in_method").set_value("hierarchical").run()
    at.number_input(key="in_param_hierarchical_keep_paragraphs").set_value(1).run()
    at.text_area(key="in_response").set_value("The capital is Caldor.").run()
    at.button(key="run").click().run()
    wait_for_runs(at, "attribute")
    result = at.session_state["result"]
    assert result.method == "hierarchical" and result.settings["keep_paragraphs"] == 1
    markup = heatmap(at)
    signs = [s["data-sign"] for s in parse(markup).spans]
    assert signs.count("none") == sum(s.score is None for s in result.sentences) > 0
    assert "not scored (pruned)" in markup


def test_first_order_runs_from_the_page_and_colours_sentences_by_sign(at):
    at.button(key="example_tessaly").click().run()
    at.selectbox(key="in_method").set_value("first-order").run()
    at.text_area(key="in_response").set_value("The capital is Caldor.").run()
    at.button(key="run").click().run()
    wait_for_runs(at, "attribute")
    result = at.session_state["result"]
    assert result.method == "first-order" and all(s.score is not None for s in result.sentences)
    signs = [s["data-sign"] for s in parse(heatmap(at)).spans]
    assert len(signs) == len(result.sentences)
    assert signs == ["pos" if s.score > 0 else "neg" if s.score < 0 else "zero" for s in result.sentences]
    assert not errors(at)


def test_granularity_switch_shows_one_span_per_paragraph(at):
    run_example(at, "quillfeather", response="Mira Orrin.")
    at.radio(key="in_level").set_value("Paragraphs").run()
    spans = parse(heatmap(at)).spans
    assert [s["data-level"] for s in spans] == ["paragraph"] * 4
    assert at.dataframe[0].value["paragraph"].tolist() == sorted(
        at.dataframe[0].value["paragraph"].tolist(), key=lambda p: -at.session_state["result"].paragraphs[p - 1].score)


def test_intensity_control_changes_colours_not_scores(at):
    run_example(at, "lighthouse", response="3 March 1874.")
    before = heatmap(at)
    at.slider(key="in_intensity").set_value(4.0).run()
    after = heatmap(at)
    assert before != after
    assert [s["data-score"] for s in parse(before).spans] == [s["data-score"] for s in parse(after).spans]


def test_one_sentence_of_the_response_is_reattributed_without_regenerating(at):
    response = "Orrin & Daughters makes it. Mira Orrin founded the workshop."
    run_example(at, "quillfeather", response=response)
    at.radio(key="in_part_mode").set_value("One sentence").run()
    part = segment(response).sentences[1]
    next(w for w in at.selectbox if w.label == "Sentence of the response").set_value(1)
    at.button(key="run_part").click().run()
    wait_for_runs(at, "attribute")
    assert not at.exception and not errors(at)
    result = at.session_state["result"]
    assert result.response == response and result.response_span == (part.start, part.end)
    assert "generate_s" not in result.timings
    assert f'<mark class="ab-part" title="the attributed part">{part.text}</mark>' in "".join(html_bodies(at))


def test_a_character_range_of_the_response_is_reattributed(at):
    response = "The lamp was first lit on 3 March 1874."
    run_example(at, "lighthouse", response=response)
    at.radio(key="in_part_mode").set_value("Character range").run()
    next(w for w in at.slider if w.label == "Characters of the response").set_value((26, 38)).run()
    at.button(key="run_part").click().run()
    wait_for_runs(at, "attribute")
    assert at.session_state["result"].response_span == (26, 38)
    assert at.session_state["result"].response_tokens < len(response)


def test_pasted_markup_is_shown_as_text_and_never_rendered(at):
    context = ('Ada wrote notes <script>alert("ctx")</script> on the engine. '
               'She met Babbage <img src=x onerror="alert(1)"> in 1833.\n\nThe river is wide. It floods.')
    at.text_area(key="in_context").set_value(context).run()
    at.text_input(key="in_question").set_value("<script>alert('q')</script> Who?").run()
    at.text_area(key="in_response").set_value("Babbage <img src=y onerror=alert(2)>").run()
    at.button(key="run").click().run()
    wait_for_runs(at, "attribute")
    assert not at.exception and not errors(at)
    bodies = "".join(html_bodies(at))
    assert "<script" not in bodies and "<img" not in bodies
    assert "&lt;script&gt;alert(&quot;ctx&quot;)&lt;/script&gt;" in bodies
    assert "onerror=&quot;alert(1)&quot;" in bodies and "&lt;img src=y onerror=alert(2)&gt;" in bodies
    first = parse(heatmap(at)).spans[0]["text"]
    assert first == 'Ada wrote notes <script>alert("ctx")</script> on the engine.'


def test_upload_of_a_text_file_becomes_the_context(at):
    text = "# Notes\n\nThe lamp was lit in 1874. It burned paraffin.\n\nThe tower is white. It is tall."
    at.file_uploader(key="upload").set_value(("notes.md", text.encode(), "text/markdown")).run()
    assert at.text_area(key="in_context").value == text
    assert not errors(at)


def test_json_is_valid_for_the_cli_and_other_tools(at, downloads):
    run_example(at, "tessaly", response="Caldor.")
    data = json.loads(next(d for n, _, d in downloads if n and n.endswith(".json")))
    assert data["method"] == "loo" and len(data["sentences"]) == 8 and data["schema_version"] == 3


def test_proxy_pruning_runs_with_a_second_configured_model(app_env, tiny_model_dir_b, monkeypatch):
    from apptools import APP
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ATTRIBOT_MODELS", f"{app_env},{tiny_model_dir_b}")
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.button(key="example_tessaly").click().run()
    app.selectbox(key="in_method").set_value("pruning").run()
    assert app.selectbox(key="in_proxy").value == str(tiny_model_dir_b)  # the other model is the default proxy
    app.number_input(key="in_param_pruning_keep_sentences").set_value(3).run()
    app.text_area(key="in_response").set_value("Caldor.").run()
    app.button(key="run").click().run()
    wait_for_runs(app, "attribute")
    assert not app.exception and not errors(app)
    result = app.session_state["result"]
    assert result.method == "pruning" and result.proxy_model == str(tiny_model_dir_b)
    by = {s.scored_by for s in result.sentences}
    assert by == {str(app_env), str(tiny_model_dir_b)}  # target rescored its top m, the proxy the rest
    titles = [span["title"] for span in parse(heatmap(app)).spans]
    for s, title in zip(result.sentences, titles, strict=True):
        assert title.endswith("(proxy)" if s.scored_by == str(tiny_model_dir_b) else "(target)")


def test_the_csv_download_neutralises_a_sentence_that_is_a_formula(at, downloads):
    formula = '=HYPERLINK("http://198.51.100.7/","click")'
    at.text_area(key="in_context").set_value(f"{formula} starts here. The lamp was lit in 1874.\n\nA third part.").run()
    at.text_input(key="in_question").set_value("When was it lit?").run()
    at.text_area(key="in_response").set_value("=1874, it says.").run()  # a response token starts with "="
    at.button(key="run").click().run()
    wait_for_runs(at)
    assert not at.exception, at.exception
    sheets = {name: data for name, _, data in downloads if name and name.endswith(".csv")}
    sheet = next(data for name, data in sheets.items() if "per-token" not in name)
    tokens = next(data for name, data in sheets.items() if "per-token" in name).decode()
    token_texts = [r["text"] for r in csv.DictReader(io.StringIO(tokens))]
    assert token_texts[0].startswith("'=") and not any(t.startswith(("=", "+", "@")) for t in token_texts)
    rows = list(csv.DictReader(io.StringIO(sheet.decode())))
    assert rows[0]["text"] == "'" + formula + " starts here."
    assert all(float(r["score"]) == float(r["score"]) for r in rows if r["score"])  # scores are still numbers


def test_the_plan_of_a_run_is_shown_before_run_and_follows_the_method(at):
    at.button(key="example_lighthouse").click().run()
    doc = segment(get_example("lighthouse").context)
    plans = [c.value for c in at.caption if c.value.startswith("Plan: about ")]
    assert len(plans) == 1 and plans[0].startswith(
        f"Plan: about {1 + len(doc.sentences) + len(doc.paragraphs)} forward passes (loo over {len(doc.paragraphs)} "
        f"paragraphs, {len(doc.sentences)} sentences); estimated time about ")
    assert "an estimate from the model size" in plans[0]
    at.selectbox(key="in_method").set_value("surrogate").run()
    assert any(c.value.startswith("Plan: about 33 forward passes (surrogate") for c in at.caption)
