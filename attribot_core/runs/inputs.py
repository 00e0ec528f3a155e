"""Batch inputs: read a JSONL, JSON, CSV or Parquet dataset into rows, one row per attribution.

A row that cannot be used (a line that is not JSON or not UTF-8, a missing field, a ``context`` that
is a number) is still a row: it carries its message and the batch stores it as failed, so one bad
line never costs the good ones. Only what makes the whole input unusable (no such file, a missing
column, a JSON file holding one object) is refused at once, as an :class:`~attribot_core.api.InputError`.

A row's context is a ``context`` string, or a ``passages`` list (retrieved passages, each
``{"id", "title"?, "text"}`` or a string; in a CSV cell that list written as JSON): then each passage is a
top-level span named by its id and title, and ``context`` is the passages as the prompt shows them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..api import InputError
from ..segment import Passage, PassageError, segment_passages

__all__ = ["INPUT_FIELDS", "INPUT_FORMATS", "BatchRow", "content_id", "input_columns", "passages_from_text",
           "read_rows", "rows_from_records"]

INPUT_FORMATS = ("jsonl", "json", "csv", "parquet")
INPUT_FIELDS = ("context", "passages", "question", "response", "id", "gold")
"""The fields a row is read from (``question`` and ``context`` or ``passages`` required); an input whose
columns are named otherwise maps them (``read_rows(..., columns=...)``)."""
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet",
             ".pq": "parquet"}
_TEXT_FIELDS = ("context", "question", "response")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, as ``surrogateescape`` decodes them

Record = Mapping[str, Any] | str  # a row's fields, or the message of a row that could not be read


@dataclass(frozen=True)
class BatchRow:
    """One input row. ``error`` is set when the row itself cannot be used (it is stored as failed)."""

    index: int  # 0-based position in the input
    row_id: str  # the input's ``id``, else a hash of (context, question, response)
    context: str = ""
    question: str = ""
    response: str = ""
    gold: tuple[str, ...] | None = None
    error: str | None = None
    passages: tuple[Passage, ...] = ()  # the retrieved passages; ``context`` is then their rendered text

    @property
    def source(self) -> str | tuple[Passage, ...]:
        """The row's context as ``attribute`` takes it: the passages, else the string."""
        return self.passages or self.context

    def stored(self) -> dict[str, Any]:
        """What the run keeps of the row besides its request (the Dataset page reads ``gold``)."""
        return {"index": self.index, "id": self.row_id, "gold": list(self.gold) if self.gold is not None else None}


def content_id(context: str, question: str, response: str) -> str:
    """A row's id when the input gives none: equal rows get equal ids, in any run of the batch."""
    return hashlib.sha256(json.dumps([context, question, response]).encode("utf-8")).hexdigest()[:16]


def _empty(value: Any) -> bool:
    """None, or NaN: an empty cell of a table."""
    return value is None or (isinstance(value, float) and value != value)


def _id(value: Any) -> str:
    """An ``id`` may be a number (``1, 2, 3``): it names the row, so its written form is the id."""
    return "" if _empty(value) else str(value).strip()


def _gold(value: Any) -> tuple[str, ...] | None:
    """``gold``: a list of evidence strings; in a CSV cell a JSON list, or one plain string."""
    if _empty(value) or value == "":
        return None
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError("'gold' looks like a JSON list but is not valid JSON.") from None
        else:
            return (value,)
    if hasattr(value, "tolist"):  # a numpy array (pandas-written Parquet)
        value = value.tolist()
    if not isinstance(value, list | tuple) or not all(isinstance(g, str) for g in value):
        raise ValueError("'gold' must be a list of evidence strings.")
    return tuple(value)


def _passages(value: Any) -> tuple[Passage, ...]:
    """``passages``: a list of passages; in a CSV cell that list as JSON. ``()`` for an empty cell."""
    if _empty(value) or (isinstance(value, str) and not value.strip()):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise PassageError("'passages' is not a JSON list of passages.") from None
    if hasattr(value, "tolist"):  # a numpy array (pandas-written Parquet)
        value = value.tolist()
    return segment_passages(value).passages


