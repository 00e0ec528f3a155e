"""How soon the app shows results: Run → first score on the live heatmap → full heatmap, in chromium.

    python bench/app_latency.py [--methods loo hierarchical] [--no-readme]

The served app (real default model, warm: one run first loads it) runs every built-in example per
method, twice: once generating the response and once on a fixed response (no generation). Times are
wall-clock in the browser, so they include the page's polling interval (0.5 s). Each server starts
with an empty run database, and every measured request is new, so nothing comes from the store.
Prints a markdown table, writes it to ``docs/bench_app.md`` and the README block ``app``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from pagetools import open_inputs  # noqa: E402
from served_app import CHROMIUM, CHROMIUM_ARGS, ServedApp  # noqa: E402

from attribot_core.examples import EXAMPLES  # noqa: E402
from bench.readme_block import write_block  # noqa: E402

FIRST_SCORE = ".ab-live .ab-span:not([data-sign='pending']), .ab-heatmap .ab-span"
TIMEOUT_MS = 600_000


def _set(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Control+Enter" if label != "Question" else "Enter")


def _idle(page) -> None:
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=TIMEOUT_MS)


def _measure(page, context: str, question: str, response: str, method: str) -> tuple[float, float]:
    """Seconds from the Run click to the first score shown, and to the final heatmap."""
    open_inputs(page)  # they fold away once a result exists
    _set(page, "Context", context)
    _set(page, "Question", question)
    _set(page, "Response (optional)", response)
    page.get_by_role("combobox", name="Method").click()
    page.get_by_role("option", name=method, exact=False).first.click()
    _idle(page)
    page.evaluate("() => document.querySelectorAll('.ab-heatmap').forEach(e => e.remove())")  # the last result
    start = time.perf_counter()
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator(FIRST_SCORE).first.wait_for(timeout=TIMEOUT_MS)
    first = time.perf_counter() - start
    page.locator(".ab-heatmap .ab-span").first.wait_for(timeout=TIMEOUT_MS)
    full = time.perf_counter() - start
    _idle(page)
    return first, full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["loo", "hierarchical"])
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    rows = []
    with ServedApp(out / "bench-app-server.log", out / "bench-app-runs.sqlite3") as app, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url)
        page.get_by_role("button", name="Run", exact=True).wait_for(timeout=120_000)
        warm = EXAMPLES[0]
        _measure(page, warm.context, "Warm-up: " + warm.question, "", "loo ·")  # loads the model
        for method in args.methods:
            for example in EXAMPLES:
                for label, response in (("generated", ""), ("fixed", "The answer is in the context.")):
                    question = f"{example.question} ({method}, {label})"  # a new request every time
                    first, full = _measure(page, example.context, question, response, f"{method} ·")
                    rows.append((example.key, method, label, first, full))
                    print(f"{example.key:<13} {method:<13} {label:<9} first {first:6.2f} s  full {full:6.2f} s",
                          file=sys.stderr)
        browser.close()
    load = os.getloadavg()[0]
    lines = [
        f"Served app on the default model (SmolLM2-135M, warm), chromium at 1400×1000, {os.cpu_count()} cores, "
        f"1-minute load average {load:.1f} at the end. Seconds from the Run click (page polls every 0.5 s):",
        "",
        "| example | method | response | Run → first score | Run → full heatmap |",
        "|---|---|---|---:|---:|",
        *[f"| {k} | {m} | {r} | {a:.2f} | {b:.2f} |" for k, m, r, a, b in rows],
        "",
        f"Goal: first score ≤ 2 s. Met in {sum(a <= 2 for *_, a, _ in rows)} of {len(rows)} runs "
        f"(median {sorted(a for *_, a, _ in rows)[len(rows) // 2]:.2f} s).",
    ]
    text = "\n".join(lines)
    print(text)
    (ROOT / "docs" / "bench_app.md").write_text(text + "\n", encoding="utf-8")
    if not args.no_readme:
        write_block("app", text)


if __name__ == "__main__":
    main()
