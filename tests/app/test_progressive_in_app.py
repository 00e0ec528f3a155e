"""Instant, then exact, in the app: the live heatmap is coloured by the one-pass estimate first, each sentence
switches to exact LOO as it lands, and the finished run compares the two; ``estimate`` is offered only
where weights exist."""

from __future__ import annotations

import html
import sys
import time

import numpy as np
import pytest
from apptools import heatmap, html_bodies, parse, running, wait_for_runs

from attribot_core.estimator import ENV_DIRS, EstimatorWeights
from attribot_core.examples import get_example
from attribot_core.features import model_shape
from attribot_core.viz.heatmap import estimate_key

EXAMPLE = get_example("quillfeather")


@pytest.fixture
def tiny_weights(tiny_lm, tmp_path, monkeypatch):
    """Estimator weights for the app's tiny model, in a folder named by ``ATTRIBOT_ESTIMATORS``."""
    layers, heads = model_shape(tiny_lm.model)
    EstimatorWeights(tiny_lm.model_id, tiny_lm.tokenizer_id, layers, heads,
                     tuple(np.linspace(-1.0, 2.0, layers * heads)), 0.1).save(tmp_path / "est" / "tiny.json")
    monkeypatch.setenv(ENV_DIRS, str(tmp_path / "est"))


def store():
    from studio import runs

    return runs.store()


def live_spans(at) -> list[dict]:
    live = [b for b in html_bodies(at) if "ab-live" in b]
    return parse(live[0]).spans if live else []


def start_slow_run(at, method: str = "loo-naive") -> str:
    """Press Run on the example with ``method`` and a fixed response, without waiting; the run's id."""
    at.button(key=f"example_{EXAMPLE.key}").click().run()
    at.selectbox(key="in_method").set_value(method).run()
    at.text_area(key="in_response").set_value("Mira Orrin.").run()
    at.button(key="run").click().run()
    return next(iter(at.session_state["runs_attribute"].ids.values()))


def poll_until(at, shown, missing: str, kind: str = "attribute") -> None:
    """Poll as the page does until ``shown()`` holds, while the ``kind`` run goes on (at most 60 s)."""
    deadline = time.monotonic() + 60
    while not shown():
        assert running(at, kind) and time.monotonic() < deadline, missing
        time.sleep(0.05)
        at.run()


def test_the_estimate_is_shown_first_then_exact_and_the_run_is_stored_once(tiny_weights, at, slow):
    run_id = start_slow_run(at)
    poll_until(at, lambda: any(s.get("data-kind") == "estimate" for s in live_spans(at)),
               "no estimate on the live heatmap")
    spans = live_spans(at)
    assert store().get(run_id).active  # shown while the exact passes are still going
    assert {s["data-kind"] for s in spans} <= {"estimate", "exact"}  # every sentence coloured
    assert all("style" in s for s in spans)
    assert any(estimate_key() in html.unescape(b) for b in html_bodies(at) if "ab-live" in b)

    wait_for_runs(at)
    final = heatmap(at)
    assert {s["data-kind"] for s in parse(final).spans} == {"exact"}
    assert all("vs exact" in s["title"] for s in parse(final).spans)
    assert "Estimate vs exact" in final and "Spearman" in final and "top-3 overlap" in final
    assert store().count() == 1 and store().get(run_id).status == "done"
    result = at.session_state["result"]
    assert result.extra["estimate"]["passes"] == 1 and result.method == "loo-naive"


def test_a_long_run_refines_the_estimate_with_first_order_before_exact(tiny_weights, at, slow, monkeypatch):
    monkeypatch.setattr(sys.modules["attribot_core.runs.execute"], "FIRST_ORDER_MIN_PASSES", 1)  # any run is long
    run_id = start_slow_run(at)
    poll_until(at, lambda: any(estimate_key("first-order") in html.unescape(b) for b in html_bodies(at)
                               if "ab-live" in b), "no first-order preview on the live heatmap")
    assert {s["data-kind"] for s in live_spans(at)} <= {"estimate", "exact"}  # still every sentence coloured
    assert "first-order" in store().get(run_id).partial  # drawn from the run's stored preview

    wait_for_runs(at)
    final = html.unescape(heatmap(at))
    assert "Estimate vs exact</b> (first-order LOO: a forward and a backward pass" in final
    assert "before it, the estimate (one pass" in final
    result = at.session_state["result"]
    assert result.extra["estimate"]["by"] == "first-order" and store().count() == 1


def test_a_cached_loo_run_refines_the_estimate_with_first_order_through_the_question_and_answer(
        tiny_weights, at, slow):
    run_id = start_slow_run(at, "loo")
    poll_until(at, lambda: any(estimate_key("first-order-qr") in html.unescape(b) for b in html_bodies(at)
                               if "ab-live" in b), "no first-order preview on the live heatmap")
    assert {s["data-kind"] for s in live_spans(at)} <= {"estimate", "exact"}
    assert {"estimate", "first-order-qr"} <= set(store().get(run_id).partial)  # both previews stored

    wait_for_runs(at)
    final = html.unescape(heatmap(at))
    assert "Estimate vs exact</b> (first-order LOO through the question and answer: one pass" in final
    assert "before it, the estimate (one pass" in final
    result = at.session_state["result"]
    assert result.extra["estimate"]["by"] == "first-order-qr" and store().count() == 1


def offered(at) -> list[str]:
    """The method picker's methods (its options read "name · title")."""
    return [o.split(" · ")[0] for o in at.selectbox(key="in_method").options]


def test_estimate_is_offered_only_for_a_model_with_weights(app_env, monkeypatch, tiny_lm, tmp_path):
    from apptools import APP
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv(ENV_DIRS, raising=False)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert "loo" in offered(at) and "estimate" not in offered(at)
    assert any("attribot estimator train" in c.value.replace("\\", "") for c in at.caption)
    at.selectbox(key="in_method").set_value("tree").run()
    assert at.selectbox(key="in_param_tree_proxy_stage").options == ["loo"]  # the estimate stage needs weights

    layers, heads = model_shape(tiny_lm.model)
    EstimatorWeights(tiny_lm.model_id, tiny_lm.tokenizer_id, layers, heads, (0.0,) * (layers * heads)).save(
        tmp_path / "est" / "tiny.json")
    monkeypatch.setenv(ENV_DIRS, str(tmp_path / "est"))
    at.run()
    assert "estimate" in offered(at)
    assert at.selectbox(key="in_param_tree_proxy_stage").options == ["loo", "estimate"]
    assert not any("attribot estimator train" in c.value.replace("\\", "") for c in at.caption)


@pytest.mark.parametrize(("page", "button", "kind"), [("pages/compare.py", "cmp_run", "compare"),
                                                      ("pages/learn.py", "learn_run", "learn")])
def test_a_run_started_from_another_page_also_shows_the_estimate_first(tiny_weights, at, slow, page, button, kind):
    at.button(key=f"example_{EXAMPLE.key}").click().run()
    at.text_area(key="in_response").set_value("Mira Orrin.").run()
    at.button(key="run").click().run()
    wait_for_runs(at)  # Compare needs a current input; Learn brings its own
    at.switch_page(page).run()
    at.button(key=button).click().run()
    poll_until(at, lambda: any(s.get("data-kind") == "estimate" for s in live_spans(at)),
               f"no estimate on the {kind} page's live heatmap", kind)
    wait_for_runs(at, kind)
    assert not at.exception
