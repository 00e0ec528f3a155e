"""The learned one-pass estimate: its weights (training, files, refusal) and the methods that rank with it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attribot_core import attribute, segment
from attribot_core.cli import main
from attribot_core.estimator import (
    FORMAT_VERSION,
    SHIPPED_DIR,
    EstimatorError,
    EstimatorWeights,
    fit_estimator,
    fit_ridge,
    sentence_features,
    shipped_weights,
    sign_log_within,
)
from attribot_core.features import model_shape
from attribot_core.methods import get_method
from attribot_core.prompt import Response
from tests.conftest import CONTEXT

RESPONSE = "She worked with Charles Babbage."
# Several contexts for the synthetic training set: each a different set of sentences.
CONTEXTS = [
    CONTEXT,
    "The mill stood by the river. It was built in 1820.\n\nA fire destroyed it in 1901. Nobody rebuilt it.",
    "Oskar Varrow invented the tallow kettle. He was born in Tressing.\n\nTressing lies on the Quell River. "
    "The town has a market every Tuesday. Its bridge is old.",
    "Lake Ormon is deep. Herons nest on its shore.\n\nThe society met in Olmsby. It had forty members. "
    "Its founder was Petra Marsk.",
    "Dr. Smith visited the U.S. in Jan. 1900. He wrote about the Engine. Babbage called it a marvel.\n\n"
    "The answer is in the context. Ada Lovelace was born in London.",
    "The river runs through the old town. Who invented the engine? Charles Babbage did.\n\n"
    "She worked with him for years. Her notes were published.",
]


def _weights_for(lm, w: np.ndarray, bias: float = 0.0) -> EstimatorWeights:
    layers, heads = model_shape(lm.model)
    return EstimatorWeights(lm.model_id, lm.tokenizer_id, layers, heads, tuple(map(float, w)), bias)


@pytest.fixture
def tiny_weights(tiny_lm, tmp_path):
    """A weights file for the tiny model: known head weights, as training would write them."""
    w = np.linspace(-1.0, 2.0, 8)
    return _weights_for(tiny_lm, w, 0.25).save(tmp_path / "tiny.json"), w


# -- training ----------------------------------------------------------------------------------------
def test_training_recovers_known_weights_from_synthetic_targets(tiny_lm):
    xs, groups = [], []
    for i, context in enumerate(CONTEXTS):
        _, feats, _ = sentence_features(tiny_lm, context, "Who did Ada work with?", Response(RESPONSE))
        xs.append(feats)
        groups += [f"ex{i}"] * len(feats)
    x = np.vstack(xs)
    w_true = np.array([0.5, -1.0, 2.0, 0.0, 1.5, -0.5, 0.25, 3.0])
    fit = fit_ridge(x, x @ w_true + 0.7, groups)
    assert x.shape[0] > 3 * x.shape[1]  # more sentences than weights: the fit is determined
    np.testing.assert_allclose(fit.weights, w_true, atol=1e-4)
    assert fit.bias == pytest.approx(0.7, abs=1e-4)
    assert fit.alpha == 0.0  # exact targets: cross-validation picks no penalty
    assert fit.heldout["spearman"] == pytest.approx(1.0)
    assert fit.split["heldout_examples"] >= 1 and fit.split["folds"] >= 2


def test_training_fits_how_sentences_differ_within_an_example_not_each_examples_level(tiny_lm):
    """Per-example offsets in the targets (one context's LOO all higher) leave the fitted weights unchanged."""
    xs, groups, offsets = [], [], []
    for i, context in enumerate(CONTEXTS):
        _, feats, _ = sentence_features(tiny_lm, context, "Who did Ada work with?", Response(RESPONSE))
        xs.append(feats)
        groups += [f"ex{i}"] * len(feats)
        offsets += [5.0 * i] * len(feats)
    x = np.vstack(xs)
    w_true = np.array([0.5, -1.0, 2.0, 0.0, 1.5, -0.5, 0.25, 3.0])
    fit = fit_ridge(x, x @ w_true + np.asarray(offsets), groups)
    np.testing.assert_allclose(fit.weights, w_true, atol=1e-4)
    assert fit.heldout["spearman"] == pytest.approx(1.0)


def test_the_fitted_target_keeps_each_examples_ranking_and_weighs_examples_alike():
    y = np.array([30.0, 0.1, -0.2, 0.0, 2.0, 1.0, 0.5, -4.0])
    groups = np.array(["a"] * 4 + ["b"] * 4)
    z = sign_log_within(y, groups)
    for g in "ab":
        on = groups == g
        assert (np.argsort(z[on]) == np.argsort(y[on])).all()
        assert z[on].mean() == pytest.approx(0.0, abs=1e-12) and z[on].std() == pytest.approx(1.0)
    # the 30-nat outlier no longer squeezes the rest together: their spread in standard units is many times
    # what plain standardisation leaves them (where the order of the weak sentences would not count in a fit)
    plain = (y[:4] - y[:4].mean()) / y[:4].std()
    assert np.ptp(z[1:4]) > 5 * np.ptp(plain[1:4])


def test_the_recipe_ranks_a_heavy_tailed_target_and_reports_it_in_nats():
    """LOO that grows exponentially with a weighted sum of root masses (a few sentences tens of nats, most
    near zero): the recipe ranks held-out examples as LOO does, and its estimate comes back in nats."""
    rng = np.random.default_rng(3)
    mass = rng.dirichlet(np.full(12, 0.3), size=(40, 6)).transpose(0, 2, 1).reshape(480, 6)  # 40 examples x 12
    groups = np.repeat([f"ex{i}" for i in range(40)], 12)
    linear = np.sqrt(mass) @ np.array([0.5, 1.0, 2.0, 0.0, 1.5, 3.0])
    y = np.expm1(linear)  # heavy-tailed; its sign-log is the linear score itself
    fit = fit_estimator(mass, y, groups)
    assert fit.heldout["spearman"] > 0.95 and fit.heldout["top1"] == 1.0
    assert fit.heldout["spearman"] > fit.heldout["attention_spearman"] + 0.1
    estimate = np.sqrt(mass) @ fit.weights + fit.bias
    spread = [np.ptp(estimate[groups == g]) / np.ptp(y[groups == g]) for g in np.unique(groups)]
    assert 0.2 < np.median(spread) < 5  # in nats, not in standard units of sign-log


def test_features_are_mass_averaged_over_the_response_tokens(tiny_lm):
    """A share of one row's attention: at most 1 summed over the sentences, whatever the response's length."""
    for response in (RESPONSE, RESPONSE + " They wrote notes on the Analytical Engine for many years."):
        _, feats, _ = sentence_features(tiny_lm, CONTEXT, "Who did Ada work with?", Response(response))
        assert (feats >= 0).all() and (feats.sum(axis=0) <= 1 + 1e-6).all()


def test_noisy_targets_get_a_penalty_chosen_by_cross_validation():
    rng = np.random.default_rng(1)
    x = rng.random((80, 30))
    groups = [f"ex{i // 8}" for i in range(80)]
    y = x[:, 0] + rng.normal(0, 1.0, 80)  # one informative column, much noise: unpenalised fits overfit
    fit = fit_ridge(x, y, groups)
    assert fit.alpha > 0
    assert fit.validation[fit.alpha]["mse"] <= fit.validation[0.0]["mse"]


def test_training_splits_by_example_and_holds_out_whole_examples():
    rng = np.random.default_rng(0)
    x = rng.random((60, 4))
    groups = [f"ex{i // 6}" for i in range(60)]  # 10 examples of 6 sentences
    fit = fit_ridge(x, x @ np.ones(4) + rng.normal(0, 0.01, 60), groups)
    assert fit.split == {"train_examples": 8, "folds": 5, "heldout_examples": 2, "rows": 60}
    assert fit.heldout["rows"] == 12  # two whole examples, not 20% of the rows at random


def test_estimator_train_cli_fits_weights_on_a_stored_loo_batch(tiny_model_dir, tmp_path, capsys):
    from attribot_core.runs.batch import attribute_many

    db = tmp_path / "runs.sqlite"
    rows = [{"id": f"r{i}", "context": c, "question": "Who did Ada work with?", "response": RESPONSE}
            for i, c in enumerate(CONTEXTS)]
    done = [r.status for r in attribute_many(rows, model=str(tiny_model_dir), method="loo", db=db, name="train")]
    assert done == ["done"] * len(CONTEXTS)
    out = tmp_path / "w.json"
    code = main(["estimator", "train", "--db", str(db), "--batch", "train", "--model", str(tiny_model_dir),
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "held-out" in printed and "Spearman" in printed and "top-1" in printed
    data = json.loads(out.read_text())
    assert data["format"] == "attribot-estimator" and data["version"] == FORMAT_VERSION
    assert (data["layers"], data["heads"], len(data["weights"])) == (2, 4, 8)
    assert data["trained"]["rows"] == sum(len(segment(c).sentences) for c in CONTEXTS)


def test_estimator_train_with_a_depth_weighs_only_the_first_layers(tiny_model_dir, tmp_path, capsys):
    from attribot_core.runs.batch import attribute_many

    db = tmp_path / "runs.sqlite"
    rows = [{"id": f"r{i}", "context": c, "question": "Who did Ada work with?", "response": RESPONSE}
            for i, c in enumerate(CONTEXTS)]
    assert all(r.status == "done" for r in attribute_many(rows, model=str(tiny_model_dir), method="loo", db=db,
                                                          name="train"))
    out = tmp_path / "w.json"
    args = ["estimator", "train", "--db", str(db), "--batch", "train", "--model", str(tiny_model_dir)]
    assert main([*args, "--out", str(out), "--depth", "1"]) == 0
    assert "reads the first 1 of 2 layers" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert (data["layers"], data["depth"], len(data["weights"])) == (2, 1, 4)
    assert main([*args, "--out", str(tmp_path / "no.json"), "--depth", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "has 2 layers" in err[-1] and not (tmp_path / "no.json").exists()


def test_estimator_train_without_loo_runs_says_how_to_make_them(tiny_model_dir, tmp_path, capsys):
    from attribot_core.runs import RunStore

    RunStore(tmp_path / "empty.sqlite").close()
    code = main(["estimator", "train", "--db", str(tmp_path / "empty.sqlite"), "--batch", "none",
                 "--model", str(tiny_model_dir), "--out", str(tmp_path / "w.json")])
    err = capsys.readouterr().err
    assert code == 2 and "attribot batch" in err and "--method loo" in err
    assert not (tmp_path / "w.json").exists()


# -- weights files -----------------------------------------------------------------------------------
def test_weights_file_round_trips(tiny_lm, tiny_weights):
    path, w = tiny_weights
    loaded = EstimatorWeights.load(path)
    assert loaded.weights == tuple(w) and loaded.bias == 0.25
    loaded.check_for(tiny_lm)  # the model it was trained for: accepted


def test_weights_for_another_model_are_refused_in_one_line(tiny_qwen_lm, tiny_weights):
    path, _ = tiny_weights
    with pytest.raises(EstimatorError) as caught:
        attribute(CONTEXT, "Who?", model=tiny_qwen_lm, response=RESPONSE, method="estimate", weights=str(path))
    message = str(caught.value)
    assert "\n" not in message and "trained for" in message and tiny_qwen_lm.model_id in message


def test_cli_refuses_weights_for_another_model_with_one_line(tiny_model_dir_b, tiny_weights, tmp_path, capsys):
    path, _ = tiny_weights
    context = tmp_path / "c.txt"
    context.write_text(CONTEXT)
    code = main(["attribute", "--context", str(context), "--question", "Who?", "--response", RESPONSE,
                 "--model", str(tiny_model_dir_b), "--method", "estimate", "--weights", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("attribot: error")]
    assert code == 2 and errors == err[-1:] and "trained for" in errors[0]


@pytest.mark.parametrize(("content", "why"), [
    ("not json", "Cannot read"),
    ('{"format": "something-else"}', "not an AttriBoT estimator"),
    ('{"format": "attribot-estimator", "version": 99}', "version 99"),
    ('{"format": "attribot-estimator", "version": 3, "model_id": "m"}', "damaged"),
])
def test_a_file_that_is_not_current_weights_is_refused(tmp_path, content, why):
    path = tmp_path / "w.json"
    path.write_text(content)
    with pytest.raises(EstimatorError, match=why):
        EstimatorWeights.load(path)


@pytest.mark.parametrize(("version", "was"), [(1, "summed"), (2, "not its square root")])
def test_weights_of_an_older_feature_are_refused_in_one_line_saying_what_they_weighed(tiny_weights, version, was):
    path, _ = tiny_weights
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "version": version}))  # same shape, another feature: wrong estimates
    with pytest.raises(EstimatorError) as caught:
        EstimatorWeights.load(path)
    message = str(caught.value)
    assert "\n" not in message and f"version {version}" in message and was in message
    assert "attribot estimator train" in message and FORMAT_VERSION == 4


def test_weights_may_read_only_the_first_layers_and_say_so_in_their_file(tiny_lm, tmp_path):
    w = np.linspace(-1.0, 2.0, 4)
    weights = EstimatorWeights(tiny_lm.model_id, tiny_lm.tokenizer_id, 2, 4, tuple(w), 0.5, {}, depth=1)
    loaded = EstimatorWeights.load(weights.save(tmp_path / "d.json"))
    assert loaded.depth == 1 and loaded.weights == tuple(w)
    loaded.check_for(tiny_lm)  # the model's shape is still 2 x 4: accepted
    mass = np.full((3, 8), 0.04)  # a pass that recorded both layers: the second is not read
    np.testing.assert_allclose(loaded.score(mass), np.sqrt(0.04) * w.sum() + 0.5)
    with pytest.raises(EstimatorError, match="need 8"):
        EstimatorWeights(tiny_lm.model_id, tiny_lm.tokenizer_id, 2, 4, tuple(w), 0.5)  # all layers: 8 weights


def test_a_version_3_file_reads_every_layer(tiny_weights):
    path, w = tiny_weights
    data = json.loads(path.read_text())
    del data["depth"]
    path.write_text(json.dumps({**data, "version": 3}))
    loaded = EstimatorWeights.load(path)
    assert (loaded.depth, loaded.weights) == (2, tuple(w))


def test_a_model_without_weights_points_to_estimator_train(tiny_lm):
    with pytest.raises(EstimatorError) as caught:
        shipped_weights(tiny_lm)
    assert "attribot estimator train" in str(caught.value) and tiny_lm.model_id in str(caught.value)


SHIPPED = {"smollm2-135m.json": ("smollm2-135m", 30, 9), "qwen2.5-coder-0.5b.json": ("qwen2.5-coder-0.5b", 24, 14)}


def test_shipped_weights_are_valid_files_for_smollm2_and_the_default_05b():
    assert sorted(f.name for f in SHIPPED_DIR.glob("*.json")) == sorted(SHIPPED)
    for name, (model, layers, heads) in SHIPPED.items():
        weights = EstimatorWeights.load(SHIPPED_DIR / name)
        assert (weights.model_id, weights.layers, weights.heads) == (model, layers, heads)
        assert weights.trained["rows"] > weights.layers * weights.heads
        assert weights.trained["heldout"]["examples"] > 0  # it says how it did on examples it never saw
        assert np.isfinite(weights.weights).all()


def test_has_weights_finds_shipped_weights_and_those_in_attribot_estimators(tiny_lm, tiny_weights, monkeypatch):
    from attribot_core.estimator import ENV_DIRS, has_weights

    monkeypatch.delenv(ENV_DIRS, raising=False)
    assert has_weights("smollm2-135m") and not has_weights("qwen2.5-coder-1.5b") and not has_weights("")
    assert not has_weights(tiny_lm.model_id)
    path, w = tiny_weights
    (path.parent / "notes.json").write_text("not weights")  # a stray file in the folder is no model's
    monkeypatch.setenv(ENV_DIRS, str(path.parent))
    assert has_weights(tiny_lm.model_id) and has_weights(f" {tiny_lm.model_id} ")
    np.testing.assert_allclose(shipped_weights(tiny_lm).weights, w)  # what the method then loads


# -- the estimate method -----------------------------------------------------------------------------
def test_estimate_is_one_pass_and_scores_are_weighted_attention_mass(tiny_lm, tiny_weights):
    path, w = tiny_weights
    result = attribute(CONTEXT, "Who did Ada work with?", model=tiny_lm, response=RESPONSE, method="estimate",
                       weights=str(path), precision="model")
    _, feats, log_prob = sentence_features(tiny_lm, CONTEXT, "Who did Ada work with?", Response(RESPONSE))
    expected = np.sqrt(feats) @ w + 0.25
    np.testing.assert_allclose([s.score for s in result.sentences], expected, atol=1e-5)
    assert result.total_forward_passes == 1
    assert result.log_prob_full == pytest.approx(log_prob, abs=1e-5)
    doc = segment(CONTEXT)
    for p in result.paragraphs:  # a paragraph's mass is the sum of its sentences' masses
        inside = [s.index for s in doc.sentences_of(p.index)]
        assert p.score == pytest.approx(float(np.sqrt(feats[inside].sum(axis=0)) @ w + 0.25), abs=1e-5)


def test_an_estimate_of_the_first_layers_stops_its_pass_there_and_has_no_base_log_prob(tiny_lm, tmp_path):
    w = np.linspace(-1.0, 2.0, 4)
    path = EstimatorWeights(tiny_lm.model_id, tiny_lm.tokenizer_id, 2, 4, tuple(w), 0.25, {}, depth=1).save(
        tmp_path / "d.json")
    result = attribute(CONTEXT, "Who did Ada work with?", model=tiny_lm, response=RESPONSE, method="estimate",
                       weights=str(path), precision="model")
    _, feats, _ = sentence_features(tiny_lm, CONTEXT, "Who did Ada work with?", Response(RESPONSE))
    np.testing.assert_allclose([s.score for s in result.sentences], np.sqrt(feats[:, :4]) @ w + 0.25, atol=1e-5)
    assert result.total_forward_passes == 1 and result.log_prob_full is None
    for span, tokens in zip(result.sentences, result.per_token.spans("sentence"), strict=True):
        assert sum(tokens.values) == pytest.approx(span.score, abs=1e-4)  # per-token shares still add up


def test_an_estimate_after_generating_starts_from_its_keys_and_computes_only_the_response_rows(
        tiny_lm, tiny_weights):
    from attribot_core.generate import generate_response

    path, _ = tiny_weights
    question = "Who did Ada work with?"
    kept = []
    response = generate_response(tiny_lm, CONTEXT, question, max_new_tokens=6, on_pass=kept.append)
    after = attribute(CONTEXT, question, model=tiny_lm, method="estimate", weights=str(path), response=response,
                      kept_pass=kept[0])
    alone = attribute(CONTEXT, question, model=tiny_lm, method="estimate", weights=str(path), precision="model",
                      response=response)
    np.testing.assert_allclose(after.scores("sentence"), alone.scores("sentence"), atol=1e-5)
    np.testing.assert_allclose(after.scores("paragraph"), alone.scores("paragraph"), atol=1e-5)
    assert after.log_prob_full == pytest.approx(alone.log_prob_full, abs=1e-4)
    rows = len(response.token_ids)  # the rows that predict the response: all that is computed
    assert after.extra["tokens_computed"] == rows
    assert after.extra["tokens_reused"] == alone.extra["tokens_computed"] - rows
    assert after.total_forward_passes == alone.total_forward_passes == 1
    generating = attribute(CONTEXT, question, model=tiny_lm, method="estimate", weights=str(path),
                           max_new_tokens=6)  # generates the same response and keeps its keys itself
    np.testing.assert_allclose(generating.scores("sentence"), after.scores("sentence"), atol=1e-5)
    assert generating.extra["tokens_computed"] == rows


def test_keys_of_part_of_the_prompt_are_left_alone_by_the_estimate(tiny_lm, tiny_weights):
    """A prefill stopped early lends only its first tokens: the estimate then runs as without it (a pass of
    the rest in float32 could cost more than the base pass it rides on, or its own bfloat16 pass)."""
    from attribot_core.generate import prefill

    path, _ = tiny_weights
    part = prefill(tiny_lm, CONTEXT, "Who did Ada work with?", chunk=8, max_tokens=8)
    result = attribute(CONTEXT, "Who did Ada work with?", model=tiny_lm, method="estimate", weights=str(path),
                       response=RESPONSE, kept_pass=part, precision="model")  # float32 as the kept keys are
    whole = prefill(tiny_lm, CONTEXT, "Who did Ada work with?")
    after = attribute(CONTEXT, "Who did Ada work with?", model=tiny_lm, method="estimate", weights=str(path),
                      response=RESPONSE, kept_pass=whole)
    assert result.extra["tokens_reused"] == 0 and after.extra["tokens_reused"] == len(whole.ids)
    np.testing.assert_allclose(result.scores("sentence"), after.scores("sentence"), atol=1e-5)


def test_keys_another_model_left_are_refused(tiny_lm, tiny_lm_b):
    from attribot_core.generate import generate_response
    from attribot_core.scoring import LocalScorer

    kept = []
    response = generate_response(tiny_lm_b, CONTEXT, "Who did Ada work with?", max_new_tokens=3, on_pass=kept.append)
    with pytest.raises(ValueError, match="cannot start a pass of"):
        LocalScorer(tiny_lm, "Who did Ada work with?", response, kept_pass=kept[0])


def test_the_estimates_per_token_values_add_up_to_each_spans_estimate(tiny_lm, tiny_weights):
    path, _ = tiny_weights
    result = attribute(CONTEXT, "Who did Ada work with?", model=tiny_lm, response=RESPONSE, method="estimate",
                       weights=str(path))
    for level in ("sentence", "paragraph"):  # the whole response is attributed: every token has its share
        for span, tokens in zip(result.spans(level), result.per_token.spans(level), strict=True):
            assert sum(tokens.values) == pytest.approx(span.score, abs=1e-4)


def test_estimate_of_a_part_of_the_response_uses_only_its_tokens(tiny_lm, tiny_weights):
    path, w = tiny_weights
    whole = attribute(CONTEXT, "Who?", model=tiny_lm, response=RESPONSE, method="estimate", weights=str(path))
    part = attribute(CONTEXT, "Who?", model=tiny_lm, response=RESPONSE, method="estimate", weights=str(path),
                     response_span=(0, 3))
    assert [s.score for s in part.sentences] != [s.score for s in whole.sentences]


def test_estimate_is_registered_with_one_planned_pass():
    spec = get_method("estimate")
    assert spec.planned_passes(200, 800) == 1 and not spec.needs_proxy and not spec.exact
    assert spec.params == {"weights": "", "precision": "auto"}



# -- ranking stages ------------------------------------------------------------------------------------
@pytest.fixture
def shipped_for_tiny(tiny_lm, tiny_weights, monkeypatch):
    """The tiny model's weights stand in for the package's shipped ones (the stages use shipped weights)."""
    import attribot_core.estimator as estimator

    path, w = tiny_weights
    monkeypatch.setattr(estimator, "SHIPPED_DIR", path.parent)
    return w


def _exact_loo_within(lm, doc, kept: list[int], i: int) -> float:
    """LOO of sentence ``i`` in the context of the ``kept`` sentences only, by naive scoring."""
    from attribot_core.scoring import LocalScorer

    exact = LocalScorer(lm, "Who?", Response(RESPONSE), reuse_prefix=False)
    dropped = [j for j in range(len(doc.sentences)) if j not in kept]
    return exact.log_prob(doc.without(dropped)) - exact.log_prob(doc.without(dropped + [i]))


def test_pruning_with_the_estimate_rescores_the_estimates_top_m_exactly(tiny_lm, shipped_for_tiny):
    from attribot_core.methods.estimate import estimate
    from attribot_core.methods.pruning import pruning
    from attribot_core.scoring import LocalScorer

    doc = segment(CONTEXT)
    est = estimate(doc, LocalScorer(tiny_lm, "Who?", Response(RESPONSE)))
    ranked = sorted(range(len(doc.sentences)), key=lambda i: -est.sentence_scores[i])[:3]
    target = LocalScorer(tiny_lm, "Who?", Response(RESPONSE))
    out = pruning(doc, target, None, keep_sentences=3, proxy_stage="estimate")  # no proxy: the target's estimate
    assert sorted(out.extra["kept_sentences"]) == sorted(ranked)
    assert target.stats.forward_passes == 1 + 1 + 3  # the estimate, the pruned base, three ablations
    for i in ranked:
        assert out.sentence_scores[i] == pytest.approx(_exact_loo_within(tiny_lm, doc, ranked, i), abs=1e-4)
    assert all(out.sentence_scores[i] == est.sentence_scores[i] for i in range(len(doc.sentences)) if i not in ranked)


def test_pruning_ranks_with_the_proxys_estimate_through_attribute(tiny_lm, shipped_for_tiny):
    result = attribute(CONTEXT, "Who?", model=tiny_lm, proxy_model=tiny_lm, response=RESPONSE, method="pruning",
                       proxy_stage="estimate", keep_sentences=2)
    assert len(result.extra["kept_sentences"]) == 2
    assert sum(result.forward_passes.values()) == 1 + 1 + 2  # the proxy's estimate, the pruned base, 2 ablations


def test_tree_with_the_estimate_keeps_the_estimates_top_paragraphs_and_scores_their_sentences_exactly(
        tiny_lm, shipped_for_tiny):
    from attribot_core.methods.estimate import estimate
    from attribot_core.methods.tree import tree
    from attribot_core.scoring import LocalScorer

    doc = segment(CONTEXT)
    est = estimate(doc, LocalScorer(tiny_lm, "Who?", Response(RESPONSE)))
    best = int(np.argmax(est.paragraph_scores))
    scorer = LocalScorer(tiny_lm, "Who?", Response(RESPONSE))
    out = tree(doc, scorer, keep_paragraphs=1, proxy_stage="estimate")
    inside = [s.index for s in doc.sentences_of(best)]
    assert out.extra["kept_paragraphs"] == [best]
    assert [i for i, s in enumerate(out.sentence_scores) if s is not None] == inside
    for i in inside:
        assert out.sentence_scores[i] == pytest.approx(_exact_loo_within(tiny_lm, doc, inside, i), abs=1e-4)
    assert out.paragraph_scores == pytest.approx(est.paragraph_scores)
    assert scorer.stats.forward_passes == 1 + 1 + len(inside)
    assert get_method("tree").planned_passes(len(doc.paragraphs), len(doc.sentences),
                                             {"keep_paragraphs": 1, "proxy_stage": "estimate"}) >= 2


@pytest.mark.slow
def test_smollm2_estimates_with_its_shipped_weights_in_one_pass(smollm2_lm):
    result = attribute(CONTEXT, "Who did Ada work with?", model=smollm2_lm, response=RESPONSE, method="estimate")
    assert result.total_forward_passes == 1
    best = max(result.sentences, key=lambda s: s.score)
    assert "Babbage" in best.text  # the sentence the response repeats ranks first


def test_the_result_says_which_matrix_products_the_estimates_pass_used(tiny_lm, tiny_weights, monkeypatch):
    from attribot_core.viz.report import run_facts

    path, _ = tiny_weights
    ask = dict(model=tiny_lm, response=RESPONSE, method="estimate", weights=str(path))
    monkeypatch.setattr("attribot_core.features.bf16_is_faster", lambda lm: False)
    plain = attribute(CONTEXT, "Who?", **ask)
    assert plain.extra["estimate_matmuls"] == "float32" and plain.log_prob_full is not None
    monkeypatch.setattr("attribot_core.features.bf16_is_faster", lambda lm: True)
    fast = attribute(CONTEXT, "Who?", **ask)  # precision=auto: bfloat16 where the CPU has it natively
    assert fast.extra["estimate_matmuls"] == "bfloat16" and fast.log_prob_full is None
    assert "bfloat16" in dict(run_facts(fast))["The method's own pass"]
    pinned = attribute(CONTEXT, "Who?", precision="model", **ask)
    assert pinned.extra["estimate_matmuls"] == "float32"
    assert [s.score for s in pinned.sentences] == pytest.approx([s.score for s in plain.sentences], abs=1e-6)
