"""The defects a new user met in the first five minutes (issue 9), each checked on the real app (tiny model)."""

from __future__ import annotations

import json

import pytest
from apptools import errors, heatmap, html_bodies, messages, parse, run_example, wait_for_runs

from attribot_core import AttributionResult
from attribot_core.examples import get_example
from studio.config import CUSTOM

MARKDOWN = "[x](http://host/) ![i](http://host/p.png)"


def _set(app, kind: str, key: str, value):
    getattr(app, kind)(key=key).set_value(value).run()
    assert not app.exception, app.exception


# -- 1: inputs survive page switches ---------------------------------------------------------------------
ATTRIBUTE_INPUTS = [  # (widget kind, key, a value that is not the default)
    ("text_area", "in_context", get_example("tessaly").context),
    ("text_input", "in_question", "Which town is the capital?"),
    ("text_area", "in_response", "Caldor."),
    ("selectbox", "in_method", "hierarchical"),
    ("number_input", "in_param_hierarchical_keep_paragraphs", 3),
    ("number_input", "in_max_new_tokens", 17),
]


def test_every_input_of_every_page_survives_a_round_trip_through_all_pages(at):
    # the loo parameter ("Also score whole paragraphs") is set first, then the method switched away from loo
    _set(at, "checkbox", "in_param_loo_paragraphs", False)
    for kind, key, value in ATTRIBUTE_INPUTS:
        _set(at, kind, key, value)
    at.button(key="run").click().run()
    wait_for_runs(at, "attribute")
    _set(at, "radio", "in_level", "Paragraphs")
    _set(at, "radio", "in_scale", "rank")
    _set(at, "slider", "in_intensity", 2.5)
    _set(at, "number_input", "in_top_k", 2)
    assert at.session_state["result"] is not None

    at.switch_page("pages/drilldown.py").run()
    _set(at, "selectbox", "in_drill_paragraph", 3)
    at.switch_page("pages/compare.py").run()
    _set(at, "multiselect", "in_cmp_methods", ["hierarchical"])
    _set(at, "number_input", "in_cmp_k", 2)
    _set(at, "checkbox", "in_cmp_retime", False)
    at.switch_page("pages/learn.py").run()
    _set(at, "selectbox", "in_learn_proxy", at.selectbox(key="in_learn_proxy").options[0])
    at.switch_page("pages/attribute.py").run()  # Attribute -> Drill-down -> Compare -> Learn -> Attribute

    for kind, key, value in ATTRIBUTE_INPUTS:
        assert getattr(at, kind)(key=key).value == value, key
    assert at.radio(key="in_level").value == "Paragraphs" and at.radio(key="in_scale").value == "rank"
    assert at.slider(key="in_intensity").value == 2.5 and at.number_input(key="in_top_k").value == 2
    _set(at, "selectbox", "in_method", "loo")
    assert at.checkbox(key="in_param_loo_paragraphs").value is False  # did not flip back on
    assert at.caption[1].value.startswith("Leave each sentence out; reuse")  # loo's caption with loo

    at.switch_page("pages/drilldown.py").run()
    assert at.selectbox(key="in_drill_paragraph").value == 3
    at.switch_page("pages/compare.py").run()
    assert at.multiselect(key="in_cmp_methods").value == ["hierarchical"]
    assert at.number_input(key="in_cmp_k").value == 2 and at.checkbox(key="in_cmp_retime").value is False


def test_compare_reads_method_parameters_set_on_the_attribute_page_after_page_switches(at):
    run_example(at, "tessaly", response="Caldor.")
    _set(at, "selectbox", "in_method", "hierarchical")
    _set(at, "number_input", "in_param_hierarchical_keep_paragraphs", 1)
    for page in ("pages/learn.py", "pages/drilldown.py", "pages/compare.py"):
        at.switch_page(page).run()
    at.button(key="cmp_run").click().run()
    wait_for_runs(at, "compare")
    base, results = at.session_state["compare"]
    assert results["hierarchical"].settings["keep_paragraphs"] == 1


# -- 2: the result comes into view ------------------------------------------------------------------------
def test_the_inputs_fold_away_once_a_result_exists_and_open_for_a_new_example(at):
    assert at.session_state["inputs_open"] is True  # nothing to show yet: the inputs are the page
    run_example(at, "lighthouse", response="In 1874.")
    assert at.session_state["inputs_open"] is False and heatmap(at)
    at.button(key="example_quillfeather").click().run()
    assert at.session_state["inputs_open"] is True  # loading an example shows what was loaded
    at.switch_page("pages/drilldown.py").run()
    at.switch_page("pages/attribute.py").run()
    assert at.session_state["inputs_open"] is True  # still as the user left it


