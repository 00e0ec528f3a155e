"""The local backend: the rows of a batch one at a time, in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..execute import ModelCache
from .base import Item, Outcome, attempt

__all__ = ["LocalBackend"]


class LocalBackend:
    """One row at a time in this process (models loaded once; ``threads`` torch threads)."""

    workers = 1

    def __init__(self, models: ModelCache | None = None, threads: int | None = None) -> None:
        self.models = models or ModelCache()
        self.threads = threads

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass  # nothing was started: the loaded models go with the object

    def describe(self) -> str:
        return "Local: one row at a time in this process" + (f" ({self.threads} torch threads)" if self.threads else "")

    def prepare(self, specs: list[str]) -> None:
        """Set the torch threads and load the models first (a bad model fails here, not in every row)."""
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        for spec in specs:
            self.models.get(spec)

    def run(self, items: Iterable[Item], on_start: Callable[[str], None]) -> Iterator[tuple[str, Outcome]]:
        for run_id, request, known in items:
            on_start(run_id)
            yield run_id, attempt(request, self.models, known)
