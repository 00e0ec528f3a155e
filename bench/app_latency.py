"""How soon the app shows results: Run → first response token (when generating) → first score on the live
heatmap → whole heatmap coloured (by the one-pass estimate, where the model has weights) → full heatmap,
in chromium.

    python bench/app_latency.py [--model SPEC] [--methods loo hierarchical] [--examples lighthouse] [--no-readme]
    python bench/app_latency.py --pause 3      # a user who reads the inputs for 3 s before Run (block app-pause)
    python bench/app_latency.py --typing 3     # a user who types the question for 3 s after pasting the context
                                               # into an empty form (block app-typing)
    python bench/app_latency.py --no-prefill   # the baseline: the model idle until Run (prints, writes no file)

The served app (real default model, or ``--model``'s as the picker's default; warm: one run first loads
it) runs every built-in example per
method, twice: once generating the response and once on a fixed response (no generation). Times are
wall-clock in the browser, so they include the page's polling interval (0.5 s). Each server starts
with an empty run database, and every measured request is new, so nothing comes from the store.
Prints a markdown table; on the app's default model it writes it to ``docs/bench_app.md`` and the README
block ``app``, on another model to ``docs/bench_app-MODEL.md`` and the block ``app-MODEL``.

While the inputs are on the page, the app's idle worker computes their prompt ahead (``ATTRIBOT_PREFILL``):
how much of it is done at the Run click depends on how long the inputs were shown, so every row says so.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from pagetools import open_inputs  # noqa: E402
from served_app import CHROMIUM, CHROMIUM_ARGS, ServedApp  # noqa: E402

from attribot_core import DEFAULT_MODEL  # noqa: E402
from attribot_core.examples import EXAMPLES  # noqa: E402
from bench.readme_block import write_block  # noqa: E402
from studio.runs import POLL_S  # noqa: E402

TIMEOUT_MS = 600_000

# Watches the page from inside chromium (every 20 ms) so no Python round trip adds to the times: the
# Run click, the first generated text streamed onto the live panel (``.ab-streaming-text``, not empty),
# the whole answer there (``.ab-streaming`` no longer ``data-generating``),
# the first scored sentence on the live heatmap (``.ab-live``, a span no longer "pending"), the whole
# live heatmap coloured (every span either exactly scored or drawn as the estimate, ``data-kind``),
# and the final heatmap (``.ab-heatmap``) once the run's progress bar, seen at least once, is gone.
# (The previous result is not drawn while a run goes; it was once, hence the progress bar's check.)
WATCH = """() => {
  const w = {t0: null, token: null, answered: null, first: null, whole: null, bar: null, full: null};
  window.__latency = w;
  document.addEventListener('click', e => {
    const b = e.target.closest('button');
    if (w.t0 === null && b && b.innerText.trim() === 'Run') w.t0 = performance.now();
  }, true);
  const timer = setInterval(() => {
    if (w.t0 === null) return;
    const now = performance.now();
    const bar = document.querySelector('[data-testid="stMain"] [data-testid="stProgress"]');
    if (bar && w.bar === null) w.bar = now;
    const said = document.querySelector('.ab-streaming-text');
    if (w.token === null && said && said.textContent.trim()) w.token = now;
    const answer = document.querySelector('.ab-streaming');
    if (w.answered === null && answer && answer.dataset.generating === 'false') w.answered = now;
    if (w.first === null && document.querySelector(".ab-live .ab-span:not([data-sign='pending'])")) w.first = now;
    const live = [...document.querySelectorAll('.ab-live .ab-span')];
    const coloured = s => s.dataset.kind === 'estimate' || s.dataset.sign !== 'pending';
    if (w.whole === null && live.length && live.every(coloured)) w.whole = now;
    if (w.bar !== null && !bar && document.querySelector('.ab-heatmap .ab-span')) {
      w.full = now;
      if (w.first === null) w.first = now;  // it ended between two polls: its first score came with it
      if (w.whole === null) w.whole = now;
      clearInterval(timer);
    }
  }, 20);
}"""


def set_input(page, label: str, value: str) -> None:
    """Type ``value`` into the text box ``label`` and submit it as a user does (the question with Enter)."""
    box = page.get_by_role("textbox", name=label, exact=True)
    box.fill(value)
    box.press("Control+Enter" if label != "Question" else "Enter")


def wait_idle(page) -> None:
    """Wait until the page's current script run has ended (a model load may take minutes)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=TIMEOUT_MS)


