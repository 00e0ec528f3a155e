"""Drill-down, Compare methods and Learn pages on the tiny model: their charts' data and tables."""

from __future__ import annotations

import json

import pytest
from apptools import errors, messages, run_example, wait_for_runs


def plotly_specs(app) -> list[dict]:
    return [json.loads(c.proto.spec) for c in app.get("plotly_chart")]


@pytest.mark.parametrize("page", ["pages/drilldown.py", "pages/compare.py"])
def test_pages_without_a_result_point_to_the_attribute_page(at, page):
    at.switch_page(page).run()
    assert not at.exception
    assert "Attribute page" in at.info[0].value
    assert not at.get("plotly_chart")


def test_drilldown_opens_on_the_top_paragraph_and_shows_its_sentences(at):
    run_example(at, "quillfeather", response="Mira Orrin founded it.")
    result = at.session_state["result"]
    top = max(result.paragraphs, key=lambda p: p.score).index
    at.switch_page("pages/drilldown.py").run()
    assert not at.exception
    overview, sentences = plotly_specs(at)
    bars, dots = overview["data"]
    assert (bars["type"], dots["type"]) == ("bar", "scatter")  # side by side, no treemap nesting
    assert bars["customdata"] == [0, 1, 2, 3]
    assert bars["y"] == pytest.approx([p.score for p in result.paragraphs])
    assert dots["y"] == pytest.approx([s.score for s in result.sentences])
    assert at.selectbox(key="in_drill_paragraph").value == top
    assert sentences["layout"]["title"]["text"] == f"Sentences of paragraph {top + 1}"
    # the selector (keyboard users, tests) picks a paragraph like a click on its bar
    other = (top + 1) % len(result.paragraphs)
    at.selectbox(key="in_drill_paragraph").set_value(other).run()
    sentences = plotly_specs(at)[1]
    assert sentences["layout"]["title"]["text"] == f"Sentences of paragraph {other + 1}"
    in_par = [s for s in result.sentences if s.paragraph == other]
    assert sentences["data"][0]["customdata"] == [s.index for s in in_par]
    assert sentences["data"][0]["x"] == pytest.approx([s.score for s in in_par])
    assert at.dataframe[0].value["text"].tolist() == [s.text for s in in_par]
    assert at.get("plotly_chart")[0].proto.selection_mode  # bars and dots are clickable (on_select)
    assert [b.label for b in at.get("download_button")] == [
        "Download JSON (full result)", "Download CSV (sentence table)", "Download HTML heatmap"]


def test_drilldown_opens_a_new_result_on_its_own_top_paragraph(at):
    run_example(at, "lighthouse", response="It was first lit on 3 March 1874.")
    at.switch_page("pages/drilldown.py").run()
    at.selectbox(key="in_drill_paragraph").set_value(2).run()
    at.switch_page("pages/attribute.py").run()
    at.session_state["inputs"]["in_response"] = "Tobias Renn built it."  # a new run, a new result
    at.button(key="run").click().run()
    wait_for_runs(at, "attribute")
    result = at.session_state["result"]
    at.switch_page("pages/drilldown.py").run()
    assert at.selectbox(key="in_drill_paragraph").value == max(result.paragraphs, key=lambda p: p.score).index


def test_drilldown_of_a_result_from_json_works_like_a_fresh_one(at):
    run_example(at, "lighthouse", response="In 1874.")
    at.switch_page("pages/drilldown.py").run()
    at.selectbox(key="in_drill_paragraph").set_value(1).run()
    assert len(plotly_specs(at)) == 2 and not at.exception


def test_compare_runs_methods_against_exact_loo(at):
    run_example(at, "tessaly", response="The capital is Caldor.")
    at.switch_page("pages/compare.py").run()
    assert at.multiselect(key="in_cmp_methods").value == ["loo-naive", "hierarchical"]
    at.button(key="cmp_run").click().run()
    wait_for_runs(at, "compare")
    assert not at.exception and not errors(at)
    table = at.dataframe[0].value.set_index("method")
    assert list(table.index) == ["loo", "loo-naive", "hierarchical"]
    assert table.loc["loo-naive", "pearson"] == pytest.approx(1.0, abs=1e-4)  # exact either way
    assert table.loc["loo", "top-3 overlap"] == 1.0
    assert table.loc["loo-naive", "speed-up vs loo-naive"] == pytest.approx(1.0)
    assert all("done in" in s.label for s in at.status)  # timed side by side, not taken from the cache
    scatter, cost, pareto = plotly_specs(at)
    assert pareto["layout"]["xaxis"]["type"] == "log"
    plotted = {name for t in pareto["data"] for name in (t.get("text") or [])}
    assert {"loo", "loo-naive", "hierarchical"} <= plotted
    assert [t["name"].split(" (")[0] for t in scatter["data"]] == ["y = x", "loo-naive", "hierarchical"]
    assert cost["data"][0]["x"] == ["loo", "loo-naive", "hierarchical"]
    assert cost["data"][1]["y"] == [int(v) for v in table["forward passes"]]
    results = at.session_state["compare"][1]
    assert {r.response for r in results.values()} == {"The capital is Caldor."}  # the same response for all
    at.selectbox(key="in_cmp_export_pick").set_value("hierarchical").run()
    assert len(at.get("download_button")) == 3
    at.checkbox(key="in_cmp_retime").uncheck().run()
    at.button(key="cmp_run").click().run()
    wait_for_runs(at, "compare")
    assert all("cached result" in s.label for s in at.status)


