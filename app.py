"""AttriBoT Studio: the shared frame (page setup, session state, sidebar) and the page navigation.

Run with ``streamlit run app.py`` (or ``make app``). The pages compose the engine (``attribot_core``)
and its views (``attribot_core.viz``); every view reads one attribution result.
"""

from __future__ import annotations

import os

# Before torch loads: idle OpenMP threads sleep instead of spinning. On a small shared CPU, spinning
# threads made a run ~10x slower (SmolLM2, 11 passes: 67 s spinning vs 7 s passive under load).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path  # noqa: E402

import streamlit as st  # noqa: E402

from attribot_core import AttributionResult  # noqa: E402
from attribot_core.runs import RunRequest  # noqa: E402
from studio import runs, state  # noqa: E402
from studio.ui import message, quiet_reruns, text_block  # noqa: E402

# A local image, not a Material icon or an emoji: Streamlit fetches those favicons from a font/emoji CDN,
# and the app must talk to no host but its own server.
ICON = str(Path(__file__).resolve().parent / "studio" / "assets" / "icon.png")
MAX_RESULT_BYTES = 20_000_000

st.set_page_config(page_title="AttriBoT Studio", page_icon=ICON, layout="wide")
quiet_reruns()  # no fade of the page while a script run waits: it took a core from the model
state.init()


def _load_result_file() -> None:
    """Sidebar uploader callback: a JSON export becomes the current result again, and its inputs fill the
    Attribute page's inputs (to tweak and re-run). A file that does not validate is refused, whole."""
    ss = st.session_state
    file = ss.get("result_file")
    ss["result_file_error"] = None
    if file is None:
        return
    data = file.getvalue()
    try:
        if len(data) > MAX_RESULT_BYTES:
            raise ValueError(f"the file is {len(data) // 10**6} MB; the limit is {MAX_RESULT_BYTES // 10**6} MB")
        result = AttributionResult.from_json(data.decode("utf-8-sig"))
        request = RunRequest.from_result(result)
        hash(request)  # the request keys the result cache: its parameters must be plain values
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, RecursionError) as exc:
        why = f"Could not open '{file.name}' as an AttriBoT result: {str(exc)[:300]}"
        ss["notice"] = ("error", why)  # once on the page
        ss["result_file_error"] = why  # and beside the uploader while that file is in it
        return
    state.set_current(result, request, fill=True)
    st.session_state["notice"] = ("info", f"Opened '{file.name}'. Its context, question, response, model and "
                                          "method are in the inputs: change any of them and Run again.")


pages = [
    st.Page("pages/attribute.py", title="Attribute", icon=":material/edit_note:", default=True),
    st.Page("pages/drilldown.py", title="Drill-down", icon=":material/account_tree:"),
    st.Page("pages/compare.py", title="Compare methods", icon=":material/compare_arrows:"),
    st.Page("pages/learn.py", title="Learn", icon=":material/school:"),
    st.Page("pages/history.py", title="History", icon=":material/history:"),
    st.Page("pages/dataset.py", title="Dataset", icon=":material/table_view:"),
]
navigation = st.navigation(pages)
runs.sync_url()  # ?run=<id>: a reload or a shared link reopens that run (followed live if still going)

with st.sidebar:
    st.markdown("### AttriBoT Studio")
    st.caption("Which sentences of the context made the model give its answer? "
               "Exact leave-one-out attribution, made fast.")
    runs.monitor(navigation.title)  # this session's runs in progress, on every page (progress, Stop)
    summary = st.container()  # filled after the page ran, so it shows a result made in this run too
    st.file_uploader("Open a saved result (.json)", type=["json"], key="result_file",
                     on_change=_load_result_file, help="A JSON file downloaded from this app.")
    if st.session_state.get("result_file_error"):
        message("error", st.session_state["result_file_error"])

navigation.run()

result, _ = state.current()
if result is not None:
    with summary:
        st.markdown("**Current result**")
        text_block("Q:", result.question[:120], small=True)
        text_block("Run:", f"{result.method} · {result.model} · {len(result.sentences)} sentences", small=True)
