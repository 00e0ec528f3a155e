"""``attribot compare``: batches made by ``attribot batch --db`` (tiny model), compared by row id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attribot_core.cli import main
from attribot_core.examples import EXAMPLES

ROWS = [{"id": e.key, "context": e.context, "question": e.question, "response": "It was in 1874.",
         "gold": [e.context.split(". ")[1]]} for e in EXAMPLES]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def db(tiny_model_dir, tmp_path_factory) -> str:
    """Batches ``ref`` (loo, every row), ``hier`` (hierarchical, last row left out), ``other`` (other ids),
    ``clash`` (the first row's id on the second row's context)."""
    folder = tmp_path_factory.mktemp("compare")
    path = str(folder / "runs.sqlite3")
    other = [{**r, "id": f"{r['id']}-other"} for r in ROWS]
    clash = [{**ROWS[1], "id": ROWS[0]["id"]}]
    for name, rows, method in (("ref", ROWS, ["--method", "loo"]),
                               ("hier", ROWS[:-1], ["--method", "hierarchical", "--keep-paragraphs", "1"]),
                               ("other", other, ["--method", "hierarchical"]),
                               ("clash", clash, ["--method", "hierarchical"])):
        source = write_jsonl(folder / f"{name}.jsonl", rows)
        assert main(["batch", source, "--model", str(tiny_model_dir), *method, "--db", path, "--name", name,
                     "--no-progress"]) == 0
    return path


def test_compare_prints_the_table_and_writes_means_with_intervals(db, tmp_path, capsys):
    out = tmp_path / "agreement.json"
    assert main(["compare", "--db", db, "--reference", "ref", "ref", "hier", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("reference: ref") and "hier (hierarchical)" in printed
    assert f"hier: 1 row(s) not compared: {ROWS[-1]['id']} (not in the batch)" in printed
    doc = json.loads(out.read_text())
    assert doc["reference"] == "ref" and doc["resamples"] == 2000 and doc["level"] == 0.95
    same, hier = doc["batches"]
    assert same["n"] == len(ROWS) and hier["n"] == len(ROWS) - 1
    assert same["metrics"]["spearman"] == {"mean": 1.0, "lo": 1.0, "hi": 1.0, "n": len(ROWS)}
    for metric in ("spearman", "pearson", "top1", "top3", "outlier_recall", "gold@1", "gold@3", "forward_passes",
                   "seconds", "speedup"):
        iv = hier["metrics"][metric]
        assert {"mean", "lo", "hi"} <= set(iv), metric
        assert iv["mean"] is None or iv["lo"] <= iv["mean"] <= iv["hi"], metric
    assert hier["not_compared"] == [{"id": ROWS[-1]["id"], "why": "not in the batch"}]
    assert [r["id"] for r in hier["rows"]] == [r["id"] for r in ROWS[:-1]]


def test_the_same_seed_writes_the_same_json(db, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for out in (a, b):
        assert main(["compare", "--db", db, "--reference", "ref", "hier", "--seed", "5", "--json", str(out)]) == 0
    assert json.loads(a.read_text()) == json.loads(b.read_text())


@pytest.mark.parametrize(("argv", "message"), [
    (["--reference", "ref", "nope"], "No batch named 'nope'"),
    (["--reference", "nope", "ref"], "No batch named 'nope'"),
    (["--reference", "ref", "other"], "no finished row in common"),
    (["--reference", "ref", "clash"], f"Row '{ROWS[0]['id']}' has a different context"),
    (["--reference", "ref", "hier", "--resamples", "-3"], "at least 1 resample"),
])
def test_bad_input_is_one_line_and_exit_code_2(db, argv, message, capsys):
    assert main(["compare", "--db", db, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_damaged_database_is_one_line_and_exit_code_2(tmp_path, capsys):
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"this is not a database file, " * 200)
    assert main(["compare", "--db", str(damaged), "--reference", "ref", "hier"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("attribot: error:") and len(err.splitlines()) == 1


def test_rerunning_a_batch_with_measures_added_measures_its_done_rows_as_the_hint_says(tiny_model_dir, tmp_path,
                                                                                        capsys):
    path = str(tmp_path / "runs.sqlite3")
    rows = ROWS[:2]
    source = write_jsonl(tmp_path / "set.jsonl", rows)
    batch = ["batch", source, "--model", str(tiny_model_dir), "--db", path, "--no-progress", "--method", "loo"]
    assert main([*batch, "--name", "measured", "--measures", "topk,lds", "--lds-masks", "4"]) == 0
    assert main([*batch, "--name", "plain"]) == 0
    capsys.readouterr()
    assert main(["compare", "--db", path, "--reference", "measured", "plain"]) == 0
    assert "plain: the faithfulness measures (top-k log-prob drop, LDS) are on 0 of 2" in capsys.readouterr().out
    assert main([*batch, "--name", "plain", "--measures", "topk,lds", "--lds-masks", "4"]) == 0  # the advice
    assert "2 rows measured" in capsys.readouterr().out
    out = tmp_path / "agreement.json"
    assert main(["compare", "--db", path, "--reference", "measured", "plain", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "top-1 log-prob drop (nats)" in printed and "faithfulness measures (top-k" not in printed
    (plain,) = json.loads(out.read_text())["batches"]
    assert (plain["measured_rows"], plain["reference_measured_rows"]) == (2, 2)
    assert plain["measures"]["topk_drop@1"] == plain["reference_measures"]["topk_drop@1"]  # same method, same rows
