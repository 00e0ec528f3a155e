"""The result type: one frozen record that survives JSON and feeds every view."""

import json
import math

import pytest

from attribot_core import AttributionResult, attribute


@pytest.fixture(scope="module")
def result(tiny_lm):
    from tests.conftest import CONTEXT, QUESTION

    return attribute(CONTEXT, QUESTION, model=tiny_lm, method="hierarchical", response="Babbage.", keep_paragraphs=1)


def test_json_round_trip_is_lossless(result):
    again = AttributionResult.from_json(result.to_json())
    assert again == result


def test_json_has_the_documented_schema(result):
    d = json.loads(result.to_json())
    for key in ("method", "model", "response", "log_prob_full", "paragraphs", "sentences", "forward_passes",
                "settings", "question", "context"):
        assert key in d
    assert d["timings"]["total_s"] > 0
    for s in d["sentences"]:
        assert {"index", "start", "end", "text", "score", "scored_by", "paragraph"} <= s.keys()
        assert d["context"][s["start"] : s["end"]] == s["text"]
    assert "paragraph" not in d["paragraphs"][0]
    assert any(s["score"] is None for s in d["sentences"])  # not scored is null, never 0


def test_top_k_ranks_scored_spans_only(result):
    top = result.top_k(100)
    assert len(top) == sum(s.score is not None for s in result.sentences)
    assert [s.score for s in top] == sorted((s.score for s in top), reverse=True)
    assert result.rank_of()[top[0].index] == 1


def test_dataframe_has_one_row_per_span_with_ranks(result):
    df = result.to_dataframe("sentence")
    assert len(df) == len(result.sentences)
    assert list(df.columns[:5]) == ["index", "start", "end", "text", "score"]
    unscored = df[df.score.isna()]
    assert unscored["rank"].isna().all() and len(unscored) > 0
    assert "paragraph" not in result.to_dataframe("paragraph").columns


def test_from_json_rejects_other_json():
    with pytest.raises(ValueError, match="Not an attribution result"):
        AttributionResult.from_dict({"hello": 1})


def test_scores_are_finite_or_none(result):
    assert all(s.score is None or math.isfinite(s.score) for s in result.sentences + result.paragraphs)


def test_dataframe_ranks_are_whole_numbers_and_rows_name_what_was_attributed(result):
    import csv
    import io

    from attribot_core.csvsafe import frame_to_csv

    df = result.to_dataframe("sentence")
    assert set(df["method"]) == {result.method} and set(df["question"]) == {result.question}
    assert set(df["response"]) == {result.response}
    rows = list(csv.DictReader(io.StringIO(frame_to_csv(df))))
    ranks = [r["rank"] for r in rows]
    assert "1" in ranks and "" in ranks  # the best span, and one not scored
    assert all(r == "" or r.isdigit() for r in ranks), ranks  # "2", never "2.0"
