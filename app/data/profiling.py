"""Profiling a table's columns: dtype, missing and distinct counts, values no label can
hold, and the task kind the engine would infer for each."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import engine


def profile(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Per column: dtype, missing and distinct counts, infinite values, and the task
    kind the engine would infer if it were used as a label (None if it cannot be one)."""
    columns: list[dict[str, object]] = []
    for name in frame.columns:
        series = frame[name]
        missing = int(series.isna().sum())
        unique = int(series.nunique(dropna=True))
        dtype = _dtype(series)
        infinite = huge = 0
        mixed = None
        if dtype in ("number", "integer"):
            values = np.abs(series.to_numpy(dtype=float, na_value=np.nan))
            infinite = int(np.isinf(values).sum())
            huge = int((np.isfinite(values) & (values > engine.MAX_LABEL_MAGNITUDE)).sum())
        elif dtype == "text":
            mixed = _mixed_types(series)
        kind: str | None = None
        if unique >= 2 and dtype != "datetime":
            try:
                kind = engine.infer_kind(series)
            except engine.EngineError:
                kind = None
        columns.append(
            {
                "name": str(name),
                "dtype": dtype,
                "missing": missing,
                "unique": unique,
                "infinite": infinite,
                "huge": huge,
                "mixed": mixed,
                "kind": kind,
                "examples": [_jsonable(v) for v in _examples(series)],
            }
        )
    return columns


NUMBER_PATTERN = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def _mixed_types(series: pd.Series) -> dict[str, int | str] | None:
    """For a text column: whether its distinct values mix numbers and text (a numeric
    column with stray text, say), with counts of distinct values and an example.
    Vectorised in Arrow: a million distinct strings take well under a second."""
    try:
        values = pa.array(series, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        return None
    distinct = pc.drop_null(pc.unique(values))
    if len(distinct) == 0:
        return None
    numeric = pc.match_substring_regex(distinct, NUMBER_PATTERN)
    n_numbers = int(pc.sum(numeric).as_py() or 0)
    n_text = len(distinct) - n_numbers
    if n_numbers == 0 or n_text == 0:
        return None
    rarer = numeric if n_numbers < n_text else pc.invert(numeric)
    example = pc.filter(distinct, rarer)[0].as_py()
    return {"numbers": n_numbers, "text": n_text, "example": str(example)[:80]}


def _examples(series: pd.Series, n: int = 3) -> list[object]:
    """The first ``n`` distinct values (looking at the head first: cheap on long columns)."""
    head = series.head(10_000).dropna().unique()
    if len(head) >= n:
        return list(head[:n])
    return list(series.dropna().unique()[:n])


def _dtype(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "text"


def _jsonable(value: object) -> int | float | bool | str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float, bool, str)):
        return value if not isinstance(value, str) else value[:80]
    return str(value)[:80]
