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


@dataclass(frozen=True)
class LabelStats:
    """What the label rules read of a column: counted from its data (:func:`label_stats`),
    or from a stored profile of it (a service's, to check a job before it loads data)."""

    column: str
    labelled: int  # present (non-missing) values
    distinct: int  # distinct present values
    numeric: bool  # numbers or booleans: a regression label can be one
    dates: bool = False
    infinite: int = 0
    huge: int = 0  # finite values beyond ±MAX_LABEL_MAGNITUDE
    mixed: tuple[int, int, str] | None = None  # distinct numbers, distinct text, an example
    inferred: TaskKind | None = None  # the kind :func:`infer_kind` gives


@dataclass(frozen=True)
class LabelProblem:
    """Why a column cannot be a label of a kind; ``kind`` when the declared kind is what
    to change rather than the column."""

    message: str
    kind: bool = False


def label_problems(stats: LabelStats, kind: TaskKind | None) -> list[LabelProblem]:
    """The label rules: every reason ``stats``' column cannot be a label of ``kind``
    (None: inferred), each with its fix. The only copy of them (the service checks a
    job's stored column profiles with it)."""
    name = stats.column
    if stats.labelled < 1:
        return [LabelProblem(f"Column {name!r} has no labels (every value is missing).")]
    problems = []
    if stats.infinite:
        problems.append(
            LabelProblem(
                f"Column {name!r} holds {stats.infinite} infinite value(s) (inf/-inf); clean "
                "them or leave those cells empty (missing labels are skipped)."
            )
        )
    if stats.mixed and kind not in ("binary", "multiclass"):
        numbers, text, example = stats.mixed
        return [
            *problems,
            LabelProblem(
                f"Column {name!r} mixes numbers and text ({numbers} distinct numeric and "
                f"{text} distinct text values, e.g. {example!r}); clean it, or declare kind "
                "'multiclass' to treat every value as a category."
            ),
        ]
    if stats.distinct < 2:
        return [
            *problems,
            LabelProblem(f"Column {name!r} has a single value; a label needs at least two."),
        ]
    if stats.dates:
        return [*problems, LabelProblem(f"Column {name!r} holds dates; it cannot be a label.")]
    if kind == "binary" and stats.distinct != 2:
        problems.append(
            LabelProblem(
                f"Column {name!r} has {stats.distinct} distinct values; binary needs exactly "
                "2. Use multiclass or regression.",
                kind=True,
            )
        )
    if kind == "regression" and not stats.numeric:
        problems.append(
            LabelProblem(
                f"Column {name!r} holds text; regression needs numbers. Use binary or multiclass.",
                kind=True,
            )
        )
    effective = kind or stats.inferred
    if effective == "regression" and stats.huge:
        problems.append(
            LabelProblem(
                f"Column {name!r} holds {stats.huge} value(s) beyond ±"
                f"{MAX_LABEL_MAGNITUDE:g}".replace("e+", "e")
                + ", too large to train on; rescale the column."
            )
        )
    if effective in ("binary", "multiclass") and stats.distinct > MAX_CLASSES:
        hint = (
            "declare kind regression if it is a number"
            if stats.numeric
            else "a column of identifiers or free text cannot be a label"
        )
        problems.append(
            LabelProblem(
                f"Column {name!r} has {stats.distinct:,} distinct values, more than the "
                f"{MAX_CLASSES} classes a label may have; {hint}."
            )
        )
    return problems


def label_stats(series: pd.Series) -> LabelStats:
    """Count what the label rules read of a label column."""
    present = series.dropna()
    dates = pd.api.types.is_datetime64_any_dtype(series) or isinstance(series.dtype, pd.PeriodDtype)
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        numbers = present.astype("float64")
        text = None
    else:
        numbers = pd.to_numeric(present, errors="coerce")
        text = present.map(str)
    parsed = numbers.notna().to_numpy()
    values = numbers.to_numpy(dtype=np.float64)
    finite = values[np.isfinite(values)]
    mixed = None
    numeric = bool(parsed.all()) and not dates
    if text is not None and not numeric and parsed.any():
        distinct_numbers = text[parsed].unique()
        distinct_text = text[~parsed].unique()
        rarer = distinct_numbers if len(distinct_numbers) < len(distinct_text) else distinct_text
        mixed = (len(distinct_numbers), len(distinct_text), str(rarer[0])[:80])
    return LabelStats(
        column=str(series.name),
        labelled=len(present),
        # Classes are compared as text, so mixed types (1 and "1") do not split a class.
        distinct=int(present.nunique() if text is None else text.nunique()),
        numeric=numeric,
        dates=dates,
        infinite=int(np.isinf(values).sum()) if numeric else 0,
        huge=int((np.abs(finite) > MAX_LABEL_MAGNITUDE).sum()) if numeric else 0,
        mixed=mixed,
        inferred=infer_kind(series) if len(present) and not dates else None,
    )


def encode_task(spec: TaskSpec, series: pd.Series) -> EncodedTask:
    """Check a label column against its kind (:func:`label_problems`) and encode it as
    floats."""
    column = spec.column
    problems = label_problems(label_stats(series), spec.kind)
    if problems:
        raise LabelError(problems[0].message, field=column)
    kind = spec.kind or infer_kind(series)
    if kind == "regression":
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        return EncodedTask(spec.label, column, kind, values, (), spec.source)
    known = series.notna().to_numpy()
    text = series[known].map(str)
    classes = tuple(sorted(text.unique(), key=_natural_key))
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
