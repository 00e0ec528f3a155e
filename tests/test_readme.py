"""The project's Markdown (the README, the bench reports, docs/) links only to files a clone has (git tracks
them), each link read from the file's own folder, as GitHub and an editor read it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def relative_links(markdown: str) -> set[str]:
    """Targets of ``[text](target)`` links that are paths inside the project (no scheme, no bare anchor)."""
    return {t for t in LINK.findall(markdown) if "://" not in t and not t.startswith("mailto:")}


def dead_links(markdown_path: str, markdown: str, tracked: set[str]) -> list[str]:
    """Links of the file at ``markdown_path`` (relative to the root) that lead to no tracked file or folder."""
    folder = os.path.dirname(markdown_path)
    dead = []
    for target in sorted(relative_links(markdown)):
        path = os.path.normpath(os.path.join(folder, target))
        if path not in tracked and not any(f.startswith(path + "/") for f in tracked):
            dead.append(target)
    return dead


def test_relative_links_are_recognised_and_web_links_and_anchors_are_not():
    text = "[a](docs/x.md) [b](https://example.org/y) [c](#section) [d](bench/r.md#part) ![e](docs/p.png)"
    assert relative_links(text) == {"docs/x.md", "bench/r.md", "docs/p.png"}


def test_a_link_is_read_from_its_files_folder():
    tracked = {"docs/p.png", "bench/results/r.md"}
    assert dead_links("README.md", "![p](docs/p.png) [r](bench/results/r.md)", tracked) == []
    assert dead_links("bench/results/r.md", "![p](docs/p.png)", tracked) == ["docs/p.png"]
    assert dead_links("bench/results/r.md", "![p](../../docs/p.png) [d](../results)", tracked) == []


def test_every_file_the_projects_markdown_links_to_is_tracked():
    try:
        tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                                     check=True).stdout.splitlines())
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    pages = sorted(f for f in tracked if f.endswith(".md"))
    assert "README.md" in pages and relative_links((ROOT / "README.md").read_text(encoding="utf-8"))
    dead = {page: found for page in pages
            if (found := dead_links(page, (ROOT / page).read_text(encoding="utf-8"), tracked))}
    assert not dead, f"links to files a clone lacks: {dead}"
