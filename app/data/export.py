"""Tables written out as CSV for a spreadsheet, with formula injection neutralised."""

from __future__ import annotations

import csv
import io
import re

import pandas as pd

# OWASP's CSV injection guidance: a cell that starts with one of these is a formula...
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# ...and so is the text after a separator inside a cell, for a program that splits on
# that separator (a spreadsheet in a locale that splits on ; reads x;=cmd as x and =cmd).
_HIDDEN_FORMULA = re.compile(r"([,;\t\r\n|]\s*)([=+\-@])")


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV text of a frame with spreadsheet formula injection neutralised (OWASP): a
    quote is put before a formula trigger (= + - @, or tab / CR) that starts a text
    cell, and before one (= + - @) that follows a separator inside it (, ; tab | or a
    line break), so however a program splits the file no cell starts a formula; every
    text cell is enclosed in double quotes (inner ones doubled)."""
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(_escape_cell)
    buffer = io.StringIO()
    # The header as before (rank,name,...), escaped like a cell; the rows quoted.
    csv.writer(buffer, lineterminator="\n").writerow([_escape_cell(str(c)) for c in safe.columns])
    safe.to_csv(buffer, index=False, header=False, quoting=csv.QUOTE_NONNUMERIC)
    return buffer.getvalue().encode("utf-8")


def _escape_cell(value: object) -> object:
    if not isinstance(value, str):
        return value
    value = _HIDDEN_FORMULA.sub(r"\1'\2", value)
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value
