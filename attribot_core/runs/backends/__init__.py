"""Where the rows of a batch run: :mod:`.local` (this process) or :mod:`.ray` (Ray actors), behind :mod:`.base`.

:func:`choose_backend` is the one place that turns the user's wish (``--ray``, ``--workers``,
``--threads``; ``ray=``, ``workers=``, ``threads=`` of :func:`~attribot_core.attribute_many`) into a
backend. Adding a backend is one module here plus a branch in :func:`choose_backend`.
"""

from __future__ import annotations

from ...api import InputError
from .base import Backend, Item, Outcome, attempt, error_message
from .local import LocalBackend
from .ray import RayBackend, RayMissing

__all__ = ["Backend", "Item", "LocalBackend", "Outcome", "RayBackend", "RayMissing", "attempt", "choose_backend",
           "error_message"]

LOCAL_RAY = "local"
"""``ray=`` value (the CLI's bare ``--ray``) that starts a Ray on this machine rather than joining one."""


def choose_backend(ray: str | bool | None = None, workers: int | None = None,
                   threads: int | None = None) -> Backend:
    """The backend for these options; nothing starts until it is entered (``with``).

    ``ray``: None/False runs rows in this process; True or ``"local"`` starts a local Ray of
    ``workers`` actors with ``threads`` torch threads each (default 1: the actor's CPU share);
    ``"host:port"`` or ``"auto"`` joins a running cluster. Without Ray, ``threads`` are this process's
    torch threads, and ``workers`` is refused rather than ignored: rows would still run one at a time.
    """
    if not ray:
        if workers is not None:
            raise InputError("--workers needs --ray (without it, rows run one at a time in this process; "
                             "--threads sets its torch threads).")
        return LocalBackend(threads=threads)
    address = None if ray is True or ray == LOCAL_RAY else str(ray)
    return RayBackend(address, workers=workers, threads=threads or 1)
