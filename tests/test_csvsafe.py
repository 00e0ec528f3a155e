"""No CSV cell is run as a spreadsheet formula, and numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from attribot_core.csvsafe import csv_safe, csv_safe_frame, frame_to_csv

LINK = '=HYPERLINK("http://198.51.100.7/","click")'


@pytest.mark.parametrize("text", [LINK, "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "-", "=1"])
def test_text_that_a_spreadsheet_would_run_gets_a_leading_quote(text):
    assert csv_safe(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", " =not first", "", "-1.5", "+3e-2", "-.5", 42, -1.5, None, True])
def test_plain_text_numbers_and_non_text_are_left_as_they_are(value):
    assert csv_safe(value) == value


def test_a_frame_keeps_numeric_columns_numeric_and_neutralises_text_cells_and_headers():
    frame = pd.DataFrame({"id": [LINK, "ok"], "score": [-1.5, 2.0], "=col": ["a", "b"]})
    safe = csv_safe_frame(frame)
    assert list(safe["id"]) == ["'" + LINK, "ok"] and list(safe.columns) == ["id", "score", "'=col"]
    assert safe["score"].dtype == frame["score"].dtype and list(frame["id"]) == [LINK, "ok"]  # a copy
    rows = list(csv.reader(io.StringIO(frame_to_csv(frame))))
    assert rows[1] == ["'" + LINK, "-1.5", "a"]
