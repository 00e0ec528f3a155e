"""The one rule for text cells in every CSV the project writes: no cell is read as a spreadsheet formula.

A spreadsheet opening a CSV runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a
tab or carriage return) as a formula, so a batch row whose id is ``=HYPERLINK("http://…","click")``
would become a live link. Following OWASP's advice ("CSV Injection"), such a text cell is written with
a leading ``'``, which spreadsheets show as text. Numbers stay numbers: numeric values are never
touched, nor is text that is a plain decimal number (``-1.5``, ``+3e-2``), which no spreadsheet runs.

The CLI's ``export``, ``attribute --csv`` and ``--per-token`` and the app's CSV downloads all go through
:func:`csv_safe` (cell by cell) or :func:`csv_safe_frame` (a pandas table).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMULA_STARTS", "csv_safe", "csv_safe_frame", "frame_to_csv"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet treat a cell as a formula."""
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_safe(value: Any) -> Any:
    """``value`` with a ``'`` in front when it is text a spreadsheet would run; anything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (and column names) pass :func:`csv_safe`; numeric columns as they are."""
    from pandas.api.types import is_numeric_dtype

    safe = frame.copy()
    for column in safe.columns:
        if not is_numeric_dtype(safe[column].dtype):
            safe[column] = safe[column].map(csv_safe)
    safe.columns = [csv_safe(c) for c in safe.columns]
    return safe


def frame_to_csv(frame: pd.DataFrame, path: str | None = None) -> str | None:
    """``frame`` as CSV without the index, neutralised by :func:`csv_safe_frame`; to ``path``, else returned."""
    return csv_safe_frame(frame).to_csv(path, index=False)
