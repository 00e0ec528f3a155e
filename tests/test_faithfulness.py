"""Top-k log-probability drop and LDS on the tiny model, against values computed by hand with a scorer."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from scipy.stats import spearmanr

from attribot_core import attribute, segment
from attribot_core.faithfulness import (
    MemoryCache,
    lds,
    lds_masks,
    measure,
    measured,
    parse_measures,
    row_measures,
    scorer_for,
    topk_drop,
    with_measures,
)
from attribot_core.prompt import Response
from attribot_core.scoring import LocalScorer

RESPONSE = "She worked with Charles Babbage."


@pytest.fixture(scope="module")
def results(tiny_lm):
    from tests.conftest import CONTEXT, QUESTION

    return {m: attribute(CONTEXT, QUESTION, model=tiny_lm, method=m, response=RESPONSE)
            for m in ("loo", "hierarchical")}


def by_hand(tiny_lm, result, removed: set[int]) -> float:
    """log p(R | context without ``removed`` sentences), one context per fresh scorer, without batching."""
    scorer = LocalScorer(tiny_lm, result.question, Response(result.response), reuse_prefix=False, batch_size=1)
    return scorer.log_prob(segment(result.context).without(removed))


def test_topk_drop_is_the_log_prob_lost_when_the_top_k_sentences_are_removed(tiny_lm, results):
    result = results["loo"]
    ranked = sorted(range(len(result.sentences)), key=lambda i: -result.sentences[i].score)
    full = by_hand(tiny_lm, result, set())
    drops = topk_drop(result, scorer_for(result, tiny_lm))
    assert set(drops) == {"1", "3", "5"}
    for k in (1, 3, 5):
        assert drops[str(k)] == pytest.approx(full - by_hand(tiny_lm, result, set(ranked[:k])), abs=1e-4)


def test_topk_drop_ranks_not_scored_sentences_last_and_is_undefined_beyond_the_context(tiny_lm, results):
    result = results["hierarchical"]
    scored = [s.index for s in result.sentences if s.score is not None]
    assert 0 < len(scored) < len(result.sentences)  # hierarchical left some sentences unscored
    top = sorted(scored, key=lambda i: -result.sentences[i].score)
    k = len(scored) + 1  # every scored sentence, then the first unscored one
    first_unscored = min(i for i in range(len(result.sentences)) if i not in scored)
    drop = topk_drop(result, scorer_for(result, tiny_lm), ks=[k, 99])
    expected = by_hand(tiny_lm, result, set()) - by_hand(tiny_lm, result, {*top, first_unscored})
    assert drop[str(k)] == pytest.approx(expected, abs=1e-4) and drop["99"] is None


def test_lds_is_the_spearman_over_masks_of_actual_and_predicted_log_probs(tiny_lm, results):
    result = results["loo"]
    masks = lds_masks(result, 8)
    assert len(masks) == 8 and all(len(m) == len(result.sentences) for m in masks)
    actual = [by_hand(tiny_lm, result, {i for i, kept in enumerate(m) if not kept}) for m in masks]
    predicted = [sum(s.score for s, kept in zip(result.sentences, m, strict=True) if kept) for m in masks]
    assert lds(result, scorer_for(result, tiny_lm), 8) == pytest.approx(spearmanr(predicted, actual)[0], abs=1e-9)


def test_lds_is_undefined_when_the_method_predicts_the_same_for_every_mask(tiny_lm, results):
    flat = replace(results["loo"], sentences=tuple(replace(s, score=None) for s in results["loo"].sentences))
    assert lds(flat, scorer_for(flat, tiny_lm), 8) is None


def test_the_masks_of_a_row_are_the_same_for_every_method_and_differ_between_rows(results):
    loo, hier = results["loo"], results["hierarchical"]
    assert lds_masks(loo) == lds_masks(hier)
    other = replace(loo, response="Another answer.")
    assert lds_masks(other) != lds_masks(loo)
    kept = [m.count(True) for m in lds_masks(loo, 200)]
    assert 0.4 < sum(kept) / (200 * len(loo.sentences)) < 0.6  # each sentence kept with probability 0.5


def test_a_second_method_of_a_row_reuses_the_cached_masked_log_probs(tiny_lm, results):
    cache = MemoryCache()
    first = measure(results["loo"], scorer_for(results["loo"], tiny_lm), ["lds"], masks=8, cache=cache)
    second = measure(results["hierarchical"], scorer_for(results["hierarchical"], tiny_lm), ["lds"], masks=8,
                     cache=cache)
    assert first["measures_passes"] > 0 and second["measures_passes"] == 0
    assert first["lds_masks"] == second["lds_masks"] == 8


def test_measures_are_kept_in_extra_and_read_back_flat(tiny_lm, results):
    result = results["loo"]
    assert not measured(result, ["topk", "lds"])
    values = measure(result, scorer_for(result, tiny_lm), "topk,lds", masks=4)
    kept = type(result).from_json(with_measures(result, values).to_json())
    assert measured(kept, ["topk", "lds"], masks=4) and not measured(kept, ["lds"], masks=32)
    flat = row_measures(kept)
    assert set(flat) == {"topk_drop@1", "topk_drop@3", "topk_drop@5", "lds"}
    assert flat["topk_drop@1"] == pytest.approx(values["topk_drop"]["1"])
    assert all(math.isnan(v) for v in row_measures(result).values())


def test_an_unknown_measure_is_refused_by_name():
    assert parse_measures("topk, lds,topk") == ("topk", "lds")
    with pytest.raises(ValueError, match="Unknown measure speed"):
        parse_measures("topk,speed")
