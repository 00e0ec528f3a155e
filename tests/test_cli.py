"""The ``attribot`` command end to end: real model loading, real scoring, documented JSON."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from attribot_core import DEFAULT_MODEL
from attribot_core.cli import main
from tests.conftest import CONTEXT


@pytest.fixture
def context_file(tmp_path):
    path = tmp_path / "context.txt"
    path.write_text(CONTEXT, encoding="utf-8")
    return path


def test_attribute_writes_json_of_the_documented_schema(tiny_model_dir, context_file, tmp_path, capsys):
    out, csv = tmp_path / "r.json", tmp_path / "r.csv"
    code = main(["attribute", "--context", str(context_file), "--question", "Who?", "--model", str(tiny_model_dir),
                 "--response", "Babbage.", "--method", "hierarchical", "--keep-paragraphs", "1",
                 "--json", str(out), "--csv", str(csv)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "rank" in printed and "not scored" in printed
    d = json.loads(out.read_text())
    assert d["method"] == "hierarchical" and d["model"] == str(tiny_model_dir)
    assert d["response"] == "Babbage." and isinstance(d["log_prob_full"], float)
    assert isinstance(d["forward_passes"][str(tiny_model_dir)], int) and d["timings"]["total_s"] > 0
    for p in d["paragraphs"]:
        assert {"index", "start", "end", "text", "score"} <= p.keys()
    for s in d["sentences"]:
        assert {"index", "start", "end", "text", "score", "paragraph", "scored_by"} <= s.keys()
    assert csv.read_text().startswith("index,start,end,text,score")


def test_stdin_context_and_response_span(tiny_model_dir, tmp_path, monkeypatch, capsys):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("One fact. Another fact.\n\nA third."))
    out = tmp_path / "r.json"
    assert main(["attribute", "--context", "-", "--question", "q", "--model", str(tiny_model_dir),
                 "--response", "Babbage did.", "--response-span", "0:7", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["response_span"] == [0, 7]


def test_bad_input_is_a_message_and_exit_code_2(tiny_model_dir, context_file, capsys):
    assert main(["attribute", "--context", str(context_file), "--question", "q", "--model", "/nope/model"]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="does not apply"):
        main(["attribute", "--context", str(context_file), "--question", "q", "--keep-sentences", "3"])
    assert main(["attribute", "--context", "/no/file.txt", "--question", "q"]) == 2
    assert "cannot read /no/file.txt" in capsys.readouterr().err


def test_models_lists_presets_and_how_to_install():
    proc = subprocess.run([sys.executable, "-m", "attribot_core", "models"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "smollm2-135m" in proc.stdout and "qwen2.5-coder-1.5b" in proc.stdout
    assert f"* {DEFAULT_MODEL} " in proc.stdout  # the default is marked


@pytest.mark.slow
def test_models_prepare_makes_a_preset_ready_to_load(tmp_path, monkeypatch):
    from attribot_core.models import needs_preparing

    monkeypatch.setenv("ATTRIBOT_CACHE", str(tmp_path))  # a machine where nothing was prepared yet
    assert needs_preparing("smollm2-135m")
    proc = subprocess.run([sys.executable, "-m", "attribot_core", "models", "--prepare", "smollm2-135m"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"smollm2-135m: ready in \d+ s", proc.stdout.strip())
    assert not needs_preparing("smollm2-135m")


@pytest.mark.slow
def test_console_script_generates_and_attributes_on_the_default_model(context_file, tmp_path):
    out = tmp_path / "r.json"
    attribot = Path(sys.executable).with_name("attribot")  # the console script installed beside this python
    proc = subprocess.run([str(attribot), "attribute", "--context", str(context_file), "--question",
                           "Who did Ada work with?", "--max-new-tokens", "20", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(out.read_text())
    assert d["model"] == DEFAULT_MODEL and d["response"]
    assert len(d["sentences"]) == 9 and all(s["score"] is not None for s in d["sentences"])


@pytest.mark.parametrize(("args", "message"), [
    (["--question", ""], "The question is empty"),
    (["--question", "q", "--method", "hierarchical", "--keep-paragraphs", "0"], "keep_paragraphs must be"),
    (["--question", "q", "--method", "hierarchical", "--keep-paragraphs", "-1"], "keep_paragraphs must be"),
    (["--question", "q", "--method", "proxy"], "needs a proxy model"),
    (["--question", "q", "--method", "surrogate", "--keep-prob", "1.5"],
     "Method 'surrogate': keep_prob must be a probability above 0 and at most 1 (got 1.5)."),
    (["--question", "q", "--method", "pruning", "--proxy-model", "x", "--keep-sentences", "0"],
     "keep_sentences must be a whole number ≥ 1 (got 0)."),
])
def test_bad_input_exits_2_with_one_line_before_loading_a_model(context_file, args, message, capsys):
    assert main(["attribute", "--context", str(context_file), "--model", "/no/such/model", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Loading" not in err  # refused before any model load
    assert len(err.strip().splitlines()) == 1


def test_an_empty_context_file_is_refused_before_loading(tmp_path, capsys):
    empty = tmp_path / "zw.txt"
    empty.write_text("\u200b\n\n\u200b", encoding="utf-8")
    assert main(["attribute", "--context", str(empty), "--question", "q"]) == 2
    err = capsys.readouterr().err
    assert "The context is empty" in err and "Loading" not in err


def test_show_prints_a_saved_result_and_refuses_a_damaged_one(tiny_model_dir, context_file, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["attribute", "--context", str(context_file), "--question", "Who?", "--model", str(tiny_model_dir),
                 "--response", "Babbage.", "--json", str(out)]) == 0
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    assert "rank" in capsys.readouterr().out
    d = json.loads(out.read_text())
    d["sentences"][1]["score"] = "abc"
    out.write_text(json.dumps(d))
    assert main(["show", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'sentences[1].score' must be a finite number or null" in err and len(err.strip().splitlines()) == 1


def test_a_response_cut_off_at_max_new_tokens_is_flagged(tiny_model_dir, context_file, capsys):
    assert main(["attribute", "--context", str(context_file), "--question", "Who?", "--model", str(tiny_model_dir),
                 "--max-new-tokens", "2"]) == 0
    out = capsys.readouterr().out
    assert "warning: The response was cut off at the limit of new tokens" in out


# -- saved results: every bad file is one line and exit 2 ---------------------------------------------
@pytest.fixture
def saved(tiny_model_dir, context_file, tmp_path, capsys) -> Path:
    out = tmp_path / "r.json"
    assert main(["attribute", "--context", str(context_file), "--question", "Who?", "--model", str(tiny_model_dir),
                 "--response", "Babbage did.", "--json", str(out)]) == 0
    capsys.readouterr()
    return out


def _without(key):
    def change(path: Path) -> None:
        d = json.loads(path.read_text())
        del d[key]
        path.write_text(json.dumps(d))
    return change


BAD_FILES = {
    "truncated": (lambda p: p.write_text(p.read_text()[:200]), "not valid JSON"),
    "non-utf8": (lambda p: p.write_bytes(b"\xff\xfe" + p.read_bytes()), "not UTF-8"),
    "missing": (lambda p: p.unlink(), "No such file"),
    "a-folder": (lambda p: (p.unlink(), p.mkdir()), "cannot read"),
    **{f"no-{k}": (_without(k), f"missing '{k}'")
       for k in ("question", "settings", "log_prob_full", "forward_passes", "timings")},
}


@pytest.mark.parametrize("command", ["show", "span"])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_show_and_span_refuse_a_bad_result_file_with_one_line_and_exit_2(saved, capsys, command, case):
    damage, message = BAD_FILES[case]
    damage(saved)
    argv = ["show", str(saved)] if command == "show" else ["span", str(saved), "0", "3"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_span_ranks_a_part_of_a_saved_result(saved, capsys):
    assert main(["span", str(saved), "0", "7"]) == 0
    assert "rank" in capsys.readouterr().out


def test_csv_files_of_attribute_are_neutralised(tiny_model_dir, tmp_path, capsys):
    ctx = tmp_path / "ctx.txt"
    ctx.write_text('=HYPERLINK("http://198.51.100.7/","c") is a sentence. Another one follows here.\n\nA third.')
    table, tokens = tmp_path / "s.csv", tmp_path / "t.csv"
    assert main(["attribute", "--context", str(ctx), "--question", "q", "--model", str(tiny_model_dir),
                 "--response", "=1+2", "--csv", str(table), "--per-token", str(tokens)]) == 0
    import csv

    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert rows[0]["text"].startswith("'=HYPERLINK(") and float(rows[0]["score"]) == float(rows[0]["score"])
    texts = [r["text"] for r in csv.DictReader(tokens.open(encoding="utf-8"))]
    assert any(t.startswith("'=") for t in texts) and not any(t.startswith(("=", "+", "-", "@")) for t in texts)


# -- run databases that are not ours: refused before anything in them changes -------------------------
def _foreign(path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE runs (id TEXT, km REAL); INSERT INTO runs VALUES ('mon', 5.2);")
    db.close()


@pytest.mark.parametrize("command", ["attribute", "batch", "export"])
def test_a_foreign_database_is_refused_by_every_command_and_left_unchanged(context_file, tmp_path, capsys, command):
    db = tmp_path / "other.sqlite3"
    _foreign(db)
    before = db.read_bytes()
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"context": CONTEXT, "question": "q", "id": "1"}) + "\n")
    argv = {"attribute": ["attribute", "--context", str(context_file), "--question", "q", "--model", "/no/model"],
            "batch": ["batch", str(rows), "--model", "/no/model", "--no-progress"],
            "export": ["export", "--name", "rows"]}[command]
    assert main([*argv, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "not an AttriBoT Studio run database" in err and "Loading" not in err
    assert len(err.strip().splitlines()) == 1
    assert db.read_bytes() == before


def test_every_parameter_of_every_method_is_a_flag(tiny_model_dir, context_file, tmp_path):
    out = tmp_path / "r.json"
    assert main(["attribute", "--context", str(context_file), "--question", "Who?", "--model", str(tiny_model_dir),
                 "--response", "Babbage.", "--method", "surrogate", "--n-ablations", "4", "--seed", "3",
                 "--keep-prob", "0.75", "--alpha", "0.02", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["settings"] == {"n_ablations": 4, "seed": 3, "keep_prob": 0.75, "alpha": 0.02}
    assert main(["attribute", "--context", str(context_file), "--question", "Who?", "--model", str(tiny_model_dir),
                 "--response", "Babbage.", "--no-paragraphs", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["settings"] == {"paragraphs": False} and all(p["score"] is None for p in d["paragraphs"])


def test_the_plan_is_said_before_the_first_pass_and_tree_suggested_for_many_paragraphs(tiny_model_dir, tmp_path,
                                                                                        capsys):
    many = tmp_path / "many.txt"
    many.write_text("\n\n".join(f"Fact {i}. Yes." for i in range(40)), encoding="utf-8")
    assert main(["attribute", "--context", str(many), "--question", "Who?", "--model", str(tiny_model_dir),
                 "--response", "Babbage.", "--method", "hierarchical", "--keep-paragraphs", "1"]) == 0
    err = capsys.readouterr().err.splitlines()
    plan = next(i for i, line in enumerate(err) if line.startswith("Plan: about "))
    first_pass = next(i for i, line in enumerate(err) if "forward passes  (" in line)  # the progress line
    assert plan < first_pass
    assert "forward passes (hierarchical over 40 paragraphs, 80 sentences); estimated time about" in err[plan]
    assert "(an estimate from the model size" in err[plan]
    assert "With 40 paragraphs, consider method tree" in err[plan]


def test_a_document_longer_than_the_window_is_one_line_naming_both_numbers(tiny_model_dir, tmp_path, capsys,
                                                                           monkeypatch):
    from attribot_core.scoring import LocalScorer

    monkeypatch.setattr(LocalScorer, "_forward", lambda *a, **k: pytest.fail("a forward pass ran"))
    long_file = tmp_path / "long.txt"
    long_file.write_text("The engine was built. " * 600, encoding="utf-8")
    for response in (["--response", "Yes."], []):
        assert main(["attribute", "--context", str(long_file), "--question", "Was it built?",
                     "--model", str(tiny_model_dir), *response]) == 2
        err = capsys.readouterr().err
        line = next(x for x in err.splitlines() if x.startswith("attribot: error:"))
        assert "1024-token window" in line and re.search(r"takes (\d{4,}) tokens", line), err
        assert "Traceback" not in err
