"""Estimate first, then exact: a run reports its previews (the one-pass estimate; first-order LOO on a long
run) before its first ablation pass, keeps them beside the exact scores, and changes no score
(``execute(..., estimate_first=True)``)."""

from __future__ import annotations

import json
import sys
import threading

import numpy as np
import pytest

from attribot_core.api import attribute
from attribot_core.estimator import ENV_DIRS, EstimatorWeights, has_weights
from attribot_core.features import model_shape
from attribot_core.metrics import spearman, top_k_overlap
from attribot_core.runs import ModelCache, RunRequest
from attribot_core.runs.execute import (
    AFTER_CONTEXT_METHODS,
    ESTIMATE_LEVEL,
    FIRST_ORDER_LEVEL,
    FIRST_ORDER_MIN_PASSES,
    FIRST_ORDER_QR_LEVEL,
    Cancelled,
    RunReport,
    execute,
    previews,
)
from tests.conftest import CONTEXT, QUESTION, sentence_inputs

RESPONSE = "She worked with Charles Babbage."
EXECUTE = sys.modules["attribot_core.runs.execute"]  # the module (the package exports its function by that name)


class Recorder(RunReport):
    """Every report in the order it came: ("partial", level, scores) and ("pass", done)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def progress(self, done: int, total: int, eta_s: float | None = None) -> None:
        self.events.append(("pass", done))

    def partial(self, level: str, scores: dict[int, float]) -> None:
        self.events.append(("partial", level, dict(scores)))

    def first(self, what) -> int:
        return next(i for i, e in enumerate(self.events) if what(e))

    def generated(self, response) -> None:
        self.response = response

    def levels(self) -> list[str]:
        return [e[1] for e in self.events if e[0] == "partial"]


@pytest.fixture
def tiny_weights_dir(tiny_lm, tmp_path, monkeypatch):
    """Weights for the tiny model in a folder named by ``ATTRIBOT_ESTIMATORS``, as a user who trained them has."""
    layers, heads = model_shape(tiny_lm.model)
    weights = np.linspace(-1.0, 2.0, layers * heads)
    EstimatorWeights(tiny_lm.model_id, tiny_lm.tokenizer_id, layers, heads, tuple(weights), 0.1).save(
        tmp_path / "estimators" / "tiny.json")
    monkeypatch.setenv(ENV_DIRS, str(tmp_path / "estimators"))
    return tmp_path / "estimators"


@pytest.fixture
def models(tiny_lm) -> ModelCache:
    return ModelCache(loader=lambda spec: tiny_lm)


def request_for(tiny_lm, method: str = "loo", **params) -> RunRequest:
    return RunRequest.for_method(CONTEXT, QUESTION, tiny_lm.model_id, method, params, response=RESPONSE)


@pytest.mark.parametrize("method, params", [("loo", {}), ("hierarchical", {"keep_paragraphs": 2})])
def test_the_estimate_is_reported_before_the_first_ablation_pass_and_changes_no_score(
        tiny_lm, models, tiny_weights_dir, method, params):
    request = request_for(tiny_lm, method, **params)
    with_estimate, heard = execute(request, models, (report := Recorder()), estimate_first=True), report
    without = execute(request, models, Recorder(), estimate_first=False)

    n = len(request.document().sentences)
    assert heard.levels()[0] == ESTIMATE_LEVEL and heard.levels().count(ESTIMATE_LEVEL) == 1
    estimate_at = heard.first(lambda e: e[0] == "partial" and e[1] == ESTIMATE_LEVEL)
    assert sorted(heard.events[estimate_at][2]) == list(range(n))  # every sentence at once
    assert estimate_at < heard.first(lambda e: e[0] == "pass" and e[1] >= 1)
    assert estimate_at < heard.first(lambda e: e[0] == "partial" and e[1] != ESTIMATE_LEVEL)
    # the exact result is the same one, score for score and pass for pass (first-order LOO through the rows
    # after the context, where it follows, counts its pass over those rows in its own figures)
    assert with_estimate.scores("sentence") == without.scores("sentence")
    assert with_estimate.scores("paragraph") == without.scores("paragraph")
    assert with_estimate.forward_passes == without.forward_passes
    assert "estimate" not in without.extra


@pytest.mark.parametrize("method", ["loo", "loo-naive", "hierarchical", "tree"])
def test_the_estimate_costs_no_pass_of_its_own_its_pass_is_the_methods_base_pass(
        tiny_lm, models, tiny_weights_dir, method, monkeypatch):
    calls = []
    forward = tiny_lm.model.forward
    monkeypatch.setattr(tiny_lm.model, "forward",
                        lambda *a, **kw: (calls.append(kw["input_ids"].shape[1]), forward(*a, **kw))[1])
    result = execute(request_for(tiny_lm, method), models, Recorder(), estimate_first=True)
    with_estimate, calls[:] = list(calls), []
    execute(request_for(tiny_lm, method), models, Recorder(), estimate_first=False)
    assert "estimate" in result.extra
    if method not in AFTER_CONTEXT_METHODS:
        assert with_estimate == calls  # the model ran as often, on as many tokens, either way
    else:  # one call more: first-order LOO through the rows after the context, on the base pass's keys
        doc, prompt, owners, response = sentence_inputs(tiny_lm, CONTEXT, QUESTION, RESPONSE)
        after_context = len(prompt) + len(response) - 1 - (max(i for i, o in enumerate(owners) if o >= 0) + 1)
        assert with_estimate == [calls[0], after_context, *calls[1:]]


@pytest.mark.parametrize("method", ["loo", "estimate"])
def test_a_generated_answers_estimate_starts_from_the_keys_generation_left(
        tiny_lm, models, tiny_weights_dir, monkeypatch, method):
    """Generating computed every prompt token's keys: the estimate's pass is the response rows only, right after
    the answer and before the base pass, and it estimates what a pass over the whole prompt would."""
    generating = RunRequest.for_method(CONTEXT, QUESTION, tiny_lm.model_id, method, max_new_tokens=6)
    heard, lengths = Recorder(), []
    forward = tiny_lm.model.forward
    monkeypatch.setattr(tiny_lm.model, "forward",
                        lambda *a, **kw: (lengths.append(kw["input_ids"].shape[1]), forward(*a, **kw))[1])
    result = execute(generating, models, heard, estimate_first=True)
    rows = len(heard.response.token_ids)
    # generation ran a prefill and a step per token but the last; the very next pass: the response rows only
    assert lengths[rows] == rows and lengths[0] > rows
    expected = attribute(CONTEXT, QUESTION, model=tiny_lm, method="estimate", response=heard.response,
                         precision="model")  # a pass of its own over the whole prompt
    if method == "loo":
        reported = heard.events[heard.first(lambda e: e[0] == "partial" and e[1] == ESTIMATE_LEVEL)][2]
        estimated = [reported[i] for i in range(len(result.sentences))]
        assert lengths[rows + 1] < lengths[0]  # then first-order's rows after the context, on the same keys
    else:
        estimated = result.scores("sentence")
    np.testing.assert_allclose(estimated, expected.scores("sentence"), atol=1e-5)


def test_a_given_responses_estimate_and_exact_base_pass_start_from_a_prefill_of_its_prompt(
        tiny_lm, models, tiny_weights_dir, monkeypatch):
    """The app prefills the prompt a page shows (LocalExecutor.prepare): the estimate of a given response is
    then a pass over its rows, and so is exact LOO's base pass: the same scores, within float rounding."""
    from attribot_core.generate import prefill
    from attribot_core.prompt import PromptBuilder, Response

    request = request_for(tiny_lm, "loo")
    without = execute(request, models, (cold := Recorder()), estimate_first=True)
    ahead = prefill(tiny_lm, CONTEXT, QUESTION)
    lengths = []
    forward = tiny_lm.model.forward
    monkeypatch.setattr(tiny_lm.model, "forward",
                        lambda *a, **kw: (lengths.append(kw["input_ids"].shape[1]), forward(*a, **kw))[1])
    result = execute(request, models, (warm := Recorder()), estimate_first=True, prefilled=ahead)
    doc, prompt, owners, response = sentence_inputs(tiny_lm, CONTEXT, QUESTION, RESPONSE)
    after_context = len(prompt) + len(response) - 1 - (max(i for i, o in enumerate(owners) if o >= 0) + 1)
    rows = len(PromptBuilder(tiny_lm.tokenizer, tiny_lm.tokenizer_id).response_ids(Response(RESPONSE)))
    # the estimate: the response rows; first-order: the rows after the context; the base pass: the response
    # rows (the last prompt token's predicts the first response token), not the whole prompt again
    assert lengths[:3] == [rows, after_context, rows]
    for level in (ESTIMATE_LEVEL, FIRST_ORDER_QR_LEVEL):
        warm_scores, cold_scores = (r.events[r.first(lambda e, lv=level: e[0] == "partial" and e[1] == lv)][2]
                                    for r in (warm, cold))
        np.testing.assert_allclose([warm_scores[i] for i in range(len(doc.sentences))],
                                   [cold_scores[i] for i in range(len(doc.sentences))], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.scores("sentence"), without.scores("sentence"), rtol=1e-6, atol=1e-5)
    assert result.extra["tokens_reused"] >= without.extra["tokens_reused"] + len(ahead.ids)


