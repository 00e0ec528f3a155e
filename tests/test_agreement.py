"""Agreement between batches (``attribot_core.agreement``) and the bootstrap behind its intervals.

Batches are made by the batch layer (:func:`attribute_many`) with the tiny in-process model; batches with
known agreement (the reference's own scores reversed) are written into the store as a test would write any
run: through the store's API.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pytest

from attribot_core import AttributionResult, attribute_many
from attribot_core.agreement import (
    ADD_MEASURES,
    METRICS,
    compare,
    compare_batches,
    format_table,
    load_batch,
    measures_hint,
    most_disagreeing,
)
from attribot_core.api import InputError
from attribot_core.examples import EXAMPLES
from attribot_core.metrics import Interval, bootstrap_ci, bootstrap_ratio_ci
from attribot_core.runs import RunStore
from attribot_core.runs.export import batch_records

ROWS = [{"id": f"{e.key}-{copy}", "context": e.context, "question": e.question if copy == 0 else f"{e.question}?",
         "response": "It was in 1874.", "gold": [e.context.split(". ")[1]]}
        for copy in range(2) for e in EXAMPLES]


def write_copy(store: RunStore, source: str, name: str,
               change: Callable[[AttributionResult], AttributionResult]) -> None:
    """Store batch ``name``: the rows of batch ``source`` with ``change`` applied to each result."""
    store.ensure_batch(name, source="test")
    for r in batch_records(store, source):
        run = store.create(r.request, source="test", batch=name, row_id=r.row_id, row=r.row)
        store.start(run.id)
        store.finish(run.id, change(r.result))


def with_scores(result: AttributionResult, scores: list[float | None]) -> AttributionResult:
    return replace(result, sentences=tuple(replace(s, score=v) for s, v in zip(result.sentences, scores, strict=True)))


def shuffled(result: AttributionResult) -> AttributionResult:
    """The scores moved to other sentences (the first sentence's score goes to the last, and so on)."""
    return with_scores(result, result.scores("sentence")[::-1])


def negated(result: AttributionResult) -> AttributionResult:
    """Every score's sign flipped: the ranking turned upside down."""
    return with_scores(result, [None if v is None else -v for v in result.scores("sentence")])


@pytest.fixture(scope="module")
def store(tiny_model_dir, tmp_path_factory) -> RunStore:
    """Batches ``ref`` (exact loo over every row), ``hier`` (hierarchical k=1, one row left out), and copies of
    ``ref`` with known agreement: ``shuffled`` and ``negated``."""
    store = RunStore(tmp_path_factory.mktemp("agreement") / "runs.sqlite3")
    model = str(tiny_model_dir)
    assert all(r.status == "done" for r in attribute_many(ROWS, model=model, method="loo", db=store, name="ref"))
    list(attribute_many(ROWS[:-1], model=model, method="hierarchical", keep_paragraphs=1, db=store, name="hier"))
    write_copy(store, "ref", "shuffled", shuffled)
    write_copy(store, "ref", "negated", negated)
    return store


def measured(drop: float, lds: float | None) -> Callable[[AttributionResult], AttributionResult]:
    """A change that stores measures as ``--measures topk,lds`` does: top-1 and top-3 drops of ``drop`` nats,
    the top-5 drop undefined (as for a context of fewer than 5 sentences), LDS ``lds``."""
    return lambda result: result.with_extra(topk_drop={"1": drop, "3": drop, "5": None}, lds=lds, lds_masks=4,
                                            measures_passes=0, measures_seconds=0.0)


# -- the bootstrap -----------------------------------------------------------------------------------
def test_bootstrap_on_a_fixed_seed_gives_the_same_interval_twice():
    values = [0.13, 0.92, 0.41, 0.77, 0.35, 0.86, 0.2, 0.58, 0.04, 0.66, 0.49, 0.31]
    first, again = bootstrap_ci(values, seed=3), bootstrap_ci(values, seed=3)
    assert first == again
    assert first.mean == pytest.approx(sum(values) / len(values)) and first.n == len(values)
    assert first.lo < first.mean < first.hi
    assert bootstrap_ci(values, seed=4, resamples=200) != bootstrap_ci(values, seed=3, resamples=200)


def test_bootstrap_interval_of_two_rows_spans_both_and_skips_rows_without_a_value():
    # Resampled means of [0, 1] are 0, 0.5 or 1 (probability 1/4, 1/2, 1/4): the 95 % interval is [0, 1].
    iv = bootstrap_ci([0.0, None, 1.0, float("nan")])
    assert (iv.mean, iv.lo, iv.hi, iv.n) == (0.5, 0.0, 1.0, 2)
    assert bootstrap_ci([None, float("nan")]).to_dict() == {"mean": None, "lo": None, "hi": None, "n": 0}


def test_bootstrap_of_equal_values_has_zero_width():
    iv = bootstrap_ci([0.25] * 9)
    assert iv.lo == iv.mean == iv.hi == 0.25


def test_speed_up_is_a_ratio_of_mean_times_not_a_mean_of_ratios():
    iv = bootstrap_ratio_ci([2.0, 2.0], [1.0, 3.0])  # mean of ratios would be (2 + 2/3) / 2
    assert iv.mean == pytest.approx(1.0) and iv.n == 2 and iv.lo <= 1.0 <= iv.hi
    assert bootstrap_ratio_ci([1.0, None], [None, 2.0]).mean is None


# -- batches -----------------------------------------------------------------------------------------
def test_a_batch_against_itself_has_spearman_1_with_a_zero_width_interval(store):
    (same,) = compare_batches(store, "ref", ["ref"])
    assert same.n == len(ROWS) and same.method == "loo" and not same.not_compared
    for key in ("spearman", "pearson", "top1", "top3", "outlier_recall", "speedup"):
        iv = same.metrics[key]
        assert iv.mean == pytest.approx(1.0) and iv.hi - iv.lo <= 1e-12, key
    assert same.metrics["gold@1"].n == len(ROWS)  # every row has gold
    assert same.metrics["forward_passes"].mean > 1 and same.metrics["seconds"].mean > 0


def test_shuffled_scores_agree_badly_and_their_interval_lies_below_the_reference(store):
    ref, mixed = compare_batches(store, "ref", ["ref", "shuffled"])
    assert mixed.n == len(ROWS)
    assert mixed.metrics["spearman"].mean < 0.2 and mixed.metrics["spearman"].hi < 0.5
    assert mixed.metrics["top1"].mean < 0.5
    assert mixed.metrics["outlier_recall"].mean < ref.metrics["outlier_recall"].mean
    worst = most_disagreeing(mixed, k=2)
    assert len(worst) == 2 and worst[0].values["spearman"] <= worst[1].values["spearman"]
    assert worst[0].values["spearman"] == min(r.values["spearman"] for r in mixed.rows)


def test_negated_scores_have_spearman_minus_1_on_every_row(store):
    (upside_down,) = compare_batches(store, "ref", ["negated"])
    iv = upside_down.metrics["spearman"]
    assert iv.mean == pytest.approx(-1.0) and iv.hi - iv.lo <= 1e-12
    assert upside_down.metrics["top1"].mean == 0.0


def test_the_same_seed_gives_the_same_figures_and_json_twice(store):
    first = compare_batches(store, "ref", ["hier"], seed=7)[0].to_dict()
    assert compare_batches(store, "ref", ["hier"], seed=7)[0].to_dict() == first
    assert set(first["metrics"]) == set(METRICS)
    assert all(set(v) == {"mean", "lo", "hi", "n"} for v in first["metrics"].values())


def test_rows_missing_from_either_side_are_counted_and_named(store):
    (hier,) = compare_batches(store, "ref", ["hier"])
    left_out = ROWS[-1]["id"]
    assert hier.n == len(ROWS) - 1 and hier.not_compared == {left_out: "not in the batch"}
    assert left_out not in {r.row_id for r in hier.rows}
    # The other way round: the reference lacks a row of the batch.
    (back,) = [compare(load_batch(store, "hier"), load_batch(store, "ref"), batch="ref", reference_name="hier")]
    assert back.not_compared == {left_out: "not in the reference"}
    table = format_table([hier])
    assert f"1 row(s) not compared: {left_out} (not in the batch)" in table


def test_a_failed_row_is_not_compared_and_says_where_it_failed(store):
    ref = load_batch(store, "ref")
    failed = {**ref, "lighthouse-0": replace(ref["lighthouse-0"], status="failed", result=None)}
    agreement = compare(ref, failed, batch="broken", reference_name="ref")
    assert agreement.not_compared == {"lighthouse-0": "failed in the batch"}
    assert agreement.n == len(ROWS) - 1


def test_different_contexts_under_one_id_or_no_common_row_are_input_errors(store):
    ref = load_batch(store, "ref")
    first, second = ROWS[0]["id"], ROWS[1]["id"]
    swapped = {first: replace(ref[first], context=ref[second].context)}
    with pytest.raises(InputError, match=f"Row '{first}' has a different context"):
        compare(ref, swapped, batch="swapped", reference_name="ref")
    renamed = {f"{rid}-x": replace(row, row_id=f"{rid}-x") for rid, row in ref.items()}
    with pytest.raises(InputError, match="no finished row in common"):
        compare(ref, renamed, batch="renamed", reference_name="ref")
    with pytest.raises(InputError, match="No batch named 'nope'"):
        compare_batches(store, "ref", ["nope"])


def test_the_printed_table_shows_every_metric_with_its_interval(store):
    table = format_table(compare_batches(store, "ref", ["ref", "hier"]))
    assert table.startswith("reference: ref")
    for label in METRICS.values():
        assert label in table
    assert "ref (loo)" in table and "hier (hierarchical)" in table
    spearman = next(line for line in table.splitlines() if line.startswith("Spearman"))
    assert "1.000 [1.000, 1.000]" in spearman


def test_undefined_metrics_are_null_in_json_and_dashes_in_the_table(store):
    ref = load_batch(store, "ref")
    no_gold = {rid: replace(row, gold=None) for rid, row in ref.items()}
    agreement = compare(no_gold, no_gold, batch="self", reference_name="self")
    assert agreement.metrics["gold@1"].n == 0
    d = agreement.to_dict()
    assert d["metrics"]["gold@1"] == {"mean": None, "lo": None, "hi": None, "n": 0}
    assert all(row["gold@1"] is None for row in d["rows"])
    gold_line = next(line for line in format_table([agreement]).splitlines() if line.startswith("gold top-1"))
    assert gold_line.split()[-1] == "-" and not math.isnan(agreement.metrics["spearman"].mean)


# -- the faithfulness measures -----------------------------------------------------------------------
def test_measures_of_the_batch_and_of_the_reference_are_means_with_intervals_on_the_same_rows(store):
    write_copy(store, "ref", "ref-measured", measured(1.0, 0.5))
    write_copy(store, "ref", "fast-measured", lambda r: measured(2.0, None)(shuffled(r)))
    (a,) = compare_batches(store, "ref-measured", ["fast-measured"])
    n = len(ROWS)
    assert a.measures["topk_drop@1"] == Interval(2.0, 2.0, 2.0, n)  # above the reference's: LOO is no ceiling
    assert a.reference_measures["topk_drop@1"] == Interval(1.0, 1.0, 1.0, n)
    assert "topk_drop@5" not in a.measures  # undefined on every row: no figure, rather than a zero
    assert "lds" not in a.measures and "lds" not in a.reference_measures  # undefined on the batch's side
    assert (a.measured_rows, a.reference_measured_rows) == (n, n) and measures_hint(a) is None
    d = a.to_dict()
    assert d["measures"]["topk_drop@3"] == {"mean": 2.0, "lo": 2.0, "hi": 2.0, "n": n}
    assert (d["measured_rows"], d["reference_measured_rows"]) == (n, n)
    table = format_table([a])
    assert "top-1 log-prob drop (nats)" in table and "To add them" not in table


def test_rows_without_measures_are_counted_on_each_side_and_the_hint_says_how_to_add_them(store):
    write_copy(store, "ref", "ref-measured-too", measured(1.0, 0.5))
    (a,) = compare_batches(store, "ref-measured-too", ["hier"])
    assert (a.measured_rows, a.reference_measured_rows) == (0, a.n) and a.measures == {}
    hint = measures_hint(a)
    assert hint == (f"hier: the faithfulness measures (top-k log-prob drop, LDS) are on 0 of {a.n} compared rows, "
                    f"and in the reference 'ref-measured-too' on {a.n} of them. {ADD_MEASURES}")
    assert "--measures topk,lds" in ADD_MEASURES
    assert hint in format_table([a])  # measures were asked for on one side: the table says what is missing


def test_batches_never_measured_print_no_hint(store):
    (a,) = compare_batches(store, "ref", ["hier"])
    assert (a.measured_rows, a.reference_measured_rows) == (0, 0) and measures_hint(a) is not None
    assert "faithfulness measures" not in format_table([a])  # opt-in: the table stays quiet unless asked
