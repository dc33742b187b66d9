"""Task specs and label encoding: which column, which kind, and its labels as floats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pandas as pd

from engine.errors import LabelError, SpecError

TaskKind = Literal["binary", "multiclass", "regression"]
TASK_KINDS: tuple[TaskKind, ...] = get_args(TaskKind)

# More classes than this is rarely a classification label; it is usually an id or a
# numeric target that should be declared `regression`.
MAX_CLASSES = 100

MAX_LABEL_MAGNITUDE = 1e30
"""Regression labels beyond ±this are too large to train on (float32 overflows)."""


@dataclass(frozen=True)
class TaskSpec:
    """A label column to learn. ``kind`` is inferred when None.

    ``source`` names another table (a key of ``tables`` passed to the engine) that holds
    this label over the same feature columns; its rows then carry only this task.
    """

    column: str
    kind: TaskKind | None = None
    name: str | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column:
            raise SpecError("A task needs a non-empty column name.", field="column")
        if self.kind is not None and self.kind not in TASK_KINDS:
            raise SpecError(
                f"Unknown task kind {self.kind!r} for column {self.column!r}.",
                field="kind",
                hint=f"Use one of {', '.join(TASK_KINDS)}, or leave it out to infer it.",
            )

    @property
    def label(self) -> str:
        """The name shown to users: ``name`` if given, else the column."""
        return self.name or self.column


def as_task(task: str | TaskSpec) -> TaskSpec:
    return task if isinstance(task, TaskSpec) else TaskSpec(column=task)


@dataclass(frozen=True)
class EncodedTask:
    """A task with its labels as floats over the rows of the prepared problem.

    ``values`` holds class codes (0..k-1) for classification and raw numbers for
    regression, NaN where the row has no label. ``classes`` lists the original label
    values in code order (empty for regression).
    """

    name: str
    column: str
    kind: TaskKind
    values: np.ndarray  # [N] float64, NaN = missing
    classes: tuple[str, ...]
    source: str | None = None

    @property
    def n_outputs(self) -> int:
        """Width of this task's head: one logit (binary), k logits, or one value."""
        return len(self.classes) if self.kind == "multiclass" else 1

    @property
    def n_labelled(self) -> int:
        return int(np.isfinite(self.values).sum())


def infer_kind(series: pd.Series) -> TaskKind:
    """Infer a task kind from a label column.

    Booleans and two-valued columns are binary; other numeric columns are regression;
    text and categorical columns with more than two values are multiclass.
    """
    present = series.dropna()
    if present.empty:
        raise LabelError(f"Column {series.name!r} has no labels.", field=str(series.name))
    n_unique = present.nunique()
    if pd.api.types.is_bool_dtype(series) or n_unique == 2:
        return "binary"
    if pd.api.types.is_numeric_dtype(series):
        return "regression"
    return "multiclass"


def encode_task(spec: TaskSpec, series: pd.Series) -> EncodedTask:
    """Check a label column against its kind and encode it as floats."""
    column = spec.column
    kind = spec.kind or infer_kind(series)
    present = series.dropna()
    if present.empty:
        raise LabelError(f"Column {column!r} has no labels.", field=column)
    if kind == "regression":
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        unparsed = int((np.isnan(values) & series.notna().to_numpy()).sum())
        if unparsed:
            raise LabelError(
                f"Column {column!r} is declared regression but {unparsed} of its values "
                "are not numbers.",
                field=column,
                hint="Declare it binary or multiclass, or clean the column.",
            )
        if np.isinf(values).any() or np.nanmax(np.abs(values)) > MAX_LABEL_MAGNITUDE:
            raise LabelError(
                f"Column {column!r} holds infinite or astronomically large values.",
                field=column,
                hint="Replace them with numbers or leave the cells empty.",
            )
        if np.nanstd(values) == 0:
            raise LabelError(
                f"Column {column!r} has a single value; there is nothing to learn.",
                field=column,
            )
        return EncodedTask(spec.label, column, kind, values, (), spec.source)

    if pd.api.types.is_float_dtype(series) and np.isinf(present.to_numpy(dtype=float)).any():
        raise LabelError(f"Column {column!r} holds infinite values.", field=column)
    # Classes are compared as text so that mixed types (1 and "1") do not split a class.
    known = series.notna().to_numpy()
    text = series[known].map(str)
    classes = tuple(sorted(text.unique(), key=_natural_key))
    if len(classes) < 2:
        raise LabelError(
            f"Column {column!r} has a single class ({classes[0]!r}); a classification "
            "label needs at least two.",
            field=column,
        )
    if kind == "binary" and len(classes) != 2:
        raise LabelError(
            f"Column {column!r} is declared binary but has {len(classes)} classes.",
            field=column,
            hint="Declare it multiclass, or regression if it is a number.",
        )
    if len(classes) > MAX_CLASSES:
        raise LabelError(
            f"Column {column!r} has {len(classes)} classes (more than {MAX_CLASSES}).",
            field=column,
            hint="Declare it regression if it is a number, or group rare classes.",
        )
    codes = {c: float(i) for i, c in enumerate(classes)}
    values = np.full(len(series), np.nan)
    values[known] = text.map(codes).to_numpy(dtype=np.float64)
    return EncodedTask(spec.label, column, kind, values, classes, spec.source)


def _natural_key(value: str) -> tuple[int, float, str]:
    """Sort numbers numerically and before text, so 0/1 and False/True map 0 -> 0."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)
