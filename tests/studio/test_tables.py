"""The Dataset and History tables' rules, without a browser: filters, sort order, selection by run id."""

from __future__ import annotations

import datetime as dt

from studio import tables
from studio.tables import day_bounds, ids_at, neighbour, positions_of, shown_dataset_rows, sort_rows

ROWS = [
    {"status": "done", "question": "Who built it?", "response": "Tobias.", "top_sentence": "Tobias Renn built it.",
     "max_abs_score": 2.0, "gold_hit": True, "response_complete": True},
    {"status": "failed", "question": "Why?", "response": None, "top_sentence": None, "max_abs_score": None,
     "gold_hit": None, "response_complete": None},
    {"status": "done", "question": "When was it lit?", "response": "In 1874.", "top_sentence": "It was lit in 1874.",
     "max_abs_score": 5.0, "gold_hit": False, "response_complete": False},
    {"status": "done", "question": "Where?", "response": "On the cape.", "top_sentence": "The cape.",
     "max_abs_score": 2.0, "gold_hit": True, "response_complete": True},
]


def test_input_order_keeps_every_row():
    assert shown_dataset_rows(ROWS) == [0, 1, 2, 3]


def test_sorting_puts_rows_without_a_value_last_in_either_direction_and_is_stable():
    assert sort_rows(ROWS, range(4), "max |score|", descending=True) == [2, 0, 3, 1]
    assert sort_rows(ROWS, range(4), "max |score|", descending=False) == [0, 3, 2, 1]


def test_search_looks_in_question_response_and_top_sentence_case_insensitively():
    assert shown_dataset_rows(ROWS, text="TOBIAS") == [0]
    assert shown_dataset_rows(ROWS, text=" 1874 ") == [2]
    assert shown_dataset_rows(ROWS, text="cape") == [3]


def test_search_finds_a_passage_row_by_its_top_source_title():
    rows = [*ROWS, {"status": "done", "question": "What did the board do?", "response": "Dredged.",
                    "top_sentence": "It voted to dredge.", "top_source": "source 2 · Harbour board minutes"}]
    assert shown_dataset_rows(rows, text="harbour BOARD") == [4]
    assert shown_dataset_rows(rows, text="source 2") == [4]


def test_a_rows_passages_are_listed_by_id_and_title_or_id_alone():
    passages = [{"id": "doc-7", "title": "Harbour board minutes", "text": "x"}, {"id": "2", "title": "", "text": "y"}]
    assert tables.passage_names(passages) == ["doc-7 · Harbour board minutes", "2"]
    assert tables.passage_names(None) == []  # a plain-string row


def test_status_gold_and_truncated_filters():
    assert shown_dataset_rows(ROWS, statuses=["failed"]) == [1]
    assert shown_dataset_rows(ROWS, gold="top sentence is gold") == [0, 3]
    assert shown_dataset_rows(ROWS, gold="top sentence is not gold") == [2]  # no verdict: not "not gold"
    assert shown_dataset_rows(ROWS, truncated_only=True) == [2]


def test_filters_and_sort_combine():
    assert shown_dataset_rows(ROWS, sort_by="max |score|", descending=False, statuses=["done"]) == [0, 3, 2]


def test_a_selection_by_id_follows_its_run_when_rows_move():
    before = ["c", "b", "a"]
    chosen = ids_at(before, [1])
    assert chosen == ["b"]
    after_a_new_run = ["d", "c", "b", "a"]
    assert positions_of(after_a_new_run, chosen) == [2]
    after_deleting_it = ["d", "c", "a"]
    assert positions_of(after_deleting_it, chosen) == []  # gone: nothing selected, not its neighbour
    assert ids_at(after_deleting_it, [5]) == []


def test_neighbour_in_the_shown_order():
    order = ["x", "y", "z"]
    assert neighbour(order, "y", 1) == "z" and neighbour(order, "y", -1) == "x"
    assert neighbour(order, "z", 1) is None and neighbour(order, "q", 1) is None


def test_day_bounds_include_the_whole_last_day():
    start, end = day_bounds(dt.date(2025, 3, 1), dt.date(2025, 3, 1))
    assert end - start == 24 * 3600
    assert day_bounds(None, None) == (None, None)


def test_demo_runs_of_learn_and_compare_are_left_out_unless_included():
    from types import SimpleNamespace

    runs = [SimpleNamespace(source=s) for s in ("app", "learn", "cli", "compare", "batch")]
    assert [r.source for r in tables.user_runs(runs)] == ["app", "cli", "batch"]
    assert tables.user_runs(runs, include_demos=True) == runs
