"""``attribot attribute --per-token`` and ``attribot span``: per-token CSV, and a part of a saved result."""

import csv
import json

import pytest

from attribot_core import AttributionResult, segment
from attribot_core.cli import main
from tests.conftest import CONTEXT

RESPONSE = "Charles Babbage worked with her."


@pytest.fixture
def saved(tiny_model_dir, tmp_path):
    ctx = tmp_path / "context.txt"
    ctx.write_text(CONTEXT, encoding="utf-8")
    out, per_token = tmp_path / "r.json", tmp_path / "tokens.csv"
    assert main(["attribute", "--context", str(ctx), "--question", "Who?", "--model", str(tiny_model_dir),
                 "--response", RESPONSE, "--json", str(out), "--per-token", str(per_token)]) == 0
    return out, per_token


def test_per_token_csv_has_a_row_per_token_and_a_column_per_sentence(saved):
    out, per_token = saved
    result = AttributionResult.from_json(out.read_text())
    rows = list(csv.DictReader(per_token.open()))
    n_sentences = len(segment(CONTEXT).sentences)
    assert list(rows[0])[:5] == ["token", "text", "start", "end", "model"]
    assert [c for c in rows[0] if c.startswith("sentence_")] == [f"sentence_{i}" for i in range(n_sentences)]
    assert "".join(r["text"] for r in rows[:-1]) == RESPONSE and rows[-1]["text"] == "<|im_end|>"
    for r in rows[:-1]:
        assert RESPONSE[int(r["start"]) : int(r["end"])] == r["text"]
    for s in result.sentences:  # the columns sum to the sentence scores
        assert sum(float(r[f"sentence_{s.index}"]) for r in rows) == pytest.approx(s.score, abs=1e-4)


def test_span_prints_the_ranked_table_for_that_part_from_the_saved_result(saved, tmp_path, capsys):
    out, _ = saved
    capsys.readouterr()
    part_json = tmp_path / "part.json"
    assert main(["span", str(out), "0", "7", "--json", str(part_json)]) == 0
    printed = capsys.readouterr().out
    assert "'Charles'" in printed and "no forward pass" in printed and "rank" in printed
    expected = AttributionResult.from_json(out.read_text()).for_response_span(0, 7)
    top = expected.top_k(1)[0]
    assert f"{top.score:>9.4f}" in printed
    assert AttributionResult.from_json(part_json.read_text()).scores() == expected.scores()


def test_span_of_a_bad_range_or_a_v1_file_is_a_message_and_exit_code_2(saved, tmp_path, capsys):
    out, _ = saved
    assert main(["span", str(out), "5", "999"]) == 2
    assert "not inside the response" in capsys.readouterr().err
    d = json.loads(out.read_text())
    d.pop("per_token")
    d["schema_version"] = 1
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps(d))
    assert main(["span", str(v1), "0", "7"]) == 2
    assert "schema 1" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["span", str(bad), "0", "7"]) == 2  # as `show`: bad input exits 2
    assert "not valid JSON" in capsys.readouterr().err
