"""Measure the served app on the real SmolLM2-135M: cold start, Run → heatmap per example, peak memory.

    python tests/browser/measure_app.py [--methods loo hierarchical] [--out test-artifacts/app-figures.json]

Not a test: it prints a table (times on a shared machine vary; the medians of a few runs are fairer).
Each example runs once per method in one browser session, in order, so only the first method of an
example includes generating the response; later ones reuse it, as the app does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pagetools import load_example, open_app, open_inputs  # noqa: E402
from served_app import CHROMIUM, CHROMIUM_ARGS, ROOT, ServedApp  # noqa: E402

from attribot_core.examples import EXAMPLES  # noqa: E402
from attribot_core.methods import METHODS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["loo", "hierarchical"], choices=list(METHODS))
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "app-figures.json")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    figures: dict = {"runs": []}
    with ServedApp(args.out.parent / "measure-server.log") as app, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_app(page, app.url)
        figures["server_healthy_s"] = round(app.healthy_after, 2)
        figures["cold_start_to_first_page_s"] = round(time.perf_counter() - app.started_at, 2)
        for example in EXAMPLES:
            load_example(page, example)
            for method in args.methods:
                open_inputs(page)
                page.get_by_role("combobox", name="Method").click()
                page.get_by_role("option", name=f"{method} · {METHODS[method].title}").click()
                page.wait_for_timeout(1500)
                start = time.perf_counter()
                page.get_by_role("button", name="Run", exact=True).click()
                first = example.context.split(".")[0]
                page.wait_for_function(
                    "([t, m]) => { const h = document.querySelector('.ab-heatmap'); const s = document.body.innerText;"
                    " return h && h.textContent.includes(t) && s.includes(m + ': done in'); }",
                    arg=[first, method], timeout=600_000)
                seconds = time.perf_counter() - start
                status = page.get_by_text(f"{method}: done in").first.inner_text()
                figures["runs"].append({"example": example.key, "method": method, "run_to_heatmap_s": round(seconds, 2),
                                        "status": status})
                print(f"{example.key:13s} {method:13s} {seconds:6.1f} s   {status}", flush=True)
        browser.close()
    figures["peak_rss_mb"] = app.peak_rss_mb
    print(f"cold start to first page {figures['cold_start_to_first_page_s']} s "
          f"(server healthy after {figures['server_healthy_s']} s); peak RSS {figures['peak_rss_mb']} MB")
    args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
