"""bench/estimator_cv.py: the aggregates over response tokens, and nested cross-validation that scores a recipe
only on examples its fit never saw (synthetic data: no model, no timing)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import estimator_cv  # noqa: E402

from attribot_core.estimator import sign_log_within  # noqa: E402


def test_the_aggregates_over_response_tokens_are_the_mean_max_top3_and_probability_weighted_mean():
    per_token = np.array([[[1.0]], [[2.0]], [[3.0]], [[6.0]]])  # 4 tokens, 1 span, 1 head
    log_probs = np.log([0.5, 0.5, 0.0 + 1e-300, 0.0 + 1e-300])
    agg = estimator_cv.aggregates(per_token, log_probs)
    assert agg["mean"][0, 0] == pytest.approx(3.0)
    assert agg["max"][0, 0] == 6.0
    assert agg["top3"][0, 0] == pytest.approx(11 / 3)
    assert agg["confident"][0, 0] == pytest.approx(1.5)  # only the two sure tokens weigh


def _synthetic(signal: float, examples: int = 24, sentences: int = 12, heads: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.random((examples * sentences, heads))
    true_w = rng.normal(size=heads)
    y = signal * (x @ true_w) + rng.normal(scale=0.05, size=len(x)) * (1 - signal)
    groups = np.repeat([f"ex{i:02d}" for i in range(examples)], sentences)
    return x, y, groups


def test_nested_cv_recovers_a_linear_signal_on_held_out_examples():
    x, y, groups = _synthetic(signal=1.0)
    cv = estimator_cv.nested_cv(x, y, groups, None, folds=4, reps=1)
    assert list(cv["examples"]) == sorted(set(groups))
    assert np.nanmean(cv["scores"][:, 0]) > 0.95  # Spearman
    assert np.nanmean(cv["scores"][:, 1]) > 0.8  # top-1


def test_nested_cv_finds_nothing_in_noise_and_a_fixed_seed_repeats():
    x, y, groups = _synthetic(signal=0.0)
    first = estimator_cv.nested_cv(x, y, groups, sign_log_within, folds=4, reps=2)
    assert abs(np.nanmean(first["scores"][:, 0])) < 0.15
    again = estimator_cv.nested_cv(x, y, groups, sign_log_within, folds=4, reps=2)
    np.testing.assert_array_equal(first["scores"], again["scores"])


def test_the_report_has_every_recipe_and_a_learning_curve_from_cached_aggregates(tmp_path):
    x, y, groups = _synthetic(signal=1.0, examples=24)
    rng = np.random.default_rng(1)
    text_features = np.column_stack([rng.random(len(y)), rng.random(len(y)), y])  # the overlap column is LOO itself
    data = {name: x for name in estimator_cv.AGGREGATES} | {"y": y, "groups": groups, "feature_seconds": np.array(1.0),
                                                             "layers": np.array(2), "heads": np.array(3),  # 6 heads
                                                             "text": text_features, "first_order": -x}
    np.savez_compressed(tmp_path / "cache.npz", **data)
    out = tmp_path / "cv.md"
    assert estimator_cv.main(["--cache", str(tmp_path / "cache.npz"), "--out", str(out), "--folds", "3",
                              "--reps", "1"]) == 0
    text = out.read_text()
    assert all(recipe.name in text for recipe in estimator_cv.RECIPES)
    assert "`attention` baseline" in text and "training examples): 10: " in text and ", 16: " in text
    assert all(name in text for name in estimator_cv.LOSSES.values())
    beyond = {r[1].strip(): float(r[2]) for r in (line.split("|") for line in text.splitlines())
              if len(r) > 2 and (" alone" in r[1] or "shipped + " in r[1])}
    assert set(beyond) == {"log length alone", "position alone", "word overlap alone", "shipped + log length",
                           "shipped + position", "shipped + word overlap", "shipped + all three"}
    assert beyond["word overlap alone"] == 1.0 and abs(beyond["log length alone"]) < 0.3
    assert "| plain sum over every head (no weights: what the app shows) |" in text
    assert "| ridge over the layers' first-order LOO and the shipped features |" in text


def _first_order_rows(data: dict) -> dict[str, list[str]]:
    x = np.sqrt(data["mean"])
    mine = estimator_cv.nested_cv(x, data["y"], data["groups"], estimator_cv.SHIPPED.target, folds=4, reps=1)["scores"]
    lines = estimator_cv.first_order_table(data, x, mine, 2, folds=4, reps=1)
    return {r[1].strip(): [c.strip() for c in r[2:-1]] for r in (line.split("|") for line in lines)
            if len(r) > 3 and r[2].strip()[:1] in "0123456789-"}


def test_the_first_order_table_weighs_heads_against_their_plain_sum():
    rng = np.random.default_rng(7)
    examples, sentences, layers, heads = 24, 12, 2, 3
    groups = np.repeat([f"ex{i:02d}" for i in range(examples)], sentences)
    mass = rng.random((examples * sentences, layers * heads))
    per_head = rng.normal(size=mass.shape)
    signal = per_head @ np.array([3.0, -2.0, 0.0, 0.0, 0.0, 1.0])  # some heads count, one against its sign
    data = {"mean": mass, "y": signal, "groups": groups, "layers": np.array(layers), "heads": np.array(heads),
            "first_order": per_head}
    rows = _first_order_rows(data)
    plain, heads_row = rows["plain sum over every head (no weights: what the app shows)"], \
        rows["ridge over the heads' first-order LOO"]
    assert plain[1] == "+0.000 [+0.000, +0.000]"  # the plain sum against itself
    assert float(heads_row[0]) > 0.95 > 0.5 > float(plain[0])  # the fit finds the heads that count, and their signs
    assert float(heads_row[1].split()[0]) > 0.4
    data["y"] = per_head.sum(axis=1)  # LOO is the plain sum: nothing to learn, and the plain sum ranks perfectly
    rows = _first_order_rows(data)
    assert float(rows["plain sum over every head (no weights: what the app shows)"][0]) == 1.0
    assert float(rows["ridge over the heads' first-order LOO"][0]) > 0.95


def _stored_loo_runs(model_dir, tmp_path) -> tuple[list[dict], object, dict[str, list[float]]]:
    """Two examples' exact LOO on the tiny model, stored as a batch "train" in a fresh database: (rows, the
    store, each row's sentence scores)."""
    from attribot_core.runs.batch import attribute_many
    from attribot_core.runs.store import RunStore

    contexts = ["Ada met Bo. Rain fell all day long in the hills. Bo built the mill.",
                "Cy sold grain. Ada worked with Bo."]
    rows = [{"id": f"r{i}", "context": c, "question": "Who built the mill?", "response": "Bo built the mill."}
            for i, c in enumerate(contexts)]
    db = tmp_path / "runs.sqlite"
    assert all(r.status == "done" for r in attribute_many(rows, model=str(model_dir), method="loo", db=db,
                                                          name="train"))
    store = RunStore(db)
    return rows, store, {r.row_id: [s.score for s in r.result.sentences] for r in store.list(batch="train", limit=10)}