@pytest.mark.parametrize("method, params", [("pruning", {"keep_sentences": 2}), ("proxy", {})])
def test_methods_that_never_score_the_full_context_get_the_estimate_from_a_pass_stopped_at_the_weights_depth(
        tiny_lm, models, tmp_path, monkeypatch, method, params):
    layers, heads = model_shape(tiny_lm.model)
    EstimatorWeights(tiny_lm.model_id, tiny_lm.tokenizer_id, layers, heads, tuple(np.linspace(-1.0, 2.0, heads)),
                     0.1, {}, depth=1).save(tmp_path / "estimators" / "tiny.json")
    monkeypatch.setenv(ENV_DIRS, str(tmp_path / "estimators"))
    calls, last_layer = [], []
    forward = tiny_lm.model.forward
    monkeypatch.setattr(tiny_lm.model, "forward", lambda *a, **kw: (calls.append(1), forward(*a, **kw))[1])
    hook = tiny_lm.model.model.layers[-1].register_forward_hook(lambda *_: last_layer.append(1))
    try:
        request = RunRequest.for_method(CONTEXT, QUESTION, tiny_lm.model_id, method, params, response=RESPONSE,
                                        proxy_model=tiny_lm.model_id)  # the model its own proxy: one loader
        with_estimate = execute(request, models, (heard := Recorder()), estimate_first=True)
        counts, calls[:], last_layer[:] = (len(calls), len(last_layer)), [], []
        without = execute(request, models, Recorder(), estimate_first=False)
    finally:
        hook.remove()
    assert heard.levels()[0] == ESTIMATE_LEVEL and "estimate" in with_estimate.extra
    assert counts == (len(calls) + 1, len(last_layer))  # one pass more, and it never reached the last layer
    assert with_estimate.scores("sentence") == without.scores("sentence")


