"""A damaged or crafted result file is refused on load with one message that names the field."""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
from pathlib import Path

import pytest

from attribot_core import AttributionResult, attribute
from attribot_core.validate import REQUIRED, ResultFileError, check_result_dict


@pytest.fixture(scope="module")
def good(tiny_lm) -> dict:
    from tests.conftest import CONTEXT, QUESTION

    result = attribute(CONTEXT, QUESTION, model=tiny_lm, method="loo", response="Babbage.")
    return json.loads(result.to_json())


def _broken(good: dict, change) -> dict:
    d = copy.deepcopy(good)
    change(d)
    return d


CASES = [
    ("score-is-text", lambda d: d["sentences"][1].update(score="abc"), "'sentences[1].score'"),
    ("score-is-nan", lambda d: d["sentences"][0].update(score=float("nan")), "'sentences[0].score'"),
    ("offsets-off-the-text", lambda d: d["sentences"][2].update(start=0), "'sentences[2].text'"),
    ("offsets-outside", lambda d: d["sentences"][0].update(end=10**6), "'sentences[0].start/end'"),
    ("index-out-of-order", lambda d: d["sentences"][1].update(index=7), "'sentences[1].index'"),
    ("start-is-text", lambda d: d["paragraphs"][0].update(start="0"), "'paragraphs[0].start'"),
    ("unknown-paragraph", lambda d: d["sentences"][0].update(paragraph=99), "'sentences[0].paragraph'"),
    ("overlapping", lambda d: d["sentences"].insert(1, dict(d["sentences"][0], index=1)), "'sentences[1].start'"),
    ("sentences-not-list", lambda d: d.update(sentences={"a": 1}), "'sentences' must be a list"),
    ("question-not-text", lambda d: d.update(question=["?"]), "'question' must be a string"),
    ("settings-unhashable", lambda d: d.update(settings={"keep_paragraphs": [1, 2]}), "'settings.keep_paragraphs'"),
    ("passes-negative", lambda d: d.update(forward_passes={"m": -1}), "'forward_passes.m'"),
    ("timing-text", lambda d: d.update(timings={"total_s": "fast"}), "'timings.total_s'"),
    ("future-schema", lambda d: d.update(schema_version=99), "'schema_version'"),
    ("span-outside-response", lambda d: d.update(response_span=[0, 999]), "'response_span'"),
    ("log-prob-text", lambda d: d.update(log_prob_full="x"), "'log_prob_full'"),
    ("too-long", lambda d: d.update(context="x" * 5_000_001), "'context' is longer"),
]


@pytest.mark.parametrize(("change", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_damaged_result_is_refused_naming_the_field(good, change, field):
    with pytest.raises(ResultFileError, match="Not a valid attribution result") as info:
        AttributionResult.from_dict(_broken(good, change))
    assert field in str(info.value)
    assert "\n" not in str(info.value)  # one line


@pytest.mark.parametrize(("text", "message"), [
    ("[1, 2, 3]", "expected a JSON object, got a list"),
    ('"just text"', "expected a JSON object, got a str"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"context": "a"}', "missing"),
])
def test_json_that_is_not_a_result_object_is_refused(text, message):
    with pytest.raises(ResultFileError, match=message):
        AttributionResult.from_json(text)


def test_a_valid_result_still_loads_and_equals_itself(good):
    assert json.loads(AttributionResult.from_dict(copy.deepcopy(good)).to_json()) == good


def test_the_refusal_is_a_value_error_so_callers_that_catch_value_error_keep_working(good):
    assert issubclass(ResultFileError, ValueError)


@pytest.mark.parametrize("key", ["question", "settings", "log_prob_full", "forward_passes", "timings", "context",
                                 "response", "method", "model", "sentences"])
def test_a_result_missing_a_required_field_is_refused_by_the_validator(good, key):
    d = copy.deepcopy(good)
    del d[key]
    with pytest.raises(ResultFileError, match=f"missing '{key}'"):
        check_result_dict(d)
    with pytest.raises(ResultFileError, match=f"missing '{key}'"):
        AttributionResult.from_json(json.dumps(d))


def test_required_fields_are_those_the_result_type_cannot_do_without():
    no_default = {f.name for f in dataclasses.fields(AttributionResult)
                  if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    assert set(REQUIRED) == no_default - {"paragraphs"}  # a file without paragraphs has none


def test_a_null_log_prob_full_and_absent_paragraphs_still_load(good):
    d = copy.deepcopy(good)
    d["log_prob_full"] = None
    d["paragraphs"], d["per_token"] = [], None  # per-token values would name the paragraphs
    for s in d["sentences"]:
        s.pop("paragraph")
    assert AttributionResult.from_dict(d).log_prob_full is None


def test_a_span_without_a_score_is_not_scored_and_unknown_span_keys_are_ignored(good):
    d = copy.deepcopy(good)
    d["per_token"] = None  # per-token values exist only for scored spans
    del d["sentences"][0]["score"], d["sentences"][0]["scored_by"]
    d["sentences"][1]["comment"] = "added by hand"
    result = AttributionResult.from_dict(d)
    assert result.sentences[0].score is None and result.sentences[1].text == good["sentences"][1]["text"]


def test_damaged_per_token_values_raise_the_validators_error(good):
    d = copy.deepcopy(good)
    del d["sentences"][0]["score"]
    with pytest.raises(ResultFileError, match="per_token"):
        AttributionResult.from_dict(d)


def test_text_that_is_not_json_raises_the_validators_error():
    with pytest.raises(ResultFileError, match="not valid JSON"):
        AttributionResult.from_json('{"context": "trunc')


def _package_imports(module: str) -> set[str]:
    """Modules of attribot_core that ``module`` imports anywhere in its source (also inside functions)."""
    path = Path(__file__).parents[1] / "attribot_core" / f"{module}.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            found.add((node.module or "").split(".")[0] or "__init__")
    return found


def test_the_validator_imports_nothing_of_the_package_and_the_result_type_no_algorithm():
    assert _package_imports("validate") == set()  # so result -> validate is no cycle
    assert "methods" not in _package_imports("result") and "api" not in _package_imports("result")