def passages_from_text(text: str, where: str = "the passages") -> tuple[Passage, ...]:
    """Passages from a JSON list, or JSONL (one passage a line: an object with ``text``, or a JSON string).

    The reader of ``attribot attribute --passages`` and of the app's passage upload; anything that is not
    a list of passages is one :class:`~attribot_core.api.InputError` naming ``where``.
    """
    text = text.removeprefix("\ufeff")
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise InputError(f"{where} is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as line_exc:
                    raise InputError(f"{where}: line {n} is not valid JSON ({line_exc.msg}).") from None
    if isinstance(items, dict):  # {"passages": [...]}, as some retrievers write it, or one passage
        items = items.get("passages", [items])
    try:
        return segment_passages(items).passages
    except PassageError as exc:
        raise InputError(f"{where}: {exc}") from None


def _row(i: int, rec: Mapping[str, Any]) -> BatchRow:
    """One record as a row; the first thing wrong with it becomes the row's error."""
    values = {k: rec.get(k) for k in _TEXT_FIELDS}
    texts = {k: v if isinstance(v, str) else "" for k, v in values.items()}
    try:
        passages, passage_problem = _passages(rec.get("passages")), None
    except PassageError as exc:
        passages, passage_problem = (), str(exc)
    if passages:
        texts["context"] = segment_passages(passages).text
    row_id = _id(rec.get("id")) or content_id(texts["context"], texts["question"], texts["response"])
    row = BatchRow(i, row_id, texts["context"], texts["question"], texts["response"], passages=passages)

    def failed(message: str) -> BatchRow:
        return BatchRow(row.index, row.row_id, row.context, row.question, row.response, error=f"Row {i + 1}: {message}",
                        passages=passages)

    if passage_problem:
        return failed(passage_problem)
    has_context = not _empty(rec.get("context")) and rec.get("context") != ""
    if passages and has_context:
        return failed("both 'context' and 'passages': give one of them.")
    missing = [k for k in ("context", "question") if k not in rec and not (k == "context" and passages)]
    if missing:
        return failed(f"no {' and no '.join(repr(k) for k in missing)} field.")
    not_text = [k for k, v in values.items() if not (_empty(v) or isinstance(v, str))]
    if not_text:  # a number is not a context: writing it out as "123" would attribute a made-up text
        return failed(" and ".join(f"'{k}' is not text (got {type(values[k]).__name__})" for k in not_text) + ".")
    bad_bytes = [k for k in (*_TEXT_FIELDS, "id", "gold") if isinstance(rec.get(k), str) and _NOT_UTF8.search(rec[k])]
    if bad_bytes:
        return failed(f"{', '.join(repr(k) for k in bad_bytes)} is not UTF-8 text.")
    try:
        gold = _gold(rec.get("gold"))
    except ValueError as exc:
        return failed(str(exc))
    return BatchRow(row.index, row.row_id, row.context, row.question, row.response, gold, passages=passages)


def rows_from_records(records: Iterable[Record]) -> list[BatchRow]:
    """Rows from dicts with ``context`` (or ``passages``), ``question`` and optional ``response``, ``id``, ``gold``.

    A string in ``records`` is a row that could not be read at all (its message).
    """
    return [BatchRow(i, f"row-{i + 1}", error=rec) if isinstance(rec, str) else _row(i, rec)
            for i, rec in enumerate(records)]


def _sniff(head: bytes) -> str:
    if head.startswith(b"PAR1"):
        return "parquet"
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return {b"{": "jsonl", b"[": "json"}.get(start, "csv")


def _need_columns(columns: Iterable[str], where: str) -> None:
    columns = list(columns)
    has = {*columns, *(["context"] if "passages" in columns else [])}  # passages stand for a context
    missing = [c for c in ("context", "question") if c not in has]
    if missing:
        raise InputError(f"{where} has no {' and no '.join(repr(c) for c in missing)} column "
                         f"(columns: {', '.join(columns) or 'none'}).")


def _text(data: bytes, where: str) -> str:
    """The input as text; bytes that are not UTF-8 stay marked (see ``_NOT_UTF8``) so only their rows fail.

    An input with no UTF-8 text at all (an image, a zip) is refused: every row would fail the same way.
    """
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    if "\0" in text or (text.strip() and not _NOT_UTF8.sub("", text).strip()):
        raise InputError(f"{where} is not UTF-8 text (JSONL, JSON or CSV), nor Parquet.")
    return text


def _jsonl(text: str) -> list[Record]:
    out: list[Record] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if _NOT_UTF8.search(line):
            out.append(f"Line {n} is not UTF-8 text.")
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            out.append(f"Line {n} is not valid JSON ({exc.msg}).")
            continue
        out.append(rec if isinstance(rec, dict) else f"Line {n} is not a JSON object.")
    return out


def _json(text: str, where: str) -> list[Record]:
    """A JSON array of row objects. A ``.json`` file written as JSONL (one object a line) is read as JSONL."""
    if _NOT_UTF8.search(text):
        raise InputError(f"{where} is not UTF-8 text: a JSON document is read whole, so fix its bytes "
                         "(or write it as JSONL, where only the bad lines would fail).")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # several documents: one per line, i.e. JSONL
            return _jsonl(text)
        raise InputError(f"{where} is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    if not isinstance(data, list):
        what = "one JSON object" if isinstance(data, dict) else "a single JSON value"
        raise InputError(f"{where} holds {what}, not rows: give a JSON array of row objects "
                         "([{\"context\": ..., \"question\": ...}, ...]) or JSONL (one object a line).")
    return [rec if isinstance(rec, dict) else f"Item {n} of the array is not a JSON object."
            for n, rec in enumerate(data, 1)]


def _table(data: bytes, fmt: str, where: str) -> tuple[list[str], list[Record]]:
    """The input's column names (JSON(L): every key, in order of first appearance) and its records, unchecked."""
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"Cannot read {where} as Parquet: {exc}") from None
        return list(table.column_names), table.to_pylist()
    text = _text(data, where)
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        return list(reader.fieldnames or []), list(reader)
    records = _json(text, where) if fmt == "json" else _jsonl(text)
    keys = dict.fromkeys(k for rec in records if not isinstance(rec, str) for k in rec)
    return list(keys), records


def _renamed(rec: Record, rename: Mapping[str, str]) -> Record:
    """``rec`` with its columns named as our fields (``rename``: the input's column -> our field)."""
    if isinstance(rec, str) or not rename:
        return rec
    return {rename.get(k, k): v for k, v in rec.items() if not (k not in rename and k in rename.values())}


def _records(data: bytes, fmt: str, where: str, columns: Mapping[str, str] | None = None) -> list[Record]:
    rename = {column: name for name, column in (columns or {}).items() if column and column != name}
    names, records = _table(data, fmt, where)
    if fmt in ("csv", "parquet"):  # a table's columns are known up front; a JSON row may lack any key
        _need_columns([rename.get(c, c) for c in names if not (c not in rename and c in rename.values())], where)
    return [_renamed(rec, rename) for rec in records]


def _read(source: str | Path | IO[bytes], fmt: str | None) -> tuple[bytes, str, str | None]:
    """The input's bytes, its name for messages, and its format (from the suffix, when it has one)."""
    if fmt is not None and fmt not in INPUT_FORMATS:
        raise InputError(f"Unknown input format '{fmt}'; use one of {', '.join(INPUT_FORMATS)}.")
    if isinstance(source, str | Path) and str(source) != "-":
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"Cannot read {path}: {exc.strerror or exc}.") from None
        return data, str(path), fmt or _SUFFIXES.get(path.suffix.lower())
    stream = sys.stdin.buffer if str(source) == "-" else source
    return stream.read(), "stdin" if str(source) == "-" else "the input", fmt


def input_columns(source: str | Path | IO[bytes], fmt: str | None = None) -> list[str]:
    """The column names of an input, as written in it (what a column-mapping step offers)."""
    data, where, fmt = _read(source, fmt)
    return _table(data, fmt or _sniff(data[:64]), where)[0]


def read_rows(source: str | Path | IO[bytes], fmt: str | None = None, *,
              columns: Mapping[str, str] | None = None) -> list[BatchRow]:
    """Read a JSONL, JSON, CSV or Parquet file (``"-"``: stdin); the format comes from the suffix, else the content.

    ``columns`` maps a field of :data:`INPUT_FIELDS` to the input's column that holds it, for an input
    whose names differ (``{"context": "passage", "question": "query"}``); a column mapped to a field
    replaces a column of that field's name.
    """
    data, where, fmt = _read(source, fmt)
    rows = rows_from_records(_records(data, fmt or _sniff(data[:64]), where, columns))
    if not rows:
        raise InputError(f"{where} has no rows.")
    return rows
