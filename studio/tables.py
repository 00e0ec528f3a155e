"""The Dataset and History tables as data: which rows to show, in which order, and which are selected.

Pure functions over plain row dicts and run ids (no Streamlit), so the pages only draw what these return
and tests check the rules without a browser. A table's selection is kept as run *ids*, never row
positions: positions change when a filter, a sort or a deleted run moves the rows, ids do not.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DATASET_SORTS",
    "DEMO_SOURCES",
    "GOLD_FILTERS",
    "dataset_keep",
    "day_bounds",
    "describe_run",
    "history_row",
    "ids_at",
    "neighbour",
    "passage_names",
    "positions_of",
    "shown_dataset_rows",
    "sort_rows",
    "user_runs",
]

# Shown sort name -> row key (None: the input order). Rows without a value go last, whatever the direction.
DATASET_SORTS: dict[str, str | None] = {
    "input order": None, "max |score|": "max_abs_score", "top score": "top_score", "top share": "top_share",
    "top position": "top_position", "log p(response | context)": "log_prob_full",
}
GOLD_FILTERS = ("any", "top sentence is gold", "top sentence is not gold")
_SEARCHED = ("question", "response", "top_sentence", "top_source")


def dataset_keep(row: Mapping[str, Any], *, text: str = "", statuses: Iterable[str] = (), gold: str = "any",
                 truncated_only: bool = False) -> bool:
    """Whether a Dataset row passes the filters: ``text`` is a case-insensitive substring of its question,
    response, top sentence or top source (``source 3 · Harbour board minutes``); its status is among
    ``statuses`` (all when empty); ``gold`` is one of :data:`GOLD_FILTERS` (rows without a gold verdict pass
    only "any"); ``truncated_only`` keeps the rows whose generated response hit the token limit."""
    needle = text.strip().casefold()
    if needle and not any(needle in (row.get(k) or "").casefold() for k in _SEARCHED):
        return False
    statuses = list(statuses)
    if statuses and row.get("status") not in statuses:
        return False
    if gold != "any" and row.get("gold_hit") is not (gold == GOLD_FILTERS[1]):
        return False
    return not truncated_only or row.get("response_complete") is False


def passage_names(passages: Sequence[Mapping[str, Any]] | None) -> list[str]:
    """A row's passages as the Dataset table lists them: ``doc-7 · Harbour board minutes`` (the id alone when
    there is no title), in the order the prompt showed them; ``[]`` for a plain-string row. Plain text: the
    table shows it as text, never as Markdown."""
    return [f"{p['id']} · {p['title']}" if p.get("title") else str(p["id"]) for p in passages or ()]


def sort_rows(rows: Sequence[Mapping[str, Any]], indices: Iterable[int], sort_by: str,
              descending: bool = True) -> list[int]:
    """``indices`` of ``rows`` ordered by the column ``sort_by`` names (see :data:`DATASET_SORTS`).

    Stable: equal values keep their input order. Rows with no value (a failed or running row) go last
    in either direction, so "smallest first" does not open on rows that have nothing to show.
    """
    indices = list(indices)
    key = DATASET_SORTS.get(sort_by)
    if key is None:
        return indices
    valued = [i for i in indices if rows[i].get(key) is not None]
    return (sorted(valued, key=lambda i: rows[i][key], reverse=descending)
            + [i for i in indices if rows[i].get(key) is None])


def shown_dataset_rows(rows: Sequence[Mapping[str, Any]], *, sort_by: str = "input order", descending: bool = True,
                       **filters: Any) -> list[int]:
    """The indices of ``rows`` the Dataset table shows, in its order (filters: :func:`dataset_keep`)."""
    return sort_rows(rows, (i for i, r in enumerate(rows) if dataset_keep(r, **filters)), sort_by, descending)


def positions_of(shown: Sequence[str], chosen: Iterable[str]) -> list[int]:
    """The table positions of the ``chosen`` ids among the ``shown`` ones (chosen ids not shown are skipped)."""
    where = {run_id: i for i, run_id in enumerate(shown)}
    return sorted(where[c] for c in chosen if c in where)


def ids_at(shown: Sequence[str], positions: Iterable[int]) -> list[str]:
    """The ids at table ``positions`` (positions out of range, e.g. of a table drawn before, are skipped)."""
    return [shown[p] for p in positions if 0 <= p < len(shown)]


def neighbour(order: Sequence[str], run_id: str, step: int) -> str | None:
    """The id ``step`` places after ``run_id`` in ``order`` (before, when negative); None past either end
    or when ``run_id`` is not in the order."""
    if run_id not in order:
        return None
    i = list(order).index(run_id) + step
    return order[i] if 0 <= i < len(order) else None


DEMO_SOURCES = ("learn", "compare")
"""Runs the Learn and Compare pages start to demonstrate the methods, not the user's own analysis."""


def user_runs(records: Iterable[Any], *, include_demos: bool = False) -> list[Any]:
    """``records`` without the Learn and Compare pages' demonstration runs, unless ``include_demos``."""
    return [r for r in records if include_demos or r.source not in DEMO_SOURCES]


def history_row(record: Any) -> dict[str, Any]:
    """One row of the History table for a stored run (a :class:`~attribot_core.runs.RunRecord`); the note
    and tags come right after the question, so they are in view without scrolling the grid sideways."""
    result = record.result
    top = result.top_k(1) if result is not None else []
    return {
        "when": dt.datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S"),
        "status": record.status + (f" {record.done}/{record.total}" if record.active and record.total else ""),
        "method": record.request.method, "model": record.request.model, "question": record.request.question,
        "note": record.note, "tags": ", ".join(record.tags),
        "top sentence": top[0].text if top else "", "top score": top[0].score if top else None,
        "source": record.source + (f" · {record.batch}" if record.batch else ""),
    }


def describe_run(record: Any) -> str:
    """A run in one line, to say which one a button acts on: when, method, model and the question's start."""
    when = dt.datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S")
    question = record.request.question
    question = question if len(question) <= 60 else question[:59] + "…"
    return f"{when} · {record.request.method} · {record.request.model} · “{question}”"


def day_bounds(since: dt.date | None, until: dt.date | None) -> tuple[float | None, float | None]:
    """History's date filter as Unix times: from the start of ``since`` to the end of ``until`` (inclusive),
    in local time; None leaves that side open."""
    def stamp(day: dt.date | None, extra_days: int) -> float | None:
        if day is None:
            return None
        return dt.datetime.combine(day + dt.timedelta(days=extra_days), dt.time()).timestamp()

    return stamp(since, 0), stamp(until, 1)