def test_the_first_order_features_are_the_methods_per_head_effects_in_the_caches_order(tiny_model_dir, tmp_path):
    from attribot_core import attribute, load_model

    rows, store, scores = _stored_loo_runs(tiny_model_dir, tmp_path)
    lm = load_model(str(tiny_model_dir))
    groups = np.array(["r1"] * 2 + ["r0"] * 3)  # the cache's order, not the store's
    per_head = estimator_cv.first_order_features(store, "train", lm, groups, np.array(scores["r1"] + scores["r0"]))
    layers, heads = (lm.model.config.num_hidden_layers, lm.model.config.num_attention_heads)
    assert per_head.shape == (5, layers * heads)
    method = {row["id"]: attribute(row["context"], row["question"], model=lm, method="first-order",
                                   response=row["response"], rows="question and response", precision="model",
                                   per_token=False).scores("sentence") for row in rows}
    np.testing.assert_allclose(per_head.sum(axis=1), method["r1"] + method["r0"], rtol=1e-5, atol=1e-7)
    unknown = np.array(scores["r1"] + [0.0] * 3)  # r1 as stored, then a run the store does not have
    for other_groups, other_y in ((groups, np.zeros(5)), (np.array(["r1"] * 2 + ["r9"] * 3), unknown),
                                  (np.array(["r1"] * 3 + ["r0"] * 2), np.zeros(5))):
        with pytest.raises(SystemExit, match="does not match"):  # other scores, an unknown run, other sizes
            estimator_cv.first_order_features(store, "train", lm, other_groups, other_y)


def test_the_depth_table_reads_the_first_layers_heads_and_sees_where_the_signal_is():
    rng = np.random.default_rng(3)
    examples, sentences, layers, heads = 24, 12, 4, 3
    mass = rng.random((examples * sentences, layers * heads))  # layer-major, as the features are
    groups = np.repeat([f"ex{i:02d}" for i in range(examples)], sentences)
    last_layer_only = np.sqrt(mass[:, -heads:]) @ rng.normal(size=heads)  # only layer 4 predicts LOO
    data = {"mean": mass, "y": last_layer_only, "groups": groups, "layers": np.array(layers),
            "heads": np.array(heads)}
    rows = [line.split("|") for line in estimator_cv.depth_table(data, np.sqrt(mass), folds=4, reps=1)[0]
            if line.startswith("| ") and line[2].isdigit()]
    spearman = {int(r[1]): float(r[3]) for r in rows}
    assert sorted(spearman) == [2, 4]  # every second layer, and all of them
    assert spearman[4] > 0.9 > 0.3 > spearman[2]
    assert rows[-1][4].strip() == "+0.000 [+0.000, +0.000]"  # every layer against itself


