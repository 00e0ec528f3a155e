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
from attribot_core.agreement import METRICS, compare, compare_batches, format_table, load_batch, most_disagreeing
from attribot_core.api import InputError
from attribot_core.examples import EXAMPLES
from attribot_core.metrics import bootstrap_ci, bootstrap_ratio_ci
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
