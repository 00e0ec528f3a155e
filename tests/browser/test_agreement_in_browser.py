"""The Dataset page's Agreement view in chromium (issue 17): two batches the test makes itself on the real
SmolLM2-135M, exact ``loo`` and ``hierarchical``, both carrying the faithfulness measures;
pick the reference and the batch, read the table with its intervals and the measures' table, see the
per-row scatter, open the row that disagrees most side by side, leave the page and come back.

Its own served app, pointed by ``ATTRIBOT_DB`` at the database the batch API wrote.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from pagetools import go_to, open_app, screenshot, wait_idle
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect
from served_app import ServedApp

from attribot_core.examples import EXAMPLES
from attribot_core.runs import ModelCache, RunStore
from attribot_core.runs.backends import LocalBackend
from attribot_core.runs.batch import BatchSettings, measure_batch, run_batch
from attribot_core.runs.inputs import rows_from_records

pytestmark = pytest.mark.browser

RESPONSE = "It was in 1874."
SMOLLM2 = "smollm2-135m"  # the browser tests' real model (see ServedApp)
LDS_MASKS = 4  # few masks keep the measuring short; LDS is then a Spearman over 4 points (enough to be shown)
EXPANDER = "Agreement: how closely batches track a reference batch"
INTERVAL = re.compile(r"^-?\d+\.\d{3} \[-?\d+\.\d{3}, -?\d+\.\d{3}\]$")  # mean [lo, hi]
MEASURE_COLUMNS = ["batch", "scores of", "rows measured", "top-1 log-prob drop (nats)", "top-3 log-prob drop (nats)",
                   "top-5 log-prob drop (nats)", "LDS"]


@pytest.fixture(scope="module")
def agreement_app(tmp_path_factory, artifacts):
    """Batches ``exact`` (loo) and ``fast`` (hierarchical, one paragraph kept) over the built-in examples with
    a fixed response, both measured (top-k drop, LDS), on SmolLM2-135M; then the app on their database."""
    db = tmp_path_factory.mktemp("agreement-browser") / "runs.sqlite3"
    store = RunStore(db)
    models = ModelCache()  # the model loads once for both batches and their measures
    rows = rows_from_records([{"id": e.key, "context": e.context, "question": e.question, "response": RESPONSE,
                               "gold": [e.context.split(". ")[1]]} for e in EXAMPLES])
    for name, settings in (("exact", BatchSettings(SMOLLM2, "loo")),
                           ("fast", BatchSettings(SMOLLM2, "hierarchical", params=(("keep_paragraphs", 1),)))):
        assert run_batch(store, name, rows, settings, LocalBackend(models)).done == len(EXAMPLES)
        assert measure_batch(store, name, ["topk", "lds"], models=models, masks=LDS_MASKS).measured == len(EXAMPLES)
    store.close()
    with ServedApp(artifacts / "agreement-server.log", env={"ATTRIBOT_DB": str(db)}) as app:
        yield app.url


def grid(table) -> list[list[str]]:
    """The cells of a Streamlit dataframe, header first, from the data grid's accessible table (the grid
    itself is drawn on a canvas)."""
    table.locator("table").first.wait_for(state="attached")  # visually hidden, there for screen readers
    return table.locator("table").first.evaluate(
        "t => [...t.querySelectorAll('tr')].map(r => [...r.children].map(c => c.innerText))")


def pick(page, label: str, option: str) -> None:
    """Choose ``option`` in the selectbox or multiselect ``label`` as a user does: open its list, click it."""
    box = page.get_by_role("combobox", name=label)
    choice = page.get_by_role("option", name=option, exact=True)
    for _ in range(3):  # a click while the page is still settling (an expander unfolding) may not open the list
        box.click()
        try:
            choice.wait_for(timeout=5_000)
            break
        except PlaywrightTimeoutError:
            page.keyboard.press("Escape")
    choice.click()
    if box.get_attribute("aria-expanded") == "true":  # a multiselect's list stays open for more choices
        page.keyboard.press("Escape")
    wait_idle(page)


def chosen(view):
    """The batches chosen in the view's multiselect: its chips."""
    return view.locator('[data-testid="stMultiSelect"] [data-tag]')


def open_view(page):
    """The Agreement expander, unfolded (it stays so across page switches, as do the choices inside)."""
    view = page.locator('[data-testid="stExpander"]').filter(has_text=EXPANDER).first
    if not page.get_by_role("combobox", name="Reference batch").is_visible():
        view.locator("summary").click()
        page.get_by_role("combobox", name="Reference batch").wait_for()
        wait_idle(page)
    return view


