"""Assemble a learning problem: the feature matrix and every task's labels over the
same rows, with auxiliary tables (candidates from other data sets) appended."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.errors import SpecError, UnknownColumnError
from engine.features import FeatureConfig, FeatureMatrix, encode_features
from engine.tasks import EncodedTask, TaskSpec, as_task, encode_task


@dataclass(frozen=True)
class Problem:
    """Features and labels of all tasks over N rows; task 0 is the main task.

    Rows from an auxiliary table carry only that table's task labels (NaN elsewhere),
    so they are training rows for it and never enter the main task's splits.
    """

    features: FeatureMatrix
    tasks: tuple[EncodedTask, ...]
    labels: np.ndarray  # [N, T] float64, NaN = missing

    @property
    def main(self) -> EncodedTask:
        return self.tasks[0]

    @property
    def candidates(self) -> tuple[EncodedTask, ...]:
        return self.tasks[1:]

    @property
    def n_rows(self) -> int:
        return int(self.labels.shape[0])


def prepare(
    frame: pd.DataFrame,
    main: str | TaskSpec,
    candidates: Sequence[str | TaskSpec],
    *,
    features: Sequence[str] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    feature_config: FeatureConfig | None = None,
) -> Problem:
    """Validate the spec against the tables and build the problem.

    Label columns (main and candidates) are never features. ``tables`` maps the
    ``source`` names used by candidates to their frames.
    """
    main_spec = as_task(main)
    specs = [as_task(c) for c in candidates]
    tables = dict(tables or {})
    if main_spec.source is not None:
        raise SpecError("The main task must come from the main table.", field="main_task.source")
    if not specs:
        raise SpecError(
            "No candidate tasks given.", field="candidates", hint="Name at least one candidate."
        )

    labels_here = {main_spec.column} | {s.column for s in specs if s.source is None}
    _require_column(frame, main_spec.column, "main_task.column")
    for i, spec in enumerate(specs):
        where = frame if spec.source is None else _table(tables, spec, i)
        _require_column(where, spec.column, f"candidates[{i}].column")
        if spec.source is None and spec.column == main_spec.column:
            raise SpecError(
                f"Candidate {spec.column!r} is the main task itself.",
                field=f"candidates[{i}].column",
                hint="Remove it from the candidates.",
            )
    names = [main_spec.label] + [s.label for s in specs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise SpecError(
            f"Task name {duplicate!r} is used twice.",
            field="candidates",
            hint="Give each candidate a distinct `name`.",
        )

    if features is None:
        feature_columns = [c for c in frame.columns if c not in labels_here]
    else:
        feature_columns = list(features)
        clash = next((c for c in feature_columns if c in labels_here), None)
        if clash is not None:
            raise SpecError(
                f"Column {clash!r} is a label and cannot also be a feature.",
                field="features",
                hint=f"Remove {clash!r} from `features`.",
            )
    feature_columns = [str(c) for c in feature_columns]
    for column in feature_columns:
        _require_column(frame, column, "features")

    # Auxiliary tables add rows that only their own candidates label.
    parts = [frame[feature_columns]]
    sources = [s.source for s in specs if s.source is not None]
    offsets: dict[str, int] = {}
    n_rows = len(frame)
    for source in dict.fromkeys(sources):
        other = tables[source]
        lacking = [c for c in feature_columns if c not in other.columns]
        if lacking:
            raise SpecError(
                f"Table {source!r} lacks feature column(s) {', '.join(map(repr, lacking[:5]))}.",
                field="candidates",
                hint="A candidate from another table needs the main table's feature columns.",
            )
        offsets[source] = n_rows
        n_rows += len(other)
        parts.append(other[feature_columns])
    feature_frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    matrix = encode_features(feature_frame, feature_columns, feature_config)

    tasks = [_encode_padded(main_spec, frame[main_spec.column], 0, n_rows)]
    for spec in specs:
        if spec.source is None:
            tasks.append(_encode_padded(spec, frame[spec.column], 0, n_rows))
        else:
            other = tables[spec.source]
            tasks.append(_encode_padded(spec, other[spec.column], offsets[spec.source], n_rows))
    labels = np.stack([t.values for t in tasks], axis=1)
    return Problem(matrix, tuple(tasks), labels)


def _require_column(frame: pd.DataFrame, column: str, field: str) -> None:
    if column not in frame.columns:
        shown = ", ".join(map(repr, list(frame.columns)[:10]))
        raise UnknownColumnError(
            f"Column {column!r} is not in the table.",
            field=field,
            hint=f"Available columns include {shown}.",
        )


def _table(tables: Mapping[str, pd.DataFrame], spec: TaskSpec, i: int) -> pd.DataFrame:
    assert spec.source is not None
    if spec.source not in tables:
        raise SpecError(
            f"Candidate {spec.label!r} names table {spec.source!r}, which was not given.",
            field=f"candidates[{i}].source",
        )
    return tables[spec.source]


def _encode_padded(spec: TaskSpec, series: pd.Series, offset: int, n_rows: int) -> EncodedTask:
    """Encode a label column and place it at ``offset`` in an all-missing column."""
    encoded = encode_task(spec, series.reset_index(drop=True))
    if offset == 0 and len(series) == n_rows:
        return encoded
    values = np.full(n_rows, np.nan)
    values[offset : offset + len(series)] = encoded.values
    return EncodedTask(
        encoded.name, encoded.column, encoded.kind, values, encoded.classes, encoded.source
    )
