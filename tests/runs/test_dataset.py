"""The Dataset page's per-row figures: pure functions of a result and the row's gold evidence."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fakes import fake_passage_result, fake_result

from attribot_core.runs import RunRequest, RunStore
from attribot_core.runs.dataset import row_metrics, source_columns, top_position, top_share, top_source
from attribot_core.segment import as_passages

CONTEXT = ("The tower is old.  It was\nbuilt in 1874 by Renn. Renn lived nearby.\n\n"
           "The lamp burned paraffin. Today it is automatic.")


PASSAGES = [{"id": "doc-7", "title": "Weather log", "text": "Rain fell all week. The river rose."},
            {"id": "doc-9", "title": "Harbour board minutes", "text": "The board voted to dredge the harbour."}]


def with_scores(result, scores):
    return replace(result, sentences=tuple(replace(s, score=v) for s, v in zip(result.sentences, scores, strict=True)))


@pytest.fixture
def result():
    return with_scores(fake_result(CONTEXT, "When was it built?"), [0.5, 3.0, 1.0, -2.0, None])


def test_the_top_sentence_and_its_share_of_the_positive_mass(result):
    m = row_metrics(result)
    assert m["top_sentence"].startswith("It was") and m["top_score"] == 3.0
    assert m["max_abs_score"] == 3.0 and m["log_prob_full"] == -3.0
    assert top_share(result) == pytest.approx(3.0 / (0.5 + 3.0 + 1.0))
    assert m["gold_hit"] is None  # no gold labels: unknown, not False


def test_position_is_the_top_sentences_place_from_first_0_to_last_1(result):
    assert top_position(result) == pytest.approx(1 / 4)
    assert top_position(with_scores(result, [9.0, 0, 0, 0, 0])) == 0.0
    assert top_position(with_scores(result, [0, 0, 0, 0, 9.0])) == 1.0


def test_no_positive_score_means_no_share_and_no_scores_mean_no_top():
    r = fake_result(CONTEXT, "q")
    assert top_share(with_scores(r, [-1.0, -2.0, -0.5, -3.0, -1.0])) is None
    empty = with_scores(r, [None] * 5)
    assert row_metrics(empty)["top_sentence"] is None and top_position(empty) is None
    assert row_metrics(None)["top_score"] is None


def test_the_top_sentence_is_a_gold_hit_by_the_one_gold_rule(result):
    assert row_metrics(result, ["It was built in 1874"])["gold_hit"] is True
    assert row_metrics(result, ["Today it is automatic."])["gold_hit"] is False


def test_a_truncated_response_is_reported(result):
    assert row_metrics(result.with_extra(response_complete=False))["response_complete"] is False
    assert row_metrics(result.with_extra(response_complete=True))["response_complete"] is True
    assert row_metrics(result)["response_complete"] is None  # unknown (e.g. a result from an old file)


def test_batch_keys_tell_each_rows_status_request_and_run(tmp_path):
    store = RunStore(tmp_path / "r.db")
    req = RunRequest(CONTEXT, "q", "tiny")
    a = store.create(req, batch="b", row_id="1")
    b = store.create(req.but(question="q2"), batch="b", row_id="2")
    store.finish(a.id, fake_result(CONTEXT, "q"))
    store.create(req, batch="other", row_id="1")
    assert store.batch_keys("b") == {"1": ("done", req.key, a.id), "2": ("queued", req.but(question="q2").key, b.id)}


def test_the_top_source_is_the_passage_of_the_top_sentence_named_as_every_view_names_it():
    result = fake_passage_result(PASSAGES, "What did the board do?", [0.1, 0.2, 2.5])
    assert top_source(result) == "source 2 · Harbour board minutes" == result.source_label(1)
    assert top_source(with_scores(result, [3.0, 0.2, 2.5])) == "source 1 · Weather log"
    assert top_source(with_scores(result, [None, None, None])) is None  # nothing scored: no top, no source


def test_a_passage_row_names_its_passages_and_a_plain_string_row_gets_no_source_columns(result):
    passages = fake_passage_result(PASSAGES, "q", [0.1, 0.2, 2.5])
    columns = source_columns(passages.passages, passages)
    assert columns["top_source"] == "source 2 · Harbour board minutes"
    assert columns["passages"] == PASSAGES
    assert source_columns(as_passages(PASSAGES), None) == {"top_source": None, "passages": columns["passages"]}
    assert source_columns((), result) == {} and top_source(result) is None