def test_agreement_view_shows_intervals_measures_scatter_and_opens_a_row_side_by_side(browser, agreement_app,
                                                                                     artifacts):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        open_app(page, agreement_app)  # app.py's navigation is up
        go_to(page, "Dataset")
        view = open_view(page)
        tables = view.locator('[data-testid="stDataFrame"]')

        # pick the reference and the batch: the other way round first, then exact loo against hierarchical
        pick(page, "Reference batch", "fast")
        page.wait_for_function("() => document.body.innerText.includes('Spearman against fast, per row')")
        expect(tables.first.locator('td[aria-colindex="1"]')).to_have_text(["exact"])  # the batch checked
        pick(page, "Reference batch", "exact")
        assert page.get_by_role("combobox", name="Reference batch").input_value() == "exact"
        page.wait_for_function("() => document.body.innerText.includes('Spearman against exact, per row')")
        view.get_by_role("button", name="Remove fast").click()
        view.get_by_text("Pick batches to compare with the reference.").wait_for()
        wait_idle(page)
        pick(page, "Batches to check against it", "fast")
        expect(chosen(view)).to_have_text(["fast"])
        page.wait_for_function("() => document.body.innerText.includes('Spearman against exact, per row')")
        expect(tables.first.locator('td[aria-colindex="1"]')).to_have_text(["fast"])

        # the table: means with their intervals
        header, *rows = grid(tables.first)
        assert header[:5] == ["batch", "method", "rows compared", "not compared", "Spearman"]
        (fast,) = rows
        assert fast[:4] == ["fast", "hierarchical", str(len(EXAMPLES)), "0"]
        assert INTERVAL.match(fast[4]), fast

        # the measures: the batch's and the reference's on the same rows
        assert tables.count() == 2
        header, *rows = grid(tables.nth(1))
        assert header == MEASURE_COLUMNS
        assert [row[:3] for row in rows] == [["fast", "the batch (hierarchical)", str(len(EXAMPLES))],
                                             ["fast", "the reference (exact)", str(len(EXAMPLES))]]
        for row in rows:
            assert all(INTERVAL.match(cell) or cell == "-" for cell in row[3:]), row
            assert INTERVAL.match(row[3]), row  # every row has at least one sentence: its top-1 drop exists
        assert not page.get_by_text("No faithfulness measures").count()

        # the per-row scatter: one point per compared row
        (chart,) = view.locator(".js-plotly-plot").all()
        assert "Spearman against exact, per row" in chart.inner_text()
        assert chart.locator(".scatterlayer .point").count() == len(EXAMPLES)

        # the row that disagrees most opens both results side by side
        worst = view.get_by_role("button", name=re.compile(r" · -?\d\.\d\d$")).first
        row_id = worst.inner_text().split(" · ")[0]
        assert row_id in {e.key for e in EXAMPLES}
        worst.click()
        view.get_by_text("Side by side").wait_for()
        wait_idle(page)
        assert view.locator(".ab-heatmap").count() == 2
        assert view.get_by_text("exact · loo").count() == 1 and view.get_by_text("fast · hierarchical").count() == 1
        assert view.get_by_text(f"{row_id} · question:").count() == 1
        screenshot(page, artifacts, "agreement-view.png")

        # another metric, another page, and back: the choices and the opened row are kept
        pick(page, "Metric per row", "top-1 overlap")
        page.wait_for_function("() => document.body.innerText.includes('top-1 overlap against exact, per row')")
        go_to(page, "History")
        go_to(page, "Dataset")
        page.get_by_role("combobox", name="Reference batch").wait_for()  # the view is still unfolded
        view = page.locator('[data-testid="stExpander"]').filter(has_text=EXPANDER).first
        page.wait_for_function("() => document.body.innerText.includes('top-1 overlap against exact, per row')")
        assert page.get_by_role("combobox", name="Reference batch").input_value() == "exact"
        expect(chosen(view)).to_have_text(["fast"])
        assert view.get_by_text(f"{row_id} · question:").count() == 1 and view.locator(".ab-heatmap").count() == 2
    finally:
        context.close()

    # nothing left 127.0.0.1
    web = [u for u in requests if urlsplit(u).scheme in ("http", "https", "ws", "wss")]
    assert web and all(urlsplit(u).hostname == "127.0.0.1" for u in web), sorted(set(web))
    assert not [u for u in requests if urlsplit(u).scheme not in ("http", "https", "ws", "wss", "data", "blob")]