def _measure(page, context: str, question: str, response: str, method: str, pause: float = 0.0,
             typing: float = 0.0) -> tuple[float | None, float, float, float, float | None, float, float | None]:
    """Seconds from the Run click to the first generated text shown (None on a fixed response, or when
    the run ended between two polls), to the first score shown, to the whole heatmap coloured (estimate
    or exact) and to the final heatmap, the generation's seconds as the run summary says (None on a
    fixed response), and the seconds from the question's Enter to the Run click (the inputs on screen,
    which the app's idle worker prefills meanwhile: ``ATTRIBOT_PREFILL``), and from the whole answer on
    screen to the whole heatmap (None when no live panel showed the answer complete: a fixed response, or a
    run that ended between two polls); ``pause``: seconds to wait before the Run click, as a user reading
    the inputs does; ``typing``: the question box emptied first, seconds between the context and the
    question, as a user typing the question after pasting the context."""
    open_inputs(page)  # they fold away once a result exists
    if typing:
        set_input(page, "Question", "")
    set_input(page, "Context", context)
    page.wait_for_timeout(typing * 1000)
    set_input(page, "Question", question)
    asked = time.perf_counter()
    set_input(page, "Response (optional)", response)
    page.get_by_role("combobox", name="Method").click()
    page.get_by_role("option", name=method, exact=False).first.click()
    wait_idle(page)
    page.wait_for_timeout(pause * 1000)
    page.evaluate(WATCH)
    shown = time.perf_counter() - asked
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("() => window.__latency.full !== null", timeout=TIMEOUT_MS, polling=100)
    w = page.evaluate("() => window.__latency")
    wait_idle(page)
    print(f"  (progress bar after {(w['bar'] - w['t0']) / 1000:.2f} s)", file=sys.stderr)
    said = re.search(r"generation ([0-9.]+) s", page.locator('[data-testid="stMain"]').inner_text())
    token = (w["token"] - w["t0"]) / 1000 if w["token"] is not None else None
    page_gap = max(w["whole"] - w["answered"], 0) / 1000 if w["answered"] is not None else None
    return (token, (w["first"] - w["t0"]) / 1000, (w["whole"] - w["t0"]) / 1000, (w["full"] - w["t0"]) / 1000,
            float(said[1]) if said else None, shown, page_gap)


def _s(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.2f}"


