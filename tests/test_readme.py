"""The README's links to files of the project lead to files a clone has (git tracks them), not to a
report the author's machine happened to keep."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def relative_links(markdown: str) -> set[str]:
    """Targets of ``[text](target)`` links that are paths inside the project (no scheme, no bare anchor)."""
    return {t for t in LINK.findall(markdown) if "://" not in t and not t.startswith("mailto:")}


def test_relative_links_are_recognised_and_web_links_and_anchors_are_not():
    text = "[a](docs/x.md) [b](https://example.org/y) [c](#section) [d](bench/r.md#part) ![e](docs/p.png)"
    assert relative_links(text) == {"docs/x.md", "bench/r.md", "docs/p.png"}


def test_every_file_the_readme_links_to_is_tracked():
    try:
        tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                                     check=True).stdout.splitlines())
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    links = relative_links((ROOT / "README.md").read_text(encoding="utf-8"))
    assert links, "the README links to no file: the pattern is broken"
    missing = sorted(t for t in links if t not in tracked and not any(f.startswith(t.rstrip("/") + "/")
                                                                        for f in tracked))
    assert not missing, f"README links to files a clone lacks: {missing}"
