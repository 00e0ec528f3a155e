"""The bench scripts rewrite only their own README block, and nothing when the markers are gone."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from readme_block import write_block  # noqa: E402


def test_block_between_markers_is_replaced_and_the_rest_kept(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# T\n\n<!-- bench:eval -->\nold table\n<!-- /bench:eval -->\n\n## Next\n")
    assert write_block("eval", "| new | table |\n", readme)
    assert readme.read_text() == "# T\n\n<!-- bench:eval -->\n| new | table |\n\n<!-- /bench:eval -->\n\n## Next\n"
    assert write_block("eval", "again", readme)  # idempotent shape: the markers survive a rewrite
    assert "again" in readme.read_text() and "| new |" not in readme.read_text()


def test_missing_markers_leave_the_file_alone(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# T\n<!-- bench:speed -->\nx\n<!-- /bench:speed -->\n")
    before = readme.read_text()
    assert not write_block("eval", "table", readme)
    assert readme.read_text() == before
