"""Keep the README's benchmark sections equal to the latest output of the bench scripts."""

from __future__ import annotations

import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def write_report(path: Path, script: str, argv: list[str] | None, text: str) -> None:
    """Write a bench's Markdown report to ``path``, headed by the command that made it (``python SCRIPT ARGS``,
    ``argv`` as parsed, or the process's own), so that a reader can run it again."""
    command = " ".join(["python", script, *(argv if argv is not None else sys.argv[1:])])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"`{command}`\n\n{text.strip()}\n", encoding="utf-8")


def write_block(name: str, text: str, readme: Path = README) -> bool:
    """Replace what lies between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` with ``text``.

    Returns False (and leaves the file alone) when the markers are missing, so that a README edited
    by hand never gets a block appended in the wrong place.
    """
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    doc = readme.read_text(encoding="utf-8")
    if start not in doc or end not in doc:
        return False
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{text.strip()}\n\n{end}{tail}", encoding="utf-8")
    return True
