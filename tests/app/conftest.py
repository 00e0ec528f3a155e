"""AppTest fixtures: the real app on a tiny in-process model chosen by configuration (no fakes)."""

from __future__ import annotations

import os
import time

import pytest
from apptools import APP, TIMEOUT

# As app.py does, before torch loads here: idle OpenMP threads sleep rather than spin (a shared 2-core CPU
# otherwise makes each tiny-model forward pass ~50x slower).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture
def app_env(tiny_model_dir, monkeypatch, tmp_path):
    """Offer only the tiny model, as a deployment would configure its own models; a fresh run database."""
    from studio import runs

    monkeypatch.setenv("ATTRIBOT_DB", str(tmp_path / "runs.sqlite3"))
    runs.executor.clear()  # the next script run opens the new database with its own worker
    monkeypatch.setenv("ATTRIBOT_MODELS", str(tiny_model_dir))
    monkeypatch.setenv("ATTRIBOT_DEFAULT_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("ATTRIBOT_ALLOW_CUSTOM_MODEL", "1")
    return tiny_model_dir


@pytest.fixture
def at(app_env):
    """The app, run once (the Attribute page)."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(APP, default_timeout=TIMEOUT)
    app.run()
    assert not app.exception
    return app


@pytest.fixture
def downloads(monkeypatch):
    """Everything the app hands to download buttons: a list of (filename, mimetype, bytes)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    seen: list[tuple[str | None, str, bytes]] = []
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):
        if isinstance(path_or_data, bytes):
            seen.append((filename, mimetype, path_or_data))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return seen


@pytest.fixture
def slow(app_env):
    """The app's own tiny model, each forward pass slowed to ~0.15 s so a run can be watched midway."""
    from studio import runs

    lm = runs.executor().models.get(str(app_env))
    forward = lm.model.forward

    def slowed(*args, **kwargs):
        time.sleep(0.15)
        return forward(*args, **kwargs)

    lm.model.forward = slowed
    yield
    del lm.model.forward
