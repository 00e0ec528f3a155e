"""A new user's first visit in a real browser, on the real SmolLM2-135M: an example run,
the colour scale, inputs that survive a walk through every page, methods compared, crafted names and damaged
or saved result files, right-to-left text, a cut-off response, and no host asked but the app's own.

Every request the page makes during the whole visit (all pages, runs, a comparison, the lesson, exports,
uploads) is recorded; the last step fails on any host but the app's own. The steps share one tab (the visit)
and save screenshots (1400x1000) to the artifacts folder; a step that needs a saved result file gets one from
the ``saved_result`` fixture (the engine writes it), never from a file an earlier step downloaded. Each action
that makes the app rerun waits until the server reports that rerun finished (:func:`after_rerun`), not for a
fixed time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from google.protobuf.message import DecodeError
from pagetools import RUN_TIMEOUT_MS, go_to, load_example, open_app, open_inputs, screenshot, wait_idle
from playwright.sync_api import expect
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from attribot_core import AttributionResult, attribute
from attribot_core.examples import get_example

pytestmark = pytest.mark.browser

QUILL = get_example("quillfeather")
MARKDOWN = "[x](http://host/) ![i](http://host/p.png)"


@pytest.fixture(scope="module")
def visit(browser, app_server):
    """One tab for the module and every request it makes (URLs, in order)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.full_runs = []  # one entry per whole script run the server finished (see after_rerun)
    tab.on("websocket", lambda ws: ws.on("framereceived", lambda p: _count_full_runs(p, tab.full_runs)))
    yield tab, requests
    context.close()


@pytest.fixture
def page(visit):
    return visit[0]


@pytest.fixture(scope="module")
def saved_result(tmp_path_factory) -> Path:
    """A result file as the app saves it: the Quillfeather example on SmolLM2-135M, made by the engine."""
    result = attribute(QUILL.context, QUILL.question, response="Mira Orrin founded the workshop.",
                       model="smollm2-135m")
    path = tmp_path_factory.mktemp("saved") / "quillfeather.json"
    path.write_text(result.to_json())
    return path


def _count_full_runs(payload: bytes | str, finished: list[int]) -> None:
    """Websocket frame listener: append to ``finished`` when the server says a whole script run finished."""
    if isinstance(payload, str):
        return
    msg = ForwardMsg()
    try:
        msg.ParseFromString(payload)
    except DecodeError:
        return
    if msg.WhichOneof("type") == "script_finished" and msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
        finished.append(len(finished) + 1)


def after_rerun(page, action: Callable[[], object], timeout_s: float = 60) -> None:
    """Do ``action`` (one that makes the app rerun) and wait until the server has finished a whole script run
    after it (it says so on the websocket), then until the page is idle.

    ``wait_idle`` alone can return before the rerun has even started (its status widget shows late), and the
    next step then acts on a page that is about to be redrawn.
    """
    seen = len(page.full_runs)
    action()
    deadline = time.monotonic() + timeout_s
    while len(page.full_runs) <= seen:
        assert time.monotonic() < deadline, f"no script run finished within {timeout_s:.0f} s of the action"
        page.wait_for_timeout(50)  # lets Playwright deliver the websocket frames it has received
    wait_idle(page)


def unfold_inputs(page) -> None:
    """Open the Attribute page's inputs and wait for the rerun that opening causes (the expander is owned)."""
    if not page.get_by_label("Context", exact=True).is_visible():
        after_rerun(page, lambda: open_inputs(page))


def run_and_wait(page) -> None:
    after_rerun(page, page.get_by_role("button", name="Run", exact=True).click, RUN_TIMEOUT_MS / 1000)


def heatmap_texts(page) -> list[str]:
    return page.locator(".ab-heatmap .ab-span").all_inner_texts()


def segment_texts(saved: Path) -> list[str]:
    return [s["text"] for s in json.loads(saved.read_text())["sentences"]]


def commit(page, box, value: str, key: str = "Enter") -> None:
    """Type ``value`` into ``box`` once the app is idle, commit it, and wait for the rerun it causes."""
    wait_idle(page)
    box.fill(value)
    after_rerun(page, lambda: box.press(key))


def set_number(page, key: str, value: int) -> None:
    commit(page, page.locator(f".st-key-{key} input"), str(value))


def upload_result(page, name: str, data: bytes) -> None:
    after_rerun(page, lambda: page.locator('[data-testid="stSidebar"] input[type="file"]').set_input_files(
        files=[{"name": name, "mimeType": "application/json", "buffer": data}]))


