"""Faithfulness measures in batches (resumable, masks shared by sibling batches) and ``batch --methods``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attribot_core.cli import main
from attribot_core.examples import EXAMPLES
from attribot_core.faithfulness import row_key
from attribot_core.runs import ModelCache, RunStore
from attribot_core.runs.backends import LocalBackend
from attribot_core.runs.batch import BatchSettings, measure_batch, run_batch, sibling_settings
from attribot_core.runs.inputs import rows_from_records

ROWS = [{"id": e.key, "context": e.context, "question": e.question} for e in EXAMPLES]


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def models(tiny_lm) -> ModelCache:
    return ModelCache(loader=lambda spec: tiny_lm)


@pytest.fixture
def generations(monkeypatch) -> list[str]:
    """The contexts the target generated a response for (every call of generation in a run)."""
    import importlib

    execute = importlib.import_module("attribot_core.runs.execute")  # the module (runs.execute is the function)
    calls: list[str] = []
    real = execute.generate_response

    def counting(lm, context, question, **kw):
        calls.append(context)
        return real(lm, context, question, **kw)

    monkeypatch.setattr(execute, "generate_response", counting)
    return calls


def test_measuring_a_batch_stores_the_measures_and_a_rerun_does_not_recompute(tmp_path, tiny_model_dir, models):
    store = RunStore(tmp_path / "r.db")
    rows = rows_from_records([{**r, "response": "It was in 1874."} for r in ROWS])
    run_batch(store, "b", rows, BatchSettings(str(tiny_model_dir), "loo"), LocalBackend(models))
    first = measure_batch(store, "b", ["topk", "lds"], models=models, masks=4)
    assert (first.measured, first.skipped, first.failed) == (len(ROWS), 0, 0) and first.forward_passes > 0
    stored = {r.row_id: r.result for r in store.list(batch="b")}
    for result in stored.values():
        assert set(result.extra["topk_drop"]) == {"1", "3", "5"} and result.extra["lds_masks"] == 4
        assert result.extra["measures_passes"] > 0
    again = measure_batch(store, "b", ["topk", "lds"], models=models, masks=4)
    assert (again.measured, again.skipped, again.forward_passes) == (0, len(ROWS), 0)
    assert {r.row_id: r.result_json for r in store.list(batch="b")} == {k: v.to_json(None) for k, v in stored.items()}


def test_masked_log_probs_are_kept_in_the_store_by_row_and_mask(tmp_path, tiny_model_dir, tiny_lm, models):
    store = RunStore(tmp_path / "r.db")
    rows = rows_from_records([{**ROWS[0], "response": "It was in 1874."}])
    run_batch(store, "b", rows, BatchSettings(str(tiny_model_dir), "loo"), LocalBackend(models))
    measure_batch(store, "b", ["lds"], models=models, masks=4)
    result = store.list(batch="b")[0].result
    cached = store.get_log_probs(row_key(result, tiny_lm.model_id), ["1" * len(result.sentences)])
    assert cached == {"1" * len(result.sentences): pytest.approx(result.log_prob_full, abs=1e-4)}


def test_sibling_settings_give_each_method_its_own_parameters():
    loo, hier = sibling_settings(["loo", "hierarchical"], {"keep_paragraphs": 1}, model="m")
    assert (loo.method, dict(loo.params), hier.method, dict(hier.params)["keep_paragraphs"]) == \
        ("loo", {}, "hierarchical", 1)
    from attribot_core.api import InputError

    with pytest.raises(InputError, match="keep_paragraphs applies to none"):
        sibling_settings(["loo"], {"keep_paragraphs": 1}, model="m")


def test_methods_make_sibling_batches_with_one_generation_per_row_and_shared_masks(
        tmp_path, tiny_model_dir, generations, capsys):
    db = str(tmp_path / "runs.sqlite3")
    source = write_jsonl(tmp_path / "set.jsonl", ROWS)
    assert main(["batch", source, "--model", str(tiny_model_dir), "--methods", "loo,hierarchical",
                 "--keep-paragraphs", "1", "--max-new-tokens", "6", "--measures", "lds", "--lds-masks", "4",
                 "--db", db, "--name", "set", "--no-progress"]) == 0
    assert sorted(generations) == sorted(r["context"] for r in ROWS)  # one generation per row, not per method
    store = RunStore(db)
    assert {b["name"] for b in store.batches()} == {"set-loo", "set-hierarchical"}
    loo = {r.row_id: r.result for r in store.list(batch="set-loo")}
    hier = {r.row_id: r.result for r in store.list(batch="set-hierarchical")}
    first = ROWS[0]["id"]
    assert hier[first].settings["keep_paragraphs"] == 1 and loo[first].method == "loo"
    for rid in loo:
        assert hier[rid].response == loo[rid].response  # the same generated response, token ids and all
        assert loo[rid].extra["measures_passes"] > 0 and hier[rid].extra["measures_passes"] == 0  # masks cached
    assert "compare them: attribot compare" in capsys.readouterr().err
    # a rerun generates nothing and measures nothing again
    assert main(["batch", source, "--model", str(tiny_model_dir), "--methods", "loo,hierarchical",
                 "--keep-paragraphs", "1", "--max-new-tokens", "6", "--measures", "lds", "--lds-masks", "4",
                 "--db", db, "--name", "set", "--no-progress"]) == 0
    assert len(generations) == len(ROWS)
    assert f"0 rows measured (0 forward passes), {len(ROWS)} already measured" in capsys.readouterr().out


def test_compare_shows_the_measures_when_both_sides_carry_them(tmp_path, tiny_model_dir, capsys):
    db = str(tmp_path / "runs.sqlite3")
    rows = [{**r, "response": "It was in 1874."} for r in ROWS]
    source = write_jsonl(tmp_path / "set.jsonl", rows)
    common = ["--model", str(tiny_model_dir), "--db", db, "--no-progress"]
    assert main(["batch", source, *common, "--methods", "loo,tree", "--name", "m", "--measures", "topk,lds",
                 "--lds-masks", "4"]) == 0
    assert main(["batch", source, *common, "--method", "hierarchical", "--name", "plain"]) == 0
    capsys.readouterr()
    out = tmp_path / "agreement.json"
    assert main(["compare", "--db", db, "--reference", "m-loo", "m-tree", "plain", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for label in ("top-1 log-prob drop (nats)", "top-3 log-prob drop (nats)", "top-5 log-prob drop (nats)", "LDS",
                  "the reference's, same rows"):
        assert label in printed, label
    tree, plain = json.loads(out.read_text())["batches"]
    assert set(tree["measures"]) == {"topk_drop@1", "topk_drop@3", "topk_drop@5", "lds"}
    for key, iv in tree["measures"].items():
        assert iv["n"] == len(ROWS) and iv["lo"] <= iv["mean"] <= iv["hi"], key
    assert tree["reference_measures"]["lds"]["n"] == len(ROWS)
    assert plain["measures"] == {} and plain["reference_measures"] == {}  # measured on one side only
    # the reference against itself: its top-k drops are its own
    assert main(["compare", "--db", db, "--reference", "m-loo", "m-loo", "--json", str(out)]) == 0
    same = json.loads(out.read_text())["batches"][0]
    assert same["measures"]["topk_drop@1"] == same["reference_measures"]["topk_drop@1"]


@pytest.mark.parametrize("argv, message", [
    (["--methods", "loo,tree", "--method", "hierarchical"], "not both"),
    (["--methods", "loo", "--keep-paragraphs", "1"], "keep_paragraphs applies to none"),
    (["--methods", "loo,nope"], "nope"),
    (["--measures", "topk,speed"], "Unknown measure speed"),
    (["--measures", "lds", "--lds-masks", "1"], "--lds-masks must be at least 2"),
])
def test_bad_batch_options_are_one_line_and_exit_2(tmp_path, tiny_model_dir, capsys, argv, message):
    source = write_jsonl(tmp_path / "set.jsonl", ROWS)
    assert main(["batch", source, "--model", str(tiny_model_dir), "--db", str(tmp_path / "r.db"), "--no-progress",
                 *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_run_database_of_schema_1_gains_the_cache_table_when_opened(tmp_path):
    import sqlite3

    from attribot_core.runs.store import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    MIGRATIONS[0](db)  # the tables of schema 1, as the previous version wrote them
    db.execute(f"PRAGMA application_id={APPLICATION_ID}")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = RunStore(path)
    assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    store.put_log_probs("row", {"101": -1.5})
    assert store.get_log_probs("row", ["101", "111"]) == {"101": -1.5}


def test_a_damaged_row_is_named_and_the_other_rows_are_measured(tmp_path, tiny_model_dir, models):
    import sqlite3

    store = RunStore(tmp_path / "r.db")
    rows = rows_from_records([{**r, "response": "It was in 1874."} for r in ROWS])
    run_batch(store, "b", rows, BatchSettings(str(tiny_model_dir), "loo"), LocalBackend(models))
    db = sqlite3.connect(tmp_path / "r.db")
    db.execute("UPDATE runs SET result = '{not json' WHERE row_id = ?", (ROWS[0]["id"],))
    db.commit()
    db.close()
    summary = measure_batch(store, "b", ["topk"], models=models)
    assert (summary.measured, summary.failed) == (len(ROWS) - 1, 1)
    assert summary.messages[0].startswith(f"Row {ROWS[0]['id']}: not measured")
