"""Where the time between a Run click and the first generated token on screen goes, in the served app.

    python bench/trace_run.py [--model SPEC] [--runs 3] [--chrome-trace FILE]

Serves the app (warm: one run first loads the model), then for each built-in example in turn: fills the
inputs (a new question each time, generated response), clicks Run and watches, from this process, the
websocket frames the page receives (the first delta after the click is the page's first drawing of the
run), the CPU time of the server (with its children) and of every chromium process every 50 ms, and, in
the page, when the first generated text is on screen. ``--chrome-trace`` also records chromium's own
trace of the last run (main-thread tasks, animations; open it in chrome://tracing or Perfetto).
Diagnostics for ``bench/app_latency.py``'s first-token figure, which is the one to report.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from pagetools import open_inputs  # noqa: E402
from served_app import CHROMIUM, CHROMIUM_ARGS, ServedApp  # noqa: E402

from attribot_core import DEFAULT_MODEL  # noqa: E402
from attribot_core.examples import EXAMPLES  # noqa: E402
from bench.app_latency import WATCH, set_input, wait_idle  # noqa: E402


class CpuSampler(threading.Thread):
    """CPU seconds of each named group of processes, every ``every`` seconds, until ``stop`` is set."""

    def __init__(self, groups, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.groups, self.every = groups, every
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.stop.is_set():
            row = {}
            for name, procs in self.groups().items():
                total = 0.0
                for p in procs:
                    try:
                        c = p.cpu_times()
                        total += c.user + c.system
                    except psutil.Error:
                        pass
                row[name] = total
            self.samples.append((time.perf_counter(), row))
            time.sleep(self.every)

    def shares(self, t0: float) -> list[str]:
        """One line per interval: seconds after ``t0`` and each group's share of a core, in %."""
        lines = []
        for (a, before), (b, after) in zip(self.samples, self.samples[1:], strict=False):
            cells = " ".join(f"{k} {100 * (after[k] - before.get(k, 0.0)) / (b - a):4.0f} %" for k in after)
            lines.append(f"  {a - t0:+.2f} s to {b - t0:+.2f} s: {cells}")
        return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--runs", type=int, default=3, help="measured runs, over the built-in examples in turn")
    parser.add_argument("--chrome-trace", type=Path, help="write chromium's trace of the last run here")
    args = parser.parse_args()
    import psutil
    from playwright.sync_api import sync_playwright

    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    with ServedApp(out / "trace-run-server.log", out / "trace-run.sqlite3",
                   env={"ATTRIBOT_DEFAULT_MODEL": args.model}) as app, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        frames: list[float] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda _: frames.append(time.perf_counter())))
        page.goto(app.url)
        page.get_by_role("button", name="Run", exact=True).wait_for(timeout=120_000)
        server = psutil.Process(app.proc.pid)

        def groups():
            return {"server": [server, *server.children(recursive=True)],
                    "chromium": [q for q in psutil.process_iter() if "chrom" in q.name()]}

        for i in range(args.runs + 1):  # the first loads the model
            example = EXAMPLES[i % len(EXAMPLES)]
            open_inputs(page)
            set_input(page, "Context", example.context)
            set_input(page, "Question", f"{example.question} (trace {time.time_ns()})")
            set_input(page, "Response (optional)", "")
            wait_idle(page)
            page.evaluate(WATCH)
            last = i == args.runs
            if last and args.chrome_trace:
                browser.start_tracing(page=page, path=str(args.chrome_trace), categories=[
                    "devtools.timeline", "disabled-by-default-devtools.timeline", "blink", "cc", "viz"])
            sampler = CpuSampler(groups)
            sampler.start()
            time.sleep(0.1)
            frames.clear()
            t0 = time.perf_counter()
            page.get_by_role("button", name="Run", exact=True).click()
            page.wait_for_function("() => window.__latency.token !== null", timeout=600_000, polling=20)
            time.sleep(0.2)
            sampler.stop.set()
            sampler.join()
            if last and args.chrome_trace:
                browser.stop_tracing()
            w = page.evaluate("() => window.__latency")
            token = (w["token"] - w["t0"]) / 1000
            drawn = [t - t0 for t in frames if t - t0 > 0.1]  # the click's own acknowledgement comes at once
            if i:
                print(f"{example.key}: first token on screen {token:.2f} s after Run; the page's first drawing of "
                      f"the run arrived at {drawn[0]:.2f} s" if drawn else "(no frame)")
                print("\n".join(sampler.shares(t0)))
            page.wait_for_function("() => window.__latency.full !== null", timeout=600_000, polling=100)
            wait_idle(page)
        browser.close()


if __name__ == "__main__":
    main()