# -- 2 and 13: an example runs, the result is in view, its evidence outlined ----------------------------------
def test_an_example_run_puts_the_result_in_view_with_its_evidence_outlined(page, app_server, artifacts):
    url, _ = app_server
    open_app(page, url)
    load_example(page, QUILL)
    wait_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator(".ab-heatmap .ab-span").first.wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    first = page.locator(".ab-heatmap .ab-span").first.bounding_box()
    assert first["y"] + first["height"] < 1000, f"the heatmap's text starts {first['y']:.0f} px down"  # was ~1,400
    assert page.locator(".ab-response").bounding_box()["y"] < 700
    screenshot(page, artifacts, "10-result-in-view.png", full=False)
    outlined = page.locator(".ab-heatmap .ab-span.ab-gold")
    assert outlined.all_inner_texts() == list(QUILL.evidence)
    assert outlined.first.evaluate("e => getComputedStyle(e).outlineStyle") == "dashed"
    response = page.locator(".ab-response").inner_text()
    known = page.locator(".ab-known")
    if "mira orrin" not in response.lower():  # the 135M model's usual, wrong, answer
        assert "This answer is known to be wrong" in known.inner_text() and "Mira Orrin" in known.inner_text()
    screenshot(page, artifacts, "11-result-evidence.png")


# -- 3: the colour scale ---------------------------------------------------------------------------------------
def test_the_colour_scale_can_be_changed_and_the_legend_names_it(page, artifacts):
    def strengths() -> list[float]:
        return page.locator(".ab-heatmap .ab-span").evaluate_all(
            "els => els.map(e => { const c = getComputedStyle(e).backgroundColor.match(/\\d+/g).map(Number);"
            " return 255 - Math.min(...c); })")

    legend = page.locator(".ab-scale-name")
    assert "signed square root" in legend.inner_text()  # the app's default
    sqrt = strengths()
    page.locator(".st-key-in_scale").get_by_text("linear", exact=True).click()
    page.wait_for_function("() => document.querySelector('.ab-scale-name').innerText.includes('linear')")
    wait_idle(page)
    linear = strengths()
    assert sum(sqrt) > sum(linear)  # small scores are stronger on the square-root scale
    screenshot(page, artifacts, "12-scale-linear.png")
    page.locator(".st-key-in_scale").get_by_text("rank", exact=True).click()
    page.wait_for_function("() => document.querySelector('.ab-scale-name').innerText.includes('rank')")
    wait_idle(page)
    screenshot(page, artifacts, "13-scale-rank.png")


# -- 1: inputs survive Attribute -> Drill-down -> Compare -> Learn -> Attribute ---------------------------------
def test_inputs_survive_a_walk_through_every_page(page, app_server, artifacts):
    unfold_inputs(page)
    paragraphs = page.locator(".st-key-in_param_loo_paragraphs input")
    expect(paragraphs).to_be_checked()
    after_rerun(page, page.locator(".st-key-in_param_loo_paragraphs label").click)
    expect(paragraphs).not_to_be_checked()
    page.locator("summary").filter(has_text="Advanced").click()
    set_number(page, "in_max_new_tokens", 40)
    commit(page, page.get_by_label("Question", exact=True), "Who founded the workshop?")

    go_to(page, "Drill-down")
    result = AttributionResult.from_json(_current_json(page))
    top = max(result.paragraphs, key=lambda p: p.score).index
    page.locator(".js-plotly-plot").nth(1).get_by_text(f"Sentences of paragraph {top + 1}").wait_for()
    screenshot(page, artifacts, "14-drilldown.png")
    go_to(page, "Compare methods")
    go_to(page, "Learn")
    go_to(page, "Attribute")
    unfold_inputs(page)
    assert page.get_by_label("Context", exact=True).input_value() == QUILL.context
    assert page.get_by_label("Question", exact=True).input_value() == "Who founded the workshop?"
    assert not page.locator(".st-key-in_param_loo_paragraphs input").is_checked()  # did not flip back on
    page.locator("summary").filter(has_text="Advanced").click()
    assert page.locator(".st-key-in_max_new_tokens input").input_value() == "40"
    method = page.locator(".st-key-in_method")
    shown = method.text_content() + " ".join(method.locator("input").evaluate_all("els => els.map(e => e.value)"))
    assert "loo · Exact LOO (KV-cache reuse)" in shown
    assert page.get_by_text("Leave each sentence out; reuse the cached").is_visible()  # loo's caption with loo
    screenshot(page, artifacts, "15-inputs-after-walk.png")