def test_learn_page_runs_the_live_example_and_shows_what_each_trick_saves(at):
    at.switch_page("pages/learn.py").run()
    assert not at.exception
    assert "Run the live example" in at.info[0].value
    at.button(key="learn_run").click().run()
    wait_for_runs(at, "learn")
    assert not at.exception and not errors(at)
    table = at.dataframe[0].value.set_index("method")
    assert list(table.index) == ["loo", "loo-naive", "hierarchical"]  # the one method order of every chart
    assert table.loc["loo", "forward passes"] == table.loc["loo-naive", "forward passes"]
    assert table.loc["loo", "tokens computed"] < table.loc["loo-naive", "tokens computed"]
    assert table.loc["loo-naive", "tokens reused"] == 0 and table.loc["loo", "tokens reused"] > 0
    assert table.loc["hierarchical", "forward passes"] < table.loc["loo", "forward passes"]
    assert table.loc["loo-naive", "max |score − exact| (nats)"] < 1e-3
    headers = [h.value for h in at.header]
    assert headers[:3] == ["1 · Leave one out", "2 · Trick 1: don't recompute what did not change",
                           "3 · Trick 2: paragraphs first (hierarchical)"]
    trick1 = next(m.value for m in at.markdown if "KV cache" in m.value)
    assert f"**{int(table.loc['loo', 'tokens reused']):,} reused**" in trick1 and "This trick is exact." in trick1
    assert len(at.get("plotly_chart")) == 1


def test_drilldown_on_a_pruned_paragraph_says_so_instead_of_an_empty_chart(at):
    at.button(key="example_quillfeather").click().run()
    at.selectbox(key="in_method").set_value("hierarchical").run()
    at.number_input(key="in_param_hierarchical_keep_paragraphs").set_value(1).run()
    at.text_area(key="in_response").set_value("Mira Orrin founded it.").run()
    at.button(key="run").click().run()
    wait_for_runs(at)
    result = at.session_state["result"]
    pruned = next(p.index for p in result.paragraphs
                  if all(s.score is None for s in result.sentences if s.paragraph == p.index))
    at.switch_page("pages/drilldown.py").run()
    at.selectbox(key="in_drill_paragraph").set_value(pruned).run()
    assert not at.exception, at.exception
    assert len(plotly_specs(at)) == 1  # the overview only: no chart of empty bars
    assert any("not scored (pruned)" in m for m in messages(at, "info"))
    table = at.dataframe[0].value
    assert set(table["score (nats)"]) == {"not scored (pruned)"}
    assert "None" not in table.astype(str).to_numpy().ravel().tolist()


def test_drilldown_during_a_run_shows_its_scores_so_far(at, slow):
    import time

    from studio import runs

    at.button(key="example_quillfeather").click().run()
    at.selectbox(key="in_method").set_value("loo-naive").run()
    at.text_area(key="in_response").set_value("Mira Orrin, partially.").run()
    at.button(key="run").click().run()
    run_id = at.session_state["runs_attribute"].ids["run"]
    deadline = time.monotonic() + 60
    while len(runs.store().get(run_id).partial.get("sentence", {})) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    at.switch_page("pages/drilldown.py").run()
    assert not at.exception, at.exception
    assert any("scores so far" in m for m in messages(at, "info"))
    assert not [i for i in at.info if "No result yet" in i.value]
    dots = plotly_specs(at)[0]["data"][1]
    assert any(y is not None for y in dots["y"])  # scored sentences are plotted already
    at.switch_page("pages/attribute.py").run()  # (in AppTest only the page's own poll ends a run)
    wait_for_runs(at)


def test_learn_says_how_to_install_a_proxy_when_only_one_model_is_there(at):
    at.switch_page("pages/learn.py").run()
    assert not at.exception
    boxes = [h.proto.body for h in at.get("html") if "ab-message" in h.proto.body]
    assert any("Tricks 3 and 4 need a second, smaller model" in b and "ATTRIBOT_MODELS" in b for b in boxes)
