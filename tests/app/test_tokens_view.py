"""The token view on the Attribute page: pick words of the response, the context recolours (no run)."""

from __future__ import annotations

import json

from apptools import heatmap, html_bodies, parse, run_example

from attribot_core import AttributionResult

RESPONSE = "The lamp was first lit on 3 March 1874."


def token_pills(at):
    return next(w for w in at.button_group if w.key and w.key.startswith("tok_pick_"))


def scores_in(markup: str) -> list[str]:
    return [s["data-score"] for s in parse(markup).spans]


def test_picking_a_word_recolours_the_context_from_stored_values(at):
    run_example(at, "lighthouse", response=RESPONSE)
    result = at.session_state["result"]
    passes = result.total_forward_passes
    before = heatmap(at)
    pills = token_pills(at)
    assert len(pills.options) == len(result.per_token.main_axis(result.model))
    pos = RESPONSE.index("1874")  # a token of the date (the tiny tokenizer may split it)
    date = next(i for i, (a, b) in enumerate(result.per_token.main_axis(result.model).offsets) if a <= pos < b)
    pills.set_value([date]).run()
    assert not at.exception and not at.error
    after = heatmap(at)
    assert scores_in(after) != scores_in(before)  # recoloured by the picked token's attribution
    start, end = result.per_token.main_axis(result.model).offsets[date]
    expected = result.for_response_span(start, end)
    assert scores_in(after) == [f"{s.score:.6g}" for s in expected.sentences]
    assert any("Exact for loo" in c.value and "no model run" in c.value for c in at.caption)
    assert at.session_state["result"] is result and result.total_forward_passes == passes  # nothing re-ran
    tokens = next(b for b in html_bodies(at) if "ab-tokens" in b)
    assert f'data-token="{date}" data-on="1"' in tokens


def test_several_words_at_once_and_back_to_the_whole_response(at):
    run_example(at, "lighthouse", response=RESPONSE)
    result = at.session_state["result"]
    whole = scores_in(heatmap(at))
    token_pills(at).set_value([0, 1, 5]).run()
    picked = scores_in(heatmap(at))
    axis = result.per_token.main_axis(result.model)
    expected = result.for_response_chars([axis.offsets[0], axis.offsets[1], axis.offsets[5]])
    assert picked == [f"{s.score:.6g}" for s in expected.sentences] != whole
    next(b for b in at.button if b.key and b.key.startswith("tok_clear_")).click().run()
    assert scores_in(heatmap(at)) == whole


def test_a_v1_result_says_a_part_needs_a_rerun(at, tmp_path):
    run_example(at, "lighthouse", response=RESPONSE)
    d = json.loads(at.session_state["result"].to_json())
    d.pop("per_token")
    d["schema_version"] = 1
    at.session_state["result"] = AttributionResult.from_dict(d)
    at.run()
    assert not at.exception
    assert any("schema 1" in c.value for c in at.caption)
    assert not any(w.key and w.key.startswith("tok_pick_") for w in at.button_group)


def test_the_json_export_carries_per_token_data(at, downloads):
    run_example(at, "lighthouse", response=RESPONSE)
    exported = [data for name, mime, data in downloads if name and name.endswith(".json")]
    d = json.loads(exported[-1])
    assert d["schema_version"] == 3 and d["per_token"]["sentences"]["values"]
    assert AttributionResult.from_dict(d).for_response_span(0, 3).extra["span_exact"]


def test_pruning_results_say_why_a_part_needs_a_rerun(app_env, tiny_model_dir_b, monkeypatch):
    from apptools import APP
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ATTRIBOT_MODELS", f"{app_env},{tiny_model_dir_b}")
    app = AppTest.from_file(APP, default_timeout=120).run()
    run_example(app, "tessaly", method="pruning", response="Caldor.")
    assert not app.exception and not app.error
    assert token_pills(app).disabled
    assert any("pruning mixes proxy and target scores" in c.value for c in app.caption)
