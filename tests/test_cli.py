"""The ``attribot`` command end to end: real model loading, real scoring, documented JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    with pytest.raises(SystemExit, match="cannot read"):
        main(["attribute", "--context", "/no/file.txt", "--question", "q"])


def test_models_lists_presets_and_how_to_install():
    proc = subprocess.run([sys.executable, "-m", "attribot_core", "models"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "smollm2-135m" in proc.stdout and "qwen2.5-coder-1.5b" in proc.stdout


@pytest.mark.slow
def test_console_script_generates_and_attributes_on_the_default_model(context_file, tmp_path):
    out = tmp_path / "r.json"
    attribot = Path(sys.executable).with_name("attribot")  # the console script installed beside this python
    proc = subprocess.run([str(attribot), "attribute", "--context", str(context_file), "--question",
                           "Who did Ada work with?", "--max-new-tokens", "20", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(out.read_text())
    assert d["model"] == "smollm2-135m" and d["response"]
    assert len(d["sentences"]) == 9 and all(s["score"] is not None for s in d["sentences"])