def _current_json(page) -> str:
    """The current result as the app downloads it."""
    with page.expect_download() as info:
        page.get_by_role("button", name="Download JSON (full result)").click()
    return Path(info.value.path()).read_text()


# -- 10: one colour and order per method on Compare and Learn -----------------------------------------------------
def _legend_and_bars(page, chart) -> list[tuple[str, str]]:
    """(x label, fill colour) of the first bar trace of plotly chart ``chart``."""
    return chart.evaluate(
        "el => { const t = el.data.find(d => d.type === 'bar'); "
        "return t.x.map((x, i) => [x, Array.isArray(t.marker.color) ? t.marker.color[i] : t.marker.color]); }")


def test_methods_have_one_colour_and_order_on_compare_and_learn(page, artifacts):
    go_to(page, "Compare methods")
    page.get_by_role("button", name="Run comparison").click()
    page.get_by_text("Agreement with exact LOO and cost").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    charts = page.locator(".js-plotly-plot")
    charts.nth(2).wait_for()
    compare_bars = _legend_and_bars(page, charts.nth(1))
    pareto = charts.nth(2).evaluate("el => el.data.filter(d => d.mode && d.mode.includes('markers'))"
                                    ".map(d => [d.name, d.marker.color])")
    scatter = charts.nth(0).evaluate("el => el.data.slice(1).map(d => [d.name.split(' ')[0], d.marker.color])")
    screenshot(page, artifacts, "16-compare.png")
    assert [m for m, _ in compare_bars] == ["loo", "loo-naive", "hierarchical"]
    colour = dict(compare_bars)
    assert dict(pareto) == {m: colour[m] for m, _ in pareto} and [m for m, _ in pareto] == ["loo", "loo-naive",
                                                                                           "hierarchical"]
    assert all(colour[m] == c for m, c in scatter)
    go_to(page, "Learn")
    page.get_by_role("button", name="Run the live example").click()
    page.get_by_role("heading", name="What each trick saved").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    learn_bars = _legend_and_bars(page, page.locator(".js-plotly-plot").first)
    screenshot(page, artifacts, "17-learn.png")
    assert learn_bars == compare_bars  # same methods, same order, same colours


