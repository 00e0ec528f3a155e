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
