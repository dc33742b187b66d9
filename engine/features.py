"""Feature preparation: numeric columns kept raw (standardised later per split), text
columns one-hot encoded with a cardinality cap, missing values flagged by indicators."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from engine.errors import NoFeaturesError, SpecError, UnknownColumnError


@dataclass(frozen=True)
class FeatureConfig:
    """How feature columns become a numeric matrix.

    A text column contributes one indicator per category seen at least
    ``min_category_count`` times, at most ``max_categories`` of them (most frequent
    first); rarer categories share the all-zero code.
    """

    max_categories: int = 20
    min_category_count: int = 5

    def __post_init__(self) -> None:
        if self.max_categories < 1:
            raise SpecError("max_categories must be at least 1.", field="max_categories")
        if self.min_category_count < 1:
            raise SpecError("min_category_count must be at least 1.", field="min_category_count")


@dataclass(frozen=True)
class FeatureMatrix:
    """Encoded features of every row.

    ``values`` keeps NaN for missing numeric cells: imputation happens after
    standardisation on each replicate's training rows (NaN -> training mean = 0).
    ``standardise`` marks the numeric columns; one-hot and indicator columns stay 0/1.
    """

    values: np.ndarray  # [N, F] float32
    names: tuple[str, ...]
    standardise: np.ndarray  # [F] bool
    source_columns: tuple[str, ...]
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return len(self.names)


def encode_features(
    frame: pd.DataFrame, columns: list[str], config: FeatureConfig | None = None
) -> FeatureMatrix:
    """Encode ``columns`` of ``frame``; explain every column that was dropped."""
    config = config or FeatureConfig()
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UnknownColumnError(
            f"Feature column {missing[0]!r} is not in the table.",
            field=missing[0],
            hint="Check the spelling, or leave `features` out to use every non-label column.",
        )
    blocks: list[np.ndarray] = []
    names: list[str] = []
    standardise: list[bool] = []
    used: list[str] = []
    dropped: dict[str, str] = {}

    for column in columns:
        series = frame[column]
        if pd.api.types.is_datetime64_any_dtype(series) or isinstance(series.dtype, pd.PeriodDtype):
            dropped[column] = "date/time columns are not used; convert them to numbers"
            continue
        is_missing = series.isna().to_numpy()
        if is_missing.all():
            dropped[column] = "no values"
            continue
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            values = series.astype("float64").to_numpy(copy=True)
            values[~np.isfinite(values)] = np.nan  # inf in a feature is treated as missing
            is_missing = np.isnan(values)
            present = values[~is_missing]
            if present.size and np.ptp(present) > 0:
                blocks.append(values[:, None])
                names.append(column)
                standardise.append(True)
            elif not is_missing.any():
                dropped[column] = "constant"
                continue
            if is_missing.any():
                blocks.append(is_missing[:, None].astype(np.float64))
                names.append(f"{column}__missing")
                standardise.append(False)
            used.append(column)
            continue

        text = series.astype("string").fillna("__missing__")
        counts = text.value_counts()
        kept = counts[counts >= config.min_category_count].index[: config.max_categories]
        if len(kept) == 0 or (len(kept) == 1 and counts.iloc[0] == len(text)):
            dropped[column] = (
                "constant" if counts.size == 1 else "no category is frequent enough to learn from"
            )
            continue
        one_hot = np.stack([(text == k).to_numpy(dtype=np.float64) for k in kept], axis=1)
        blocks.append(one_hot)
        names.extend(f"{column}={k}" for k in kept)
        standardise.extend([False] * len(kept))
        used.append(column)

    if not blocks:
        reasons = "; ".join(f"{c}: {r}" for c, r in dropped.items()) or "no feature columns"
        raise NoFeaturesError(
            f"No usable feature columns ({reasons}).",
            field="features",
            hint="Add numeric or categorical columns that are not labels.",
        )
    matrix = np.concatenate(blocks, axis=1).astype(np.float32)
    return FeatureMatrix(matrix, tuple(names), np.array(standardise), tuple(used), dropped)
