"""Batch inputs: every format gives the same rows; a bad row fails alone; a bad file is one clear refusal."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from attribot_core.api import InputError
from attribot_core.examples import EXAMPLES
from attribot_core.runs.inputs import content_id, input_columns, read_rows, rows_from_records


def records() -> list[dict]:
    """The built-in examples with a fixed response and one gold sentence each."""
    return [{"id": e.key, "context": e.context, "question": e.question, "response": "It was in 1874.",
             "gold": [e.context.split(". ")[1]]} for e in EXAMPLES]


def write_jsonl(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def test_jsonl_json_csv_and_parquet_inputs_give_the_same_rows(tmp_path):
    import pandas as pd

    recs = records()
    recs[1].pop("id")
    recs[2]["gold"] = None
    write_jsonl(tmp_path / "in.jsonl", recs)
    (tmp_path / "in.json").write_text(json.dumps(recs, indent=2), encoding="utf-8")
    df = pd.DataFrame(recs)
    df.assign(gold=[json.dumps(g) if g else "" for g in df["gold"]]).to_csv(tmp_path / "in.csv", index=False)
    df.to_parquet(tmp_path / "in.parquet")
    rows = read_rows(tmp_path / "in.jsonl")
    assert [r.row_id for r in rows] == [recs[0]["id"], content_id(recs[1]["context"], recs[1]["question"],
                                                                   recs[1]["response"]), recs[2]["id"]]
    assert rows[0].gold == tuple(recs[0]["gold"]) and rows[2].gold is None and not any(r.error for r in rows)
    for other in ("in.json", "in.csv", "in.parquet"):
        assert read_rows(tmp_path / other) == rows, other
    for name in ("in.parquet", "in.json", "in.jsonl"):  # the format is sniffed when there is no file name
        assert read_rows(io.BytesIO((tmp_path / name).read_bytes())) == rows, name


def test_a_json_file_written_as_jsonl_is_still_read_line_by_line(tmp_path):
    write_jsonl(tmp_path / "rows.json", records())
    assert read_rows(tmp_path / "rows.json") == read_rows(write_jsonl(tmp_path / "rows.jsonl", records()))


def test_a_json_array_item_that_is_not_an_object_fails_that_row_only(tmp_path):
    (tmp_path / "rows.json").write_text(json.dumps([records()[0], [1, 2], "text"]), encoding="utf-8")
    rows = read_rows(tmp_path / "rows.json")
    assert rows[0].error is None
    assert [r.error for r in rows[1:]] == ["Item 2 of the array is not a JSON object.",
                                           "Item 3 of the array is not a JSON object."]


@pytest.mark.parametrize(("content", "message"), [
    (json.dumps(records()[0]), "holds one JSON object, not rows"),
    ("42", "holds a single JSON value, not rows"),
    ('[{"context": "A. B.", "question": "q"},', "is not valid JSON"),
], ids=["object", "number", "truncated"])
def test_a_json_file_that_is_not_an_array_of_rows_is_one_clear_refusal(tmp_path, content, message):
    (tmp_path / "rows.json").write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        read_rows(tmp_path / "rows.json")


def test_unreadable_rows_are_kept_as_bad_rows_and_missing_columns_are_one_clear_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "A. B.", "question": "q"}\n{oops\n[1, 2]\n{"context": "A. B."}\n'
                   '{"context": "A. B.", "question": "q", "gold": 3}\n', encoding="utf-8")
    rows = read_rows(bad)
    assert [r.error is None for r in rows] == [True, False, False, False, False]
    assert "not valid JSON" in rows[1].error and "not a JSON object" in rows[2].error
    assert "no 'question'" in rows[3].error and "list of evidence strings" in rows[4].error
    (tmp_path / "cols.csv").write_text("text,query\na,b\n", encoding="utf-8")
    with pytest.raises(InputError, match="no 'context' and no 'question' column"):
        read_rows(tmp_path / "cols.csv")
    with pytest.raises(InputError, match="Cannot read"):
        read_rows(tmp_path / "missing.jsonl")


def test_a_line_that_is_not_utf8_fails_that_row_and_the_good_rows_are_kept(tmp_path):
    good = [json.dumps(r).encode() for r in records()]
    latin1 = json.dumps({"id": "café", "context": "A. B.", "question": "q"}, ensure_ascii=False).encode("latin-1")
    (tmp_path / "rows.jsonl").write_bytes(b"\n".join([good[0], latin1, *good[1:]]) + b"\n")
    rows = read_rows(tmp_path / "rows.jsonl")
    assert [r.row_id for r in rows if r.error is None] == [r["id"] for r in records()]
    assert rows[1].error == "Line 2 is not UTF-8 text."


def test_a_csv_row_that_is_not_utf8_fails_that_row_and_the_good_rows_are_kept(tmp_path):
    lines = ["id,context,question", "a,First fact. Second fact.,Which?", "b,Caf\xe9 fact. Another.,Which?",
             "c,Third fact. Fourth fact.,Which?"]
    (tmp_path / "rows.csv").write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    rows = read_rows(tmp_path / "rows.csv")
    assert [(r.row_id, r.error) for r in rows] == [("a", None), ("b", "Row 2: 'context' is not UTF-8 text."),
                                                   ("c", None)]
    assert rows[0].context == "First fact. Second fact."


def test_a_file_with_no_utf8_text_at_all_is_refused_whole(tmp_path):
    (tmp_path / "image.jsonl").write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(InputError, match="is not UTF-8 text"):
        read_rows(tmp_path / "image.jsonl")
    (tmp_path / "utf16.csv").write_text("context,question\nA. B.,q\n", encoding="utf-16")
    with pytest.raises(InputError, match="is not UTF-8 text"):
        read_rows(tmp_path / "utf16.csv")


@pytest.mark.parametrize(("field", "value", "kind"), [
    ("context", 123, "int"), ("context", ["A.", "B."], "list"), ("question", 4.5, "float"),
    ("question", {"q": 1}, "dict"), ("response", 7, "int"),
])
def test_a_context_question_or_response_that_is_not_text_fails_that_row_not_stringified(field, value, kind):
    ok = {"id": "ok", "context": "A fact. Another fact.", "question": "Which?"}
    rows = rows_from_records([ok, {**ok, "id": "bad", field: value}])
    assert rows[0].error is None
    assert rows[1].error == f"Row 2: '{field}' is not text (got {kind})."
    assert str(value) not in (rows[1].context, rows[1].question, rows[1].response)


def test_a_numeric_parquet_column_fails_its_rows_and_a_numeric_id_names_the_row(tmp_path):
    import pandas as pd

    pd.DataFrame({"id": [1, 2], "context": [10, 20], "question": ["q", "q"]}).to_parquet(tmp_path / "n.parquet")
    rows = read_rows(tmp_path / "n.parquet")
    assert [r.row_id for r in rows] == ["1", "2"]
    assert all(r.error == f"Row {i}: 'context' is not text (got int)." for i, r in enumerate(rows, 1))


def test_empty_cells_are_empty_text_not_errors():
    (row,) = rows_from_records([{"context": "A. B.", "question": "q", "response": float("nan"), "gold": None}])
    assert row.error is None and row.response == "" and row.gold is None


def test_an_input_with_no_rows_is_refused(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="has no rows"):
        read_rows(tmp_path / "empty.jsonl")
    (tmp_path / "empty.json").write_text("[]", encoding="utf-8")
    with pytest.raises(InputError, match="has no rows"):
        read_rows(tmp_path / "empty.json")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_columns_named_otherwise_are_read_through_a_mapping(tmp_path, fmt):
    import pandas as pd

    renamed = [{"qid": r["id"], "passage": r["context"], "query": r["question"], "question": "not this one"}
               for r in records()]
    path = tmp_path / f"renamed.{fmt}"
    frame = pd.DataFrame(renamed)
    {"jsonl": lambda: write_jsonl(path, renamed), "csv": lambda: frame.to_csv(path, index=False),
     "parquet": lambda: frame.to_parquet(path)}[fmt]()
    assert input_columns(path) == ["qid", "passage", "query", "question"]
    with pytest.raises(InputError, match="no 'context' column") if fmt != "jsonl" else contextlib.nullcontext():
        read_rows(path)
    rows = read_rows(path, columns={"context": "passage", "question": "query", "id": "qid"})
    expected = [(r["id"], r["context"], r["question"]) for r in records()]
    assert [(r.row_id, r.context, r.question) for r in rows] == expected  # the mapped column wins over 'question'
    assert all(r.error is None for r in rows)
