"""The viz package as a whole: a library view layer that the app, the CLI and a notebook share."""

from __future__ import annotations

import subprocess
import sys

import attribot_core.viz as viz


def test_viz_imports_neither_streamlit_nor_the_built_in_examples():
    unwanted = ("streamlit", "attribot_core.examples", "attribot_core.evaluation")
    code = f"import sys, attribot_core.viz; sys.exit(any(m in sys.modules for m in {unwanted!r}))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_every_public_name_is_importable_from_the_package():
    assert viz.__all__ and all(callable(getattr(viz, n)) or n.isupper() for n in viz.__all__)
    assert "agreement_rows" not in viz.__all__ and "paragraph_bar_figure" not in viz.__all__  # metrics, dead code gone