# -- 5 and 4: crafted names and damaged files -------------------------------------------------------------------
def test_a_crafted_file_name_and_model_name_are_shown_as_text(page, artifacts):
    go_to(page, "Attribute")
    upload_result(page, f"{MARKDOWN}.json", b'{"not": "a result"}')
    message = page.locator('[data-testid="stSidebar"] .ab-message[data-kind="error"]')
    assert f"Could not open '{MARKDOWN}.json'" in message.inner_text()
    unfold_inputs(page)
    page.get_by_role("combobox", name="Model", exact=True).click()
    page.get_by_role("option", name="Other model (HF id, folder or .gguf path)…").click()
    wait_idle(page)
    commit(page, page.get_by_label("Model: Hugging Face id (already cached), local folder, or .gguf file"), MARKDOWN)
    run_and_wait(page)
    error = page.locator('[data-testid="stMain"] .ab-message[data-kind="error"]')  # the run's, not the upload's
    expect(error.filter(has_text=MARKDOWN).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    live = page.locator('a[href^="http://host"], img[src^="http://host"]')
    where = live.evaluate_all("els => els.map(e => { let p = e; while (p && !(p.dataset && p.dataset.testid)) "
                              "p = p.parentElement; return (p ? p.dataset.testid : '?') + ': ' + "
                              "(p ? p.outerHTML.slice(0, 300) : ''); })")
    screenshot(page, artifacts, "18-crafted-names.png")
    assert where == []  # no live link or image made of user text
    unfold_inputs(page)
    page.get_by_role("combobox", name="Model", exact=True).click()
    page.get_by_role("option").first.click()
    wait_idle(page)


def test_a_damaged_result_file_is_refused_naming_the_field_and_pages_keep_working(page, artifacts, saved_result):
    go_to(page, "Attribute")
    upload_result(page, "saved.json", saved_result.read_bytes())  # the result in view before the damaged one
    before = heatmap_texts(page)
    assert len(before) == len(segment_texts(saved_result))
    saved = json.loads(saved_result.read_text())
    saved["sentences"][1]["score"] = "abc"
    upload_result(page, "damaged.json", json.dumps(saved).encode())
    message = page.locator('[data-testid="stSidebar"] .ab-message[data-kind="error"]')  # beside the uploader
    assert "'sentences[1].score' must be a finite number or null" in message.inner_text()
    assert heatmap_texts(page) == before  # the previous result stays; the broken one is never kept
    screenshot(page, artifacts, "19-damaged-file.png")
    for title in ("Drill-down", "Compare methods", "Learn", "Attribute"):
        go_to(page, title)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stMain"] .ab-message[data-kind="error"]').count() == 0  # not on every page


# -- 7: opening a saved result fills the inputs ------------------------------------------------------------------
def test_opening_a_saved_result_fills_the_inputs(page, artifacts, saved_result):
    saved = json.loads(saved_result.read_text())
    saved["question"] = "Who set up Orrin & Daughters?"  # still a valid result, with another question
    upload_result(page, "saved.json", json.dumps(saved).encode())
    assert "change any of them and Run again" in page.locator('.ab-message[data-kind="info"]').inner_text()
    unfold_inputs(page)
    assert page.get_by_label("Context", exact=True).input_value() == saved["context"]
    assert page.get_by_label("Question", exact=True).input_value() == "Who set up Orrin & Daughters?"
    assert page.get_by_label("Response (optional)").input_value() == saved["response"]
    screenshot(page, artifacts, "20-opened-result-inputs.png")


# -- 11: right-to-left text and zero-width characters --------------------------------------------------------------
def test_right_to_left_text_aligns_right_and_zero_width_characters_keep_sentences_apart(page, artifacts):
    unfold_inputs(page)
    context = ("القاهرة هي عاصمة مصر. يعيش فيها ملايين الناس.\n\n"
               "The Nile is long.\u200b It floods every summer.\u200b\u200bFarmers wait for it.")
    commit(page, page.get_by_label("Context", exact=True), context, "Control+Enter")
    commit(page, page.get_by_label("Question", exact=True), "What is the capital of Egypt?")
    commit(page, page.get_by_label("Response (optional)"), "القاهرة.", "Control+Enter")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function("() => (document.querySelector('.ab-heatmap') || {}).textContent?.includes('Farmers')",
                           timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    spans = page.locator(".ab-heatmap .ab-span")
    assert spans.count() == 5  # 2 Arabic sentences + 3 English ones (zero-width characters do not glue them)
    text = page.locator(".ab-heatmap .ab-text").bounding_box()
    arabic, english = spans.nth(0).bounding_box(), spans.nth(2).bounding_box()
    assert text["x"] + text["width"] - (arabic["x"] + arabic["width"]) < 10  # starts at the right edge
    assert english["x"] - text["x"] < 10  # the English paragraph still starts at the left
    assert page.locator(".ab-heatmap .ab-text").get_attribute("dir") == "auto"
    screenshot(page, artifacts, "21-rtl.png")


# -- 12: a response cut off at max new tokens -----------------------------------------------------------------------
def test_a_response_cut_off_at_max_new_tokens_is_flagged(page, artifacts):
    unfold_inputs(page)
    load_example(page, get_example("lighthouse"))
    wait_idle(page)
    advanced = page.locator(".st-key-in_max_new_tokens input")
    if not advanced.is_visible():
        page.locator("summary").filter(has_text="Advanced").click()
    set_number(page, "in_max_new_tokens", 3)
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator(".ab-warn[data-truncated]").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    assert "cut off at the limit of new tokens" in page.locator(".ab-warn[data-truncated]").inner_text()
    screenshot(page, artifacts, "22-truncated.png", full=False)
    with page.expect_download() as info:
        page.get_by_role("button", name="Download HTML heatmap").click()
    exported = info.value.path().read_text(encoding="utf-8")
    assert "cut off at the limit of new tokens" in exported


# -- 6: no host but the app's own ------------------------------------------------------------------------------------
def test_the_whole_visit_asked_no_host_but_the_apps_own(visit, app_server):
    _, requests = visit
    url, _ = app_server
    own = urlsplit(url).netloc
    outside = sorted({u for u in requests if urlsplit(u).scheme in ("http", "https", "ws", "wss")
                      and urlsplit(u).netloc != own})
    assert len(requests) > 50  # the walk really happened
    assert outside == [], outside
    assert not [u for u in requests if urlsplit(u).scheme not in ("http", "https", "ws", "wss", "data", "blob")]
