"""Every session-state key the app reads or writes is declared once, in studio/state.py."""

from __future__ import annotations

import re
from pathlib import Path

from studio import state

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "studio").glob("*.py"))]
ACCESS = re.compile(r"""(?:\bss|session_state)(?:\[|\.get\(|\.setdefault\()\s*"([A-Za-z_][\w]*)\"""")
WIDGET = re.compile(r"""key="([A-Za-z_]\w*)\"""")


def test_every_session_key_is_a_declared_one_a_widget_key_or_an_owned_input():
    accessed, widgets = set(), set()
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        accessed |= set(ACCESS.findall(text))
        widgets |= set(WIDGET.findall(text))
    undeclared = {k for k in accessed - widgets - {"inputs"} if not k.startswith("in_")} - set(state._DEFAULTS)
    assert not undeclared, f"declare these in studio/state.py (_DEFAULTS): {sorted(undeclared)}"
    assert {"result", "current_run", "ds_opened", "hist_confirm"} <= accessed  # the scan finds real keys


def _page_that_redraws_itself():
    """A page as the Dataset page is while a batch runs: it shows the notice, then a poll redraws it."""
    import streamlit as st

    from studio import state, ui

    state.init()
    ui.show_notice()
    if st.session_state.get("polls_left", 0) > 0:
        st.session_state["polls_left"] -= 1
        state.redraw()
    st.button("Something else", key="act")


def _info_texts(at) -> list[str]:
    return [h.proto.body for h in at.get("html") if "Stopped batch" in h.proto.body]


def test_a_notice_stays_while_the_page_redraws_itself_and_goes_with_the_users_next_action():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_page_that_redraws_itself)
    at.session_state["notice"] = ("info", "Stopped batch 'b' (3 rows not run).")
    at.session_state["polls_left"] = 2  # a row finished and the batch let go: two redraws in a row
    at.run()
    assert not at.exception
    assert len(_info_texts(at)) == 1
    at.button(key="act").click().run()
    assert _info_texts(at) == []
