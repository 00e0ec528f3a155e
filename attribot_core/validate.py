"""Check a result read from a file before anything uses it.

A JSON export can be damaged or crafted: a list instead of an object, ``"score": "abc"``, offsets
that do not point at the span's text. Every view trusts a result's types and that
``context[start:end] == text``, so a bad file must be refused when it is read, with one message that
names the offending field, instead of breaking a page later. :func:`check_result_dict` is called by
``AttributionResult.from_dict`` (so ``from_json``, the app and the CLI all check the same way).

This module owns the file's schema (:data:`SCHEMA_VERSION`, :data:`REQUIRED`) and imports nothing of the
package, so :mod:`attribot_core.result` depends on it and never the other way round.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_CONTEXT_CHARS", "MAX_SPANS", "REQUIRED", "SCHEMA_VERSION", "ResultFileError", "check_result_dict"]

SCHEMA_VERSION = 3
"""The result file's schema: 2 added ``per_token``, 3 added ``passages`` and ``passage_template`` (a
context given as retrieved passages); files of schemas 1 and 2 still load (no passages)."""

MAX_CONTEXT_CHARS = 5_000_000
"""Longer contexts are refused: no model here reads that much, and the views would stall."""
MAX_SPANS = 100_000
"""Most paragraphs or sentences a result may have."""
REQUIRED = ("context", "question", "response", "method", "model", "settings", "log_prob_full", "sentences",
            "forward_passes", "timings")
"""Keys a result file must have: every field of ``AttributionResult`` without a default, except
``paragraphs`` (a file without them has none). ``log_prob_full`` must be present, but may be null."""


class ResultFileError(ValueError):
    """The data is not a valid attribution result; the message names the field."""


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _fail(field: str, problem: str) -> None:
    raise ResultFileError(f"Not a valid attribution result: '{field}' {problem}.")


def _need(ok: bool, field: str, problem: str) -> None:
    if not ok:
        _fail(field, problem)


def _check_spans(d: Mapping[str, Any], level: str) -> None:
    spans = d.get(level, [])
    _need(isinstance(spans, list), level, "must be a list")
    _need(len(spans) <= MAX_SPANS, level, f"has {len(spans)} entries (at most {MAX_SPANS})")
    context = d["context"]
    for i, s in enumerate(spans):
        where = f"{level}[{i}]"
        _need(isinstance(s, Mapping), where, "must be an object")
        for key in ("index", "start", "end"):
            _need(_is_int(s.get(key)), f"{where}.{key}", "must be a whole number")
        _need(s["index"] == i, f"{where}.index", f"must be {i} (spans are numbered in order)")
        _need(isinstance(s.get("text"), str), f"{where}.text", "must be a string")
        _need(0 <= s["start"] < s["end"] <= len(context), f"{where}.start/end",
              f"({s['start']}, {s['end']}) must lie inside the context (0, {len(context)})")
        _need(context[s["start"] : s["end"]] == s["text"], f"{where}.text",
              "does not match the context at its offsets")
        _need(s.get("score") is None or _is_number(s["score"]), f"{where}.score", "must be a finite number or null")
        _need(s.get("scored_by") is None or isinstance(s["scored_by"], str), f"{where}.scored_by",
              "must be a string or null")
        if i:
            _need(s["start"] >= spans[i - 1]["end"], f"{where}.start", "overlaps the span before it")
        if level == "sentences" and d.get("paragraphs"):
            pars, p = d["paragraphs"], s.get("paragraph")
            _need(_is_int(p) and 0 <= p < len(pars), f"{where}.paragraph",
                  f"must be a paragraph index below {len(pars)}")
            _need(pars[p]["start"] <= s["start"] and s["end"] <= pars[p]["end"], f"{where}.start/end",
                  f"must lie inside paragraph {p}")


def _check_passages(d: Mapping[str, Any]) -> None:
    """``passages``: one ``{"id", "title", "text"}`` per paragraph (the passage it is), ids all different."""
    passages = d.get("passages") or []
    _need(isinstance(passages, list), "passages", "must be a list")
    if not passages:
        return
    paragraphs = d.get("paragraphs", [])
    _need(len(passages) == len(paragraphs), "passages",
          f"has {len(passages)} entries but there are {len(paragraphs)} paragraphs (one passage each)")
    for i, p in enumerate(passages):
        where = f"passages[{i}]"
        _need(isinstance(p, Mapping), where, "must be an object")
        for key in ("id", "title", "text"):
            _need(isinstance(p.get(key), str), f"{where}.{key}", "must be a string")
        _need(p["text"] in paragraphs[i]["text"], f"{where}.text", f"is not the text of paragraph {i}")
    ids = [p["id"] for p in passages]
    _need(len(set(ids)) == len(ids), "passages", "has two passages with one id")
    _need(isinstance(d.get("passage_template", ""), str), "passage_template", "must be a string")


def _check_mapping(d: Mapping[str, Any], key: str, value_ok, what: str) -> None:
    value = d.get(key, {})
    _need(isinstance(value, Mapping), key, "must be an object")
    for k, v in value.items():
        _need(value_ok(v), f"{key}.{k}", what)


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | str) or _is_number(v)


def check_result_dict(d: Any) -> None:
    """Raise :class:`ResultFileError` unless ``d`` is a well-formed result dict (as ``to_dict`` writes).

    Checks types, that every span's offsets lie in the context and give its text, that spans are in
    order without overlap, sizes, and the schema version. Unknown keys are left to the caller.
    """
    if not isinstance(d, Mapping):
        raise ResultFileError(f"Not an attribution result: expected a JSON object, got a {type(d).__name__}.")
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise ResultFileError(f"Not an attribution result: missing {', '.join(map(repr, missing))}.")
    for key in ("context", "question", "response", "method", "model", "template"):
        if key in d:
            _need(isinstance(d[key], str), key, "must be a string")
    _need(len(d["context"]) <= MAX_CONTEXT_CHARS, "context", f"is longer than {MAX_CONTEXT_CHARS:,} characters")
    _need(d.get("proxy_model") is None or isinstance(d["proxy_model"], str), "proxy_model", "must be a string or null")
    version = d.get("schema_version", 1)
    _need(_is_int(version) and 1 <= version <= SCHEMA_VERSION, "schema_version",
          f"must be a whole number from 1 to {SCHEMA_VERSION} (got {version!r})")
    _need(d.get("log_prob_full") is None or _is_number(d["log_prob_full"]), "log_prob_full",
          "must be a finite number or null")
    _need(_is_int(d.get("response_tokens", 0)) and d.get("response_tokens", 0) >= 0, "response_tokens",
          "must be a whole number ≥ 0")
    span = d.get("response_span")
    if span is not None:
        _need(isinstance(span, list | tuple) and len(span) == 2 and all(_is_int(x) for x in span)
              and 0 <= span[0] < span[1] <= len(d["response"]), "response_span",
              f"must be [start, end] inside the response (0, {len(d['response'])})")
    _check_spans(d, "paragraphs")
    _check_spans(d, "sentences")
    _check_passages(d)
    _check_mapping(d, "settings", _scalar, "must be a number, string, true/false or null")
    _check_mapping(d, "forward_passes", lambda v: _is_int(v) and v >= 0, "must be a whole number ≥ 0")
    _check_mapping(d, "timings", _is_number, "must be a finite number (seconds)")
    _need(isinstance(d.get("extra", {}), Mapping), "extra", "must be an object")