def test_the_result_keeps_the_estimate_and_its_agreement_with_exact(tiny_lm, models, tiny_weights_dir):
    request = request_for(tiny_lm)
    report = Recorder()
    result = execute(request, models, report, estimate_first=True)
    kept = result.extra["estimate"]  # the last preview whole: first-order LOO through the rows after the context
    assert kept["by"] == FIRST_ORDER_QR_LEVEL
    reported = report.events[report.first(lambda e: e[0] == "partial" and e[1] == FIRST_ORDER_QR_LEVEL)][2]
    assert kept["sentences"] == [reported[i] for i in range(len(result.sentences))]
    assert len(kept["paragraphs"]) == len(result.paragraphs) and kept["passes"] == 1 and kept["seconds"] > 0
    exact = result.scores("sentence")
    assert kept["spearman"] == pytest.approx(spearman(kept["sentences"], exact))
    assert kept["top3"] == pytest.approx(top_k_overlap(kept["sentences"], exact, 3))
    (learned,) = kept["before"]  # the one before it: the learned estimate's figures
    estimated = report.events[report.first(lambda e: e[0] == "partial" and e[1] == ESTIMATE_LEVEL)][2]
    assert learned["by"] == ESTIMATE_LEVEL
    assert learned["spearman"] == pytest.approx(spearman([estimated[i] for i in range(len(exact))], exact))
    assert json.loads(result.to_json())["extra"]["estimate"]["passes"] == 1  # stored with the run


def test_methods_that_do_not_ablate_and_models_without_weights_get_no_estimate_stage(
        tiny_lm, models, tiny_weights_dir, monkeypatch):
    assert previews(request_for(tiny_lm, "loo"), 5) == (ESTIMATE_LEVEL, FIRST_ORDER_QR_LEVEL)
    assert previews(request_for(tiny_lm, "pruning"), 5) == (ESTIMATE_LEVEL,)
    assert previews(request_for(tiny_lm, "attention"), 5) == ()
    assert previews(request_for(tiny_lm, "estimate"), 5) == ()
    monkeypatch.delenv(ENV_DIRS)
    assert not has_weights(tiny_lm.model_id)
    report = Recorder()
    result = execute(request_for(tiny_lm), models, report, estimate_first=True)
    assert report.levels()[0] == FIRST_ORDER_QR_LEVEL  # no weights needed: the first preview is first-order's
    assert ESTIMATE_LEVEL not in report.levels() and result.extra["estimate"]["by"] == FIRST_ORDER_QR_LEVEL


