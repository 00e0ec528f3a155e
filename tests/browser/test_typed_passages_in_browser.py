"""Passages typed into the Attribute page's grid in chromium, as a user without a file would: add a row from
the grid's toolbar, double-click each cell and type its id, title and text, move a passage up, run on a
fixed response, and the heatmap names the typed sources in the order shown; after a page switch the grid
still holds them.

The steps are one visit on one tab, in file order, on the real SmolLM2-135M.
"""

from __future__ import annotations

import pytest
from pagetools import (
    INPUTS,
    RUN_TIMEOUT_MS,
    fill_question_and_response,
    go_to,
    open_app,
    screenshot,
    span_titles,
    wait_idle,
)

pytestmark = pytest.mark.browser

TYPED = [("p-1", "Ferry timetable", "The ferry leaves at noon. It returns at six in the evening."),
         ("p-2", "Bakery <i>notice</i>", "The bakery sells rye bread on Fridays.")]
QUESTION = "When does the bakery sell rye bread?"
RESPONSE = "On Fridays."
# Streamlit's data grid: a 35 px header, 35 px rows; x of each column's middle from the grid's left edge
# (row markers 33 px, then the id, title and text columns at widths small, medium and large)
ROW_PX, CELL_X = 35, (33 + 37, 33 + 75 + 100, 33 + 75 + 200 + 60)


def type_row(page, row: int, values: tuple[str, str, str]) -> None:
    """Add a row with the grid's "Add row" button, then open each cell's editor and type its value."""
    grid = page.locator('[data-testid="stDataFrame"]').first  # the page's only grid before a result
    grid.hover()  # the toolbar shows on hover
    page.get_by_role("button", name="Add row").click()
    wait_idle(page)
    for x, value in zip(CELL_X, values, strict=True):
        box = grid.bounding_box()
        page.mouse.dblclick(box["x"] + x, box["y"] + ROW_PX * (row + 1) + ROW_PX / 2)
        editor = page.locator("textarea.gdg-input")  # the cell's editor, opened over the grid
        editor.wait_for()
        editor.fill(value)
        editor.press("Enter")
        editor.wait_for(state="detached")
        wait_idle(page)


def move_options(page, pick: int = 0) -> list[str]:
    """The "Move passage" choices (the passages the app holds, in order, each by its title); the choice
    ``pick`` is then chosen, which also closes the list."""
    page.locator(".st-key-passage_to_move").click()
    options = page.get_by_role("option")
    options.first.wait_for()
    shown = options.all_inner_texts()
    options.nth(pick).click()
    wait_idle(page)
    return shown


def test_passages_typed_into_the_grid_are_attributed_as_named_sources(page, app_server, artifacts):
    open_app(page, app_server[0])
    wait_idle(page)
    page.locator(".st-key-in_context_mode").get_by_text("Passages", exact=True).click()
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    wait_idle(page)
    for row, values in enumerate(TYPED):
        type_row(page, row, values)

    assert move_options(page, pick=1) == ["1: Ferry timetable", "2: Bakery <i>notice</i>"]  # typed, as typed
    # the bakery passage first (Streamlit also draws a hidden copy of a button with help: the first is shown)
    page.locator(".st-key-passage_up button").first.click()
    wait_idle(page)
    assert move_options(page) == ["1: Bakery <i>notice</i>", "2: Ferry timetable"]

    fill_question_and_response(page, QUESTION, RESPONSE)
    screenshot(page, artifacts, "typed-passages-01-grid.png")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Done in").first.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    titles = span_titles(page)
    assert len(titles) == 3  # the ferry passage's two sentences and the bakery's one
    assert sum("(source 1 · Bakery <i>notice</i>)" in t for t in titles) == 1, titles
    assert sum("(source 2 · Ferry timetable)" in t for t in titles) == 2, titles
    assert page.locator('[data-testid="stMain"] i', has_text="notice").count() == 0  # the title is text
    screenshot(page, artifacts, "typed-passages-02-heatmap.png")


def test_the_typed_passages_are_still_in_the_grid_after_a_page_switch(page):
    go_to(page, "History")
    go_to(page, "Attribute")
    page.locator("summary").filter(has_text=INPUTS).first.click()  # the inputs fold away once a result exists
    page.locator(".st-key-passage_to_move").wait_for()
    wait_idle(page)
    assert move_options(page) == ["1: Bakery <i>notice</i>", "2: Ferry timetable"]
    page.locator(".ab-heatmap .ab-span").first.wait_for(timeout=RUN_TIMEOUT_MS)  # and the result is still shown
