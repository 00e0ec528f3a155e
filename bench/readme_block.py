"""Keep the README's benchmark sections equal to the latest output of the bench scripts."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


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