def test_a_failing_estimate_leaves_the_run_as_it_would_have_been(tiny_lm, models, tmp_path, monkeypatch):
    # weights that name the tiny model but have the wrong shape: found, then refused when loaded
    EstimatorWeights(tiny_lm.model_id, tiny_lm.tokenizer_id, 1, 1, (1.0,)).save(tmp_path / "w" / "bad.json")
    monkeypatch.setenv(ENV_DIRS, str(tmp_path / "w"))
    assert has_weights(tiny_lm.model_id)
    report = Recorder()
    result = execute(request_for(tiny_lm), models, report, estimate_first=True)
    assert ESTIMATE_LEVEL not in report.levels() and result.extra["estimate"]["by"] == FIRST_ORDER_QR_LEVEL
    assert result.scores() == execute(request_for(tiny_lm), models, Recorder()).scores()


def test_the_stage_is_off_unless_asked_for(tiny_lm, models, tiny_weights_dir):
    report = Recorder()
    result = execute(request_for(tiny_lm), models, report)
    assert ESTIMATE_LEVEL not in report.levels() and "estimate" not in result.extra


# -- first-order LOO on a long run -----------------------------------------------------------------------
def test_a_long_run_of_a_full_context_method_also_gets_first_order_and_any_model_does():
    long, qr = FIRST_ORDER_MIN_PASSES, FIRST_ORDER_QR_LEVEL
    assert previews(request_for_model("loo"), long - 1) == (qr,)  # no weights, a short run: the rows after
    assert previews(request_for_model("loo"), long) == (qr, FIRST_ORDER_LEVEL)  # no weights needed
    assert previews(request_for_model("hierarchical"), long) == (qr, FIRST_ORDER_LEVEL)
    assert previews(request_for_model("tree"), long) == (qr,)  # its passes read ever smaller parts
    assert previews(request_for_model("loo-naive"), long) == (FIRST_ORDER_LEVEL,)  # keeps no keys to start from
    assert previews(request_for_model("pruning"), long) == ()  # never scores the full context with the target
    assert previews(request_for_model("attention"), long) == ()


def request_for_model(method: str) -> RunRequest:
    return RunRequest.for_method(CONTEXT, QUESTION, "a-model-without-weights", method, {}, response=RESPONSE)


def test_the_first_order_preview_follows_the_estimate_before_any_ablation_and_changes_no_score(
        tiny_lm, models, tiny_weights_dir, monkeypatch):
    monkeypatch.setattr(EXECUTE, "FIRST_ORDER_MIN_PASSES", 1)  # every run is long enough
    request = request_for(tiny_lm)
    result = execute(request, models, (heard := Recorder()), estimate_first=True)
    without = execute(request, models, Recorder())

    assert heard.levels()[:3] == [ESTIMATE_LEVEL, FIRST_ORDER_QR_LEVEL, FIRST_ORDER_LEVEL]
    first_order_at = heard.first(lambda e: e[0] == "partial" and e[1] == FIRST_ORDER_LEVEL)
    assert first_order_at < heard.first(lambda e: e[0] == "pass" and e[1] >= 1)
    reported = heard.events[first_order_at][2]
    alone = attribute(CONTEXT, QUESTION, model=tiny_lm, method="first-order", response=RESPONSE, per_token=False)
    assert [reported[i] for i in range(len(alone.sentences))] == pytest.approx(alone.scores("sentence"), abs=1e-6)
    assert result.scores("sentence") == without.scores("sentence")
    # its own forward (+ backward) pass, and the one over the rows after the context, are in the preview's figures
    assert result.total_forward_passes == without.total_forward_passes
    assert result.extra["estimate"]["passes"] == 1
    kept = result.extra["estimate"]
    assert kept["by"] == FIRST_ORDER_LEVEL and kept["backward_passes"] == 1
    assert kept["spearman"] == pytest.approx(spearman(kept["sentences"], result.scores("sentence")))
    assert [b["by"] for b in kept["before"]] == [ESTIMATE_LEVEL, FIRST_ORDER_QR_LEVEL]
    assert all(b["spearman"] is not None for b in kept["before"])


def test_stop_during_the_previews_stops_the_run_before_first_order(tiny_lm, models, tiny_weights_dir, monkeypatch):
    monkeypatch.setattr(EXECUTE, "FIRST_ORDER_MIN_PASSES", 1)
    cancel = threading.Event()

    class StopAtTheEstimate(Recorder):
        def partial(self, level, scores):
            super().partial(level, scores)
            cancel.set()  # the user clicks Stop as the estimate appears

    with pytest.raises(Cancelled):
        execute(request_for(tiny_lm), models, (heard := StopAtTheEstimate()), cancel, estimate_first=True)
    assert heard.levels() == [ESTIMATE_LEVEL]