def test_the_text_features_come_from_the_stored_runs_in_the_caches_order(tiny_model_dir, tmp_path):
    _, store, scores = _stored_loo_runs(tiny_model_dir, tmp_path)
    groups = np.array(["r0"] * 3 + ["r1"] * 2)
    text = estimator_cv.text_features(store, "train", groups, np.array(scores["r0"] + scores["r1"]))
    np.testing.assert_allclose(text[:, 0], np.log([len("Ada met Bo."), len("Rain fell all day long in the hills."),
                                                   len("Bo built the mill."), len("Cy sold grain."),
                                                   len("Ada worked with Bo.")]))
    np.testing.assert_allclose(text[:, 1], [0, 0.5, 1, 0, 1])
    np.testing.assert_allclose(text[:, 2], [1 / 3, 1 / 8, 1, 0, 1 / 4])  # share of the sentence's words in the answer
    with pytest.raises(SystemExit, match="does not match"):
        estimator_cv.text_features(store, "train", groups, np.zeros(5))


@pytest.mark.parametrize("loss", sorted(estimator_cv.LOSSES))
def test_each_ranking_loss_recovers_a_linear_signal_on_held_out_examples(loss):
    x, y, groups = _synthetic(signal=1.0)
    cv = estimator_cv.nested_cv(x, y, groups, sign_log_within, folds=4, reps=1, fit=estimator_cv.loss_fit(loss))
    assert np.nanmean(cv["scores"][:, 0]) > 0.95


@pytest.mark.parametrize("loss", sorted(estimator_cv.LOSSES))
def test_a_ranking_loss_finds_nothing_in_noise(loss):
    x, y, groups = _synthetic(signal=0.0)
    cv = estimator_cv.nested_cv(x, y, groups, sign_log_within, folds=4, reps=1, fit=estimator_cv.loss_fit(loss))
    assert abs(np.nanmean(cv["scores"][:, 0])) < 0.15


def test_the_pairwise_loss_weighs_the_heads_that_order_the_sentences_with_their_signs():
    # a steep target, monotone in head 0 and falling in head 1; head 2 is noise
    rng = np.random.default_rng(5)
    x = rng.random((20 * 10, 3))
    groups = np.repeat([f"ex{i:02d}" for i in range(20)], 10)
    y = np.exp(12 * x[:, 0]) - 0.3 * np.exp(12 * x[:, 1])
    w, _ = estimator_cv.loss_weights(x, y, groups, 1e-4, "pairwise")
    assert w[0] > 0 and w[1] < 0 and abs(w[2]) < 0.2 * abs(w[0])


def test_the_default_database_holds_runs_of_the_default_model():
    from attribot_core.runs import RunStore

    db = estimator_cv.RESULTS / f"{estimator_cv.MODEL}-train.sqlite"
    records = RunStore(db).list(batch="estimator-train", statuses=["done"], limit=5)
    assert records and all(r.result.model == estimator_cv.MODEL for r in records)


def test_a_part_of_the_report_has_only_its_table_and_an_unknown_table_is_refused(tmp_path, capsys):
    x, y, groups = _synthetic(signal=1.0, examples=12)
    data = {name: x for name in estimator_cv.AGGREGATES} | {"y": y, "groups": groups, "feature_seconds": np.array(1.0),
                                                             "layers": np.array(2), "heads": np.array(3),
                                                             "text": np.zeros((len(y), 3))}
    np.savez_compressed(tmp_path / "cache.npz", **data)
    out = tmp_path / "part.md"
    assert estimator_cv.main(["--cache", str(tmp_path / "cache.npz"), "--out", str(out), "--folds", "3",
                              "--reps", "1", "--tables", "loss"]) == 0
    text = out.read_text()
    assert all(name in text for name in estimator_cv.LOSSES.values())
    assert "| recipe |" not in text and "Depth:" not in text and "Learning curve" not in text
    with pytest.raises(SystemExit):
        estimator_cv.main(["--cache", str(tmp_path / "cache.npz"), "--tables", "loss,depht"])
    assert "depht" in capsys.readouterr().err
