"""Steps shared by the browser tests and the measuring script: wait for a script run, open the app, switch pages,
open the inputs, load an example, start a slow run."""

from __future__ import annotations

RUN_TIMEOUT_MS = 300_000  # a shared 2-core machine can be slow; an idle one needs ~10 s
INPUTS = "Inputs: context, question, model and method"


def screenshot(page, artifacts, name: str, *, full: bool = True) -> None:
    """A screenshot of the whole page (Streamlit scrolls inside its main block, so grow the viewport);
    ``full=False`` keeps the 1400x1000 viewport: what a viewer sees without scrolling."""
    if not full:
        page.wait_for_timeout(600)
        page.screenshot(path=str(artifacts / name))
        return
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], [data-testid=\"stSidebar\"]')]"
        ".map(e => e.scrollHeight), 900)")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 9000)})
    page.wait_for_timeout(600)
    page.screenshot(path=str(artifacts / name))
    page.set_viewport_size({"width": 1400, "height": 1000})


def wait_idle(page) -> None:
    """Wait until Streamlit finished the current script run."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=RUN_TIMEOUT_MS)


def open_app(page, url: str) -> None:
    """Open the app at ``url`` (a new session) and wait until its navigation and the Attribute page are drawn."""
    page.goto(url)
    page.get_by_role("button", name="Run", exact=True).wait_for(timeout=120_000)


def go_to(page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    page.get_by_role("heading", name=title).first.wait_for()
    wait_idle(page)


def open_inputs(page) -> None:
    """Unfold the Attribute page's inputs (they fold away once a result exists).

    It waits for the current script run first: on a page still being drawn the context box is not visible
    yet though the inputs are open, and a click on their summary would then fold them away."""
    wait_idle(page)
    context = page.get_by_role("textbox", name="Context", exact=True)  # "Context" also labels a radio
    if not context.is_visible():
        page.locator("summary").filter(has_text=INPUTS).first.click()
        context.wait_for()
        wait_idle(page)


def load_example(page, example) -> None:
    """Click a built-in example's button and wait until its context is in the text box.

    The first script runs of a fresh session (URL sync, model load) can take minutes on a busy machine, so the
    click waits as long as a run may."""
    open_inputs(page)
    page.get_by_role("button", name=example.title).click(timeout=RUN_TIMEOUT_MS)
    page.wait_for_function("t => document.querySelector('textarea').value === t", arg=example.context)


def start_slow_run(page, example, response: str, method: str = "loo-naive · Exact LOO (naive)") -> None:
    """Start ``example``'s context four times over with ``method`` (the picker's option; loo-naive by default)
    and a fixed ``response``: ~50 forward passes (~15-30 s on an idle machine with loo-naive), long enough to
    reload, walk away or click Stop while it runs."""
    load_example(page, example)
    page.get_by_label("Context", exact=True).fill("\n\n".join([example.context] * 4))
    page.get_by_label("Context", exact=True).press("Control+Enter")
    page.get_by_label("Response (optional)").fill(response)
    page.get_by_label("Response (optional)").press("Control+Enter")
    wait_idle(page)
    page.get_by_role("combobox", name="Method").click()
    page.get_by_role("option", name=method).click()
    wait_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()


def fill_question_and_response(page, question: str, response: str) -> None:
    """Type the question and a fixed response (each committed as a user would: Enter, Ctrl+Enter)."""
    page.get_by_label("Question", exact=True).fill(question)
    page.get_by_label("Question", exact=True).press("Enter")
    page.get_by_label("Response (optional)").fill(response)
    page.get_by_label("Response (optional)").press("Control+Enter")
    wait_idle(page)


def span_titles(page) -> list[str]:
    """The tooltips of the result heatmap's spans (the browser's unescaped attribute values)."""
    return page.locator(".ab-heatmap .ab-span").evaluate_all("els => els.map(e => e.title)")