def test_inputs_stay_open_when_the_run_is_refused_at_once(at):
    at.text_area(key="in_context").set_value("Only one sentence here.")
    at.text_input(key="in_question").set_value("   ")
    at.button(key="run").click().run()
    wait_for_runs(at, "attribute")
    assert "The question is empty" in errors(at)[0]
    assert at.session_state["inputs_open"] is True


# -- 4: a damaged result file ------------------------------------------------------------------------------
def _upload(at, name: str, data: bytes):
    """A new session of the app opens a file in the sidebar (AppTest shows app.py's sidebar on a first run only)."""
    app = at.__class__.from_file(at._script_path, default_timeout=120).run()
    app.sidebar.file_uploader(key="result_file").set_value((name, data, "application/json"))
    app.run()
    assert not app.exception, app.exception
    return app


@pytest.mark.parametrize(("data", "field"), [
    (b"[1, 2, 3]", "expected a JSON object, got a list"),
    (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
    ("score-abc", "'sentences[1].score' must be a finite number or null"),
    ("offsets", "'sentences[2].text' does not match the context at its offsets"),
])
def test_a_damaged_result_file_is_refused_with_one_message_and_every_page_keeps_working(at, data, field):
    run_example(at, "lighthouse", response="In 1874.")
    good = at.session_state["result"]
    if isinstance(data, str):
        d = json.loads(good.to_json())
        if data == "score-abc":
            d["sentences"][1]["score"] = "abc"
        else:
            d["sentences"][2]["start"] = 0
        data = json.dumps(d).encode()
    app = _upload(at, "broken.json", data)
    shown = errors(app)
    assert len(shown) == 1 and "Could not open 'broken.json'" in shown[0] and field in shown[0]
    assert app.session_state["result"] is None  # the broken one is never kept
    for page in ("pages/drilldown.py", "pages/compare.py", "pages/learn.py", "pages/attribute.py"):
        app.switch_page(page).run()
        assert not app.exception and not errors(app), page  # and the message is not repeated on every page
    run_example(app, "lighthouse", response="In 1874.")
    assert app.session_state["result"] == good


# -- 5: no Markdown in messages ----------------------------------------------------------------------------
def _no_live_markdown(app) -> None:
    """The crafted text is shown as text: never in a Streamlit alert/markdown, never as a link or image."""
    for el in [*app.error, *app.warning, *app.info, *app.markdown, *app.caption]:
        assert "http://host/" not in el.value, el.value
    bodies = "".join(html_bodies(app))
    assert "<img" not in bodies and "<a " not in bodies
    for status in app.status:
        assert "](http" not in status.label  # escaped: \[x\]\(http\:...


def test_a_crafted_file_name_is_shown_as_text(at):
    app = _upload(at, f"{MARKDOWN}.json", b'{"not": "a result"}')
    assert f"Could not open '{MARKDOWN}.json'" in errors(app)[0]
    _no_live_markdown(app)


def test_a_crafted_model_name_is_shown_as_text(at):
    at.button(key="example_lighthouse").click().run()
    _set(at, "selectbox", "in_model", CUSTOM)
    _set(at, "text_input", "in_model_custom", MARKDOWN)
    at.button(key="run").click().run()
    wait_for_runs(at, "attribute")
    assert not at.exception and MARKDOWN in errors(at)[0]
    _no_live_markdown(at)


def test_a_crafted_model_name_in_an_opened_result_is_shown_as_text_on_every_page(at):
    run_example(at, "lighthouse", response="In 1874.")
    d = json.loads(at.session_state["result"].to_json())
    d["model"] = MARKDOWN
    app = _upload(at, "crafted.json", json.dumps(d).encode())
    assert app.session_state["result"].model == MARKDOWN
    for page in ("pages/attribute.py", "pages/drilldown.py", "pages/compare.py", "pages/learn.py"):
        app.switch_page(page).run()
        assert not app.exception
        _no_live_markdown(app)


# -- 7: opening a saved result fills the inputs ------------------------------------------------------------
def test_opening_a_saved_result_fills_the_inputs_to_tweak_and_rerun(at, app_env):
    run_example(at, "quillfeather", method="hierarchical", response="Mira Orrin founded it.")
    saved = at.session_state["result"].to_json()
    fresh = _upload(at, "saved.json", saved.encode())
    result = AttributionResult.from_json(saved)
    assert fresh.text_area(key="in_context").value == result.context
    assert fresh.text_input(key="in_question").value == result.question
    assert fresh.text_area(key="in_response").value == result.response
    assert fresh.selectbox(key="in_method").value == "hierarchical"
    assert fresh.number_input(key="in_param_hierarchical_keep_paragraphs").value == result.settings["keep_paragraphs"]
    assert fresh.selectbox(key="in_model").value == str(app_env)
    assert "change any of them and Run again" in messages(fresh, "info")[0]
    _set(fresh, "number_input", "in_param_hierarchical_keep_paragraphs", 1)  # tweak, re-run
    fresh.button(key="run").click().run()
    wait_for_runs(fresh, "attribute")
    again = fresh.session_state["result"]
    assert again.settings["keep_paragraphs"] == 1 and again.response == result.response and not errors(fresh)


def test_fill_inputs_puts_an_unlisted_model_into_the_free_text_box(at):
    run_example(at, "lighthouse", response="In 1874.")
    d = json.loads(at.session_state["result"].to_json())
    d["model"] = "/some/other/model-folder"
    app = _upload(at, "other.json", json.dumps(d).encode())
    app.expander  # noqa: B018 - the inputs are drawn (folded) under the result
    assert app.selectbox(key="in_model").value == CUSTOM
    assert app.text_input(key="in_model_custom").value == "/some/other/model-folder"


# -- 12 and 13: a cut-off response; known evidence and a known-wrong answer --------------------------------
def test_a_response_cut_off_at_max_new_tokens_is_flagged_next_to_it_and_in_the_exports(at, downloads):
    at.button(key="example_lighthouse").click().run()
    _set(at, "number_input", "in_max_new_tokens", 2)
    at.button(key="run").click().run()
    wait_for_runs(at, "attribute")
    assert at.session_state["result"].extra["response_complete"] is False
    response = next(b for b in html_bodies(at) if "ab-response" in b and "<h" not in b)
    assert 'data-truncated="1"' in response and "cut off at the limit of new tokens" in response
    files = {name.rsplit(".", 1)[1]: data.decode() for name, _, data in downloads if name}
    assert json.loads(files["json"])["extra"]["response_complete"] is False
    assert "cut off at the limit of new tokens" in files["html"]
    header, first = files["csv"].splitlines()[:2]
    assert header.endswith(",response_complete") and first.endswith(",False")


def test_an_examples_evidence_is_outlined_and_a_wrong_answer_is_said(at):
    example = get_example("quillfeather")
    run_example(at, "quillfeather", response="The Quillfeather is a fountain pen with a glass nib.")
    outlined = [s["text"] for s in parse(heatmap(at)).spans if "ab-gold" in s["class"]]
    assert outlined == list(example.evidence)
    known = next(b for b in html_bodies(at) if "ab-known" in b)
    assert 'data-known="wrong"' in known and "Mira Orrin" in known
    run_example(at, "quillfeather", response="Mira Orrin founded it.")
    assert 'data-known="wrong"' not in next(b for b in html_bodies(at) if "ab-known" in b)


def test_inputs_come_back_when_streamlit_drops_every_widget_key(at):
    """What a real browser session showed: Streamlit forgets the state of widgets that were not drawn.
    Dropping every widget key by hand (AppTest keeps them longer than the server does) must lose nothing."""
    _set(at, "checkbox", "in_param_loo_paragraphs", False)
    for kind, key, value in ATTRIBUTE_INPUTS:
        _set(at, kind, key, value)
    at.switch_page("pages/drilldown.py").run()
    for key in [k for _, k, _ in ATTRIBUTE_INPUTS] + ["in_param_loo_paragraphs", "in_model"]:
        if key in at.session_state:
            del at.session_state[key]
    at.switch_page("pages/attribute.py").run()
    for kind, key, value in ATTRIBUTE_INPUTS:
        assert getattr(at, kind)(key=key).value == value, key
    _set(at, "selectbox", "in_method", "loo")
    assert at.checkbox(key="in_param_loo_paragraphs").value is False
