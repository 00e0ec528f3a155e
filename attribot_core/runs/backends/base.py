"""What every batch backend shares: the protocol, the outcome of one row, and the call that computes it.

A backend decides *where* rows run (this process, Ray actors); what a row computes is always
:func:`attempt`, i.e. :func:`~attribot_core.runs.execute.execute`. Backends hand back
:class:`Outcome` values and never write the store: the batch driver alone does, so an actor on a
machine that cannot even see the database file is a backend like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from ...prompt import Response
from ...result import AttributionResult
from ..execute import USER_ERRORS, ModelCache, RunReport, execute
from ..request import RunRequest

__all__ = ["Backend", "Item", "Outcome", "attempt", "error_message"]

log = logging.getLogger("attribot.batch")

Item = tuple[str, RunRequest, Response | None]
"""One row to compute: (run id, request, a response generated earlier to reuse with its token ids)."""


@dataclass(frozen=True)
class Outcome:
    """What a backend hands back for one row: a result or an error message, and a generated response."""

    result: AttributionResult | None = None
    error: str | None = None
    generated: Response | None = None


class Backend(Protocol):
    """Where rows run; a context manager (entering may start workers, leaving stops what it started).

    ``prepare`` loads the batch's models (``specs``) before the first row, so a model that cannot load
    is one clear error rather than every row failing. ``run`` yields (run id, outcome) as rows finish,
    calling ``on_start(run id)`` when a row is handed to a worker.
    """

    workers: int

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: Any) -> None: ...

    def describe(self) -> str: ...

    def prepare(self, specs: list[str]) -> None: ...

    def run(self, items: Iterable[Item], on_start: Callable[[str], None]) -> Iterator[tuple[str, Outcome]]: ...


class _Collect(RunReport):
    """Keeps what a run reports that the driver stores afterwards (its generated response)."""

    def __init__(self, known: Response | None) -> None:
        self.known, self.response = known, None

    def generated(self, response: Response) -> None:
        self.response = response

    def known_response(self, request: RunRequest) -> Response | None:
        return self.known


def error_message(exc: BaseException) -> str:
    """A user error's own message; anything else (a bug) as its type and the start of its message."""
    if isinstance(exc, USER_ERRORS):
        return str(exc)
    log.error("a batch row failed", exc_info=exc)
    return f"Something went wrong ({type(exc).__name__}): {str(exc)[:300]}"


def attempt(request: RunRequest, models: ModelCache, known: Response | None = None) -> Outcome:
    """Run one request wherever this is called (this process, a Ray actor); never raises for a row."""
    report = _Collect(known)
    try:
        return Outcome(execute(request, models, report), generated=report.response)
    except Exception as exc:
        return Outcome(error=error_message(exc))
