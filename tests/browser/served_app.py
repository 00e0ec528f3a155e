"""Serve the app with ``streamlit run`` on a free loopback port and watch its memory (tests and measurements)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeakRss(threading.Thread):
    """Samples the resident memory of a process and its children every 0.2 s until ``stop`` is set."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.stop.wait(0.2):
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                return


class ServedApp:
    """``with ServedApp(log_path) as app:`` starts the server (a real model), waits for health, stops it.

    ``model`` is the picker's default: SmolLM2-135M unless told (the smallest real model setup installs;
    the app's own default, Qwen2.5-Coder-0.5B, is about three times slower per pass, so the browser
    tests run on it only where they check that default); ``None`` leaves the app's default.
    ``db_path`` is its run database, emptied first; ``env`` adds variables for the server (an
    ``ATTRIBOT_DB`` there, e.g. of a batch a test made, is used as it is).
    """

    def __init__(self, log_path: Path, db_path: Path | None = None, env: dict[str, str] | None = None,
                 model: str | None = "smollm2-135m") -> None:
        self.log_path = log_path
        self.extra_env = ({"ATTRIBOT_DEFAULT_MODEL": model} if model else {}) | (env or {})
        self.fresh_db = "ATTRIBOT_DB" not in self.extra_env
        self.db_path = Path(self.extra_env.get("ATTRIBOT_DB") or db_path or log_path.with_suffix(".runs.sqlite3"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.started_at = 0.0
        self.healthy_after = 0.0

    def __enter__(self) -> ServedApp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIBOT_") or k == "ATTRIBOT_CACHE"}
        env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", ATTRIBOT_DB=str(self.db_path))
        env.update(self.extra_env)
        cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
               "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
        if self.fresh_db:  # each served app starts with an empty run history
            for stale in (self.db_path, Path(f"{self.db_path}-wal"), Path(f"{self.db_path}-shm")):
                stale.unlink(missing_ok=True)
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in __exit__
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.rss = PeakRss(self.proc.pid)
        self.rss.start()
        try:
            self._wait_healthy(90)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.healthy_after = time.perf_counter() - self.started_at
        return self

    def _wait_healthy(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not become healthy in {seconds:.0f} s")
            time.sleep(0.2)

    @property
    def peak_rss_mb(self) -> float:
        return round(self.rss.peak / 2**20, 1)

    def __exit__(self, *exc) -> None:
        self.rss.stop.set()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
