"""Runs as first-class, persistent objects: a request, its status and progress, its result, in SQLite.

* :class:`RunRequest` - every input of a run, with a stable key;
* :class:`RunStore` - the SQLite file (the only writer of it);
* :func:`execute` - the work of one run, wherever it happens;
* :class:`LocalExecutor` - a background worker of this process (the app's executor);
* :mod:`.batch` - datasets in batch (``attribot batch``, :func:`attribute_many`), resumable, locally or
  on Ray actors (:mod:`.ray_executor`); :mod:`.export` writes a batch out; :mod:`.dataset` computes
  its per-row figures.
"""

from .execute import MODEL_LOCK, USER_ERRORS, Cancelled, ModelCache, RunReport, check_request, execute
from .executor import Executor, LocalExecutor, stored_result
from .request import RunRequest
from .store import RunRecord, RunStore, StoreError, default_db_path

__all__ = [
    "MODEL_LOCK",
    "USER_ERRORS",
    "Cancelled",
    "Executor",
    "LocalExecutor",
    "ModelCache",
    "RunRecord",
    "RunReport",
    "RunRequest",
    "RunStore",
    "StoreError",
    "check_request",
    "default_db_path",
    "execute",
    "stored_result",
]
