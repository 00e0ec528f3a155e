"""Scale a batch out on Ray: actors that each hold their own models, pinned to their CPU (or GPU) share.

Each actor reserves ``threads`` CPUs and runs torch with exactly that many threads: on these small
machines, actors whose threads add up to more than the cores made scoring ~8x slower. Where the
cluster has GPUs, each actor reserves ``gpus_per_worker`` of one and loads its models there.

Actors compute and return :class:`~attribot_core.runs.backends.base.Outcome` values; the driver alone
writes the store (actors may run on machines that cannot even see the database file).

``RayBackend()`` starts a local Ray (``ray.init(num_cpus=..., include_dashboard=False)``, usage
statistics off, nothing contacted outside this machine); ``RayBackend("host:port")`` or ``"auto"``
joins a running cluster, whose nodes need this package and the models at the same paths.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ...models import ModelError
from ..execute import ModelCache
from ..request import RunRequest
from .base import Item, Outcome, attempt

__all__ = ["RayBackend", "RayMissing"]

_WORKER_ENV = ("HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM", "ATTRIBOT_CACHE", "OMP_WAIT_POLICY")


class RayMissing(ModelError):
    """Ray is not installed (it is a development and scale-out dependency, not the app's)."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayMissing("Ray is not installed: pip install 'ray==2.60.0' (or run without --ray).") from None
    return ray


class _Worker:
    """One Ray actor: its own model cache, ``threads`` torch threads."""

    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.models = ModelCache()
        self.threads = threads

    def warm(self, specs: list[str]) -> str | None:
        """Load the batch's models before the first row; an error message when one cannot load."""
        try:
            for spec in specs:
                self.models.get(spec)
        except Exception as exc:
            return str(exc)
        return None

    def info(self) -> dict[str, Any]:
        import torch

        return {"pid": os.getpid(), "threads": torch.get_num_threads(), "node": os.uname().nodename}

    def run(self, request_json: str, known: Any) -> Outcome:
        return attempt(RunRequest.from_json(request_json), self.models, known)


class RayBackend:
    """``workers`` actors of ``threads`` CPUs each (and ``gpus_per_worker`` GPUs where present).

    Use as a context manager: a local Ray started here is shut down on exit; a joined cluster is left
    running. ``workers`` defaults to the cluster's CPUs (or GPUs) divided by each actor's share.
    """

    def __init__(self, address: str | None = None, *, workers: int | None = None, threads: int = 1,
                 gpus_per_worker: float | None = None, num_cpus: int | None = None) -> None:
        if threads < 1:
            raise ValueError(f"Threads per worker must be at least 1, not {threads}.")
        if workers is not None and workers < 1:
            raise ValueError(f"Workers must be at least 1, not {workers}.")
        self.address, self.threads, self.gpus_per_worker = address, threads, gpus_per_worker
        self.num_cpus = num_cpus if num_cpus is not None else max(threads * (workers or 0), os.cpu_count() or 1)
        self.requested_workers = workers
        self.workers = 0
        self._started = False
        self._actors: list[Any] = []

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> RayBackend:
        ray = _ray()
        env = {k: os.environ[k] for k in _WORKER_ENV if k in os.environ}
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        env.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, runtime_env={"env_vars": env}, log_to_driver=False)
            else:
                ray.init(num_cpus=self.num_cpus, num_gpus=None, include_dashboard=False, log_to_driver=False,
                         runtime_env={"env_vars": env})
            self._started = True
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0)
        per_gpu = self.gpus_per_worker if self.gpus_per_worker is not None else (1.0 if gpus else 0.0)
        by_cpu = int(resources.get("CPU", 1) // self.threads)
        default = min(by_cpu, int(gpus // per_gpu)) if per_gpu else by_cpu
        self.workers = self.requested_workers or max(1, default)
        self._actor = ray.remote(_Worker).options(num_cpus=self.threads, num_gpus=per_gpu)
        self._actors = [self._actor.remote(self.threads) for _ in range(self.workers)]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        ray = _ray()
        for a in self._actors:
            ray.kill(a)
        self._actors = []
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False

    def describe(self) -> str:
        return (f"Ray: {self.workers} actor(s) of {self.threads} thread(s)"
                + (f" on {self.address}" if self.address else " (local)"))

    def info(self) -> list[dict[str, Any]]:
        """Each actor's pid, torch threads and node (to check the pinning)."""
        ray = _ray()
        return ray.get([a.info.remote() for a in self._actors])

    # -- the backend interface ---------------------------------------------------------------------
    def prepare(self, specs: list[str]) -> None:
        """Every actor loads the models (``specs``) before the first row; one that cannot is one error."""
        if not self._actors:
            self.__enter__()
        ray = _ray()
        errors = [e for e in ray.get([a.warm.remote(specs) for a in self._actors]) if e]
        if errors:
            raise ModelError(errors[0])

    def run(self, items: Iterable[Item], on_start: Callable[[str], None]) -> Iterator[tuple[str, Outcome]]:
        """Keep every actor busy with one row; yield outcomes as they arrive (only the caller stores them)."""
        ray = _ray()
        todo = iter(items)
        idle = list(range(len(self._actors)))
        pending: dict[Any, tuple[str, int]] = {}
        while True:
            while idle and (item := next(todo, None)) is not None:
                run_id, request, known = item
                slot = idle.pop()
                on_start(run_id)
                pending[self._actors[slot].run.remote(request.to_json(), known)] = (run_id, slot)
            if not pending:
                return
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                run_id, slot = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the actor died (out of memory, node lost, ...)
                    outcome = Outcome(error=f"The Ray worker failed on this row: {str(exc).splitlines()[0][:300]}")
                    self._actors[slot] = self._actor.remote(self.threads)
                idle.append(slot)
                yield run_id, outcome