def _median(values: list[float]) -> float:
    return values[len(values) // 2] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the model the served app runs (default: %(default)s)")
    parser.add_argument("--methods", nargs="+", default=["loo", "hierarchical"])
    parser.add_argument("--examples", nargs="+", metavar="KEY",
                        help="only these built-in examples: a quick check that prints its table and writes no file")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds between the last input and the Run click (default 0: as fast as the script "
                             "goes); a table with a pause goes to its own block, app-pause")
    parser.add_argument("--typing", type=float, default=0.0,
                        help="seconds between the context and the question, the question box emptied first (default 0);"
                             " a table with typing goes to its own block, app-typing")
    parser.add_argument("--no-prefill", action="store_true",
                        help="serve with ATTRIBOT_PREFILL=0 (the model idle until Run): the baseline; writes no file")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = ROOT / "test-artifacts"
    out.mkdir(exist_ok=True)
    rows = []
    with ServedApp(out / "bench-app-server.log", out / "bench-app-runs.sqlite3",
                   env={"ATTRIBOT_DEFAULT_MODEL": args.model, "ATTRIBOT_PREFILL": "0" if args.no_prefill else "1"}
                   ) as app, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url)
        page.get_by_role("button", name="Run", exact=True).wait_for(timeout=120_000)
        warm = EXAMPLES[0]
        _measure(page, warm.context, "Warm-up: " + warm.question, "", "loo ·")  # loads the model
        for method in args.methods:
            for example in [e for e in EXAMPLES if not args.examples or e.key in args.examples]:
                for label, response in (("generated", ""), ("fixed", "The answer is in the context.")):
                    question = f"{example.question} ({method}, {label})"  # a new request every time
                    token, first, whole, full, gen, shown, gap = _measure(
                        page, example.context, question, response, f"{method} ·", args.pause, args.typing)
                    rows.append((example.key, method, label, token, first, whole, full, gen, shown, gap))
                    print(f"{example.key:<13} {method:<13} {label:<9} token {_s(token):>5} s  first {first:6.2f} s"
                          f"  whole {whole:6.2f} s  full {full:6.2f} s  generation {gen or 0:5.2f} s"
                          f"  inputs shown {shown:5.2f} s  answer on screen → whole {_s(gap)} s", file=sys.stderr)
        browser.close()
    load = os.getloadavg()[0]
    fixed = sorted(r[4] for r in rows if r[7] is None)
    whole = sorted(r[5] for r in rows if r[7] is None)
    after = sorted(r[4] - r[7] for r in rows if r[7] is not None)
    whole_after = sorted(r[5] - r[7] for r in rows if r[7] is not None)
    shown = sorted(r[8] for r in rows)
    tokens = sorted(r[3] if r[3] is not None else float("inf") for r in rows if r[7] is not None)
    gaps = sorted(r[9] for r in rows if r[9] is not None)
    which = f"the default model, {args.model}" if args.model == DEFAULT_MODEL else args.model
    lines = [
        f"Served app on {which} (warm), chromium at 1400×1000, {os.cpu_count()} cores, "
        f"1-minute load average {load:.1f} at the end, prefill {'off' if args.no_prefill else 'on'}"
        + (f", the question typed for {args.typing:g} s after the context, into an empty box" if args.typing else "")
        + ". Seconds from "
        f"the Run click, measured in the page (it polls the run every {POLL_S} s); *generation* is the run's own "
        "figure; *inputs shown* the seconds from the question's Enter to the Run click (the script sets the "
        "response and the method between them), during which the idle worker prefills the prompt:",
        "",
        "| example | method | response | inputs shown | Run → first response token | Run → first score "
        "| Run → whole heatmap (estimate) | Run → full heatmap | generation | first score − generation "
        "| whole heatmap − generation | whole answer on screen → whole heatmap |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *[f"| {k} | {m} | {r} | {sh:.2f} | {_s(t)} | {a:.2f} | {e:.2f} | {b:.2f} | {_s(g)} | "
          f"{_s(a - g if g is not None else None)} | {_s(e - g if g is not None else None)} | {_s(gap)} |"
          for k, m, r, t, a, e, b, g, sh, gap in rows],
        "",
        f"Inputs shown before Run: {shown[0]:.2f}–{shown[-1]:.2f} s.",
        f"Goal: first response token ≤ 1 s when generating: met in {sum(x <= 1 for x in tokens)} of {len(tokens)} "
        f"(median {_median(tokens):.2f} s; a run that ended between two polls, its text never streamed, "
        "counts as missed).",
        f"Goal: first score ≤ 2 s. Fixed responses: met in {sum(x <= 2 for x in fixed)} of {len(fixed)} "
        f"(median {_median(fixed):.2f} s). Generated responses: after the generation, met in "
        f"{sum(x <= 2 for x in after)} of {len(after)} (median {_median(after):.2f} s).",
        f"Goal: whole heatmap (estimate) ≤ 1.5 s on fixed responses: met in {sum(x <= 1.5 for x in whole)} of "
        f"{len(whole)} (median {_median(whole):.2f} s; every span coloured, by its one-pass estimate until its "
        "exact score lands). Generated responses: whole heatmap after the generation, median "
        f"{_median(whole_after):.2f} s; after the whole answer was on screen "
        + (f"{gaps[0]:.2f}–{gaps[-1]:.2f} s (median {_median(gaps):.2f} s, {len(gaps)} runs; a run that "
           "ended between two polls never showed its answer complete on the live panel)." if gaps else
           "not seen (every run ended between two polls)."),
    ]
    text = "\n".join(lines)
    print(text)
    if args.examples or args.no_prefill:
        return
    block = (("app" if args.model == DEFAULT_MODEL else f"app-{args.model}") + ("-pause" if args.pause else "")
             + ("-typing" if args.typing else ""))
    (ROOT / "docs" / f"bench_{block}.md").write_text(text + "\n", encoding="utf-8")
    if not args.no_readme:
        write_block(block, text)


if __name__ == "__main__":
    main()
