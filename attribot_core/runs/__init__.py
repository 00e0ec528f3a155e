"""Runs as first-class, persistent objects: a request, its status and progress, its result, in SQLite.

* :class:`RunRequest` - every input of a run, with a stable key;
* :class:`RunStore` - the SQLite file (the only writer of it);
* :func:`execute` - the work of one run, wherever it happens;
* :class:`LocalExecutor` (:mod:`.app_queue`) - the app's run queue, a background worker of this process;
* :mod:`.batch` - datasets in batch (``attribot batch``, :func:`attribute_many`), resumable; its rows
  come from :mod:`.inputs` and run on a backend of :mod:`.backends` (this process, or Ray actors);
  :mod:`.export` writes a batch out; :mod:`.dataset` computes its per-row figures.
"""

from .app_queue import LocalExecutor, stored_result
from .execute import MODEL_LOCK, USER_ERRORS, Cancelled, ModelCache, RunReport, check_request, execute
from .request import RunRequest
from .store import RunRecord, RunStore, StoreError, default_db_path

__all__ = [
    "MODEL_LOCK",
    "USER_ERRORS",
    "Cancelled",
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
