"""Zero-training baselines of benchmark v2, scored like any method (they give a ranking,
no verdicts): label correlation (``agreement.label_correlation``), mutual information
between the labels, and the correlation of cheap single-task predictions.

scikit-learn is not a dependency of auxsel, so mutual information is a small binned
estimator with the Miller-Madow bias correction, and the single-task models are ridge
regressions in closed form (on 0/1 labels for a binary task: a linear probability
model).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmarks.validity.agreement import label_correlation, label_pair
from benchmarks.validity.scenarios import Scenario
from benchmarks.validity.truth import encode

MAX_BINS = 10
RIDGE = 1.0


def _discrete(values: np.ndarray, discrete: bool) -> np.ndarray:
    """Integer codes: the values themselves for a discrete label, else quantile bins."""
    if discrete:
        return np.unique(values, return_inverse=True)[1]
    bins = int(np.clip(math.sqrt(len(values) / 5), 2, MAX_BINS))
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, values, side="right")


def mutual_information(x: np.ndarray, y: np.ndarray, *, x_discrete: bool, y_discrete: bool):
    """Plug-in mutual information (nats) of two labels over their common rows, binned,
    minus the Miller-Madow bias (cells - rows - columns + 1) / 2n; NaN below 10 rows."""
    keep = ~(np.isnan(x) | np.isnan(y))
    n = int(keep.sum())
    if n < 10:
        return math.nan
    a, b = _discrete(x[keep], x_discrete), _discrete(y[keep], y_discrete)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)
    p = table / n
    pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum())
    cells, rows, cols = int(nz.sum()), int((pa > 0).sum()), int((pb > 0).sum())
    return mi - (cells - rows - cols + 1) / (2 * n)


def _paired_labels(scenario: Scenario) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per candidate, (main labels, candidate labels) over rows that carry both: the
    same row, or for a candidate of another table the row matched on ``match_on``."""
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for task in scenario.candidates:
        pair = label_pair(scenario, task)
        if pair is None:
            pairs[task.label] = (np.array([]), np.array([]))
            continue
        codes = {c: pd.factorize(pair[c].astype("string"), sort=True)[0] for c in pair}
        numeric = {
            "main": scenario.main.kind == "regression",
            "aux": task.kind == "regression",
        }
        arrays = [
            pd.to_numeric(pair[c], errors="coerce").to_numpy(float)
            if numeric[c]
            else np.where(codes[c] < 0, np.nan, codes[c]).astype(float)
            for c in ("main", "aux")
        ]
        pairs[task.label] = (arrays[0], arrays[1])
    return pairs


def mutual_information_baseline(scenario: Scenario) -> pd.Series:
    main_discrete = scenario.main.kind != "regression"
    scores = {
        name: mutual_information(
            m, a, x_discrete=main_discrete, y_discrete=task.kind != "regression"
        )
        for (name, (m, a)), task in zip(
            _paired_labels(scenario).items(), scenario.candidates, strict=True
        )
    }
    return pd.Series(scores, dtype=float)


def _ridge(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights (with intercept last) of a ridge regression on standardised x."""
    design = np.hstack([x, np.ones((len(x), 1))])
    penalty = RIDGE * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    return np.linalg.solve(design.T @ design + penalty, design.T @ y)


def prediction_correlation(scenario: Scenario) -> pd.Series:
    """Per candidate, |Pearson| between two cheap single-task models' predictions over
    every row of every table: one fit on the main task's labelled rows, one on the
    candidate's (for a candidate of another table: that table's rows). A multiclass
    candidate gets one model per class and its largest correlation."""
    enc = encode(scenario)
    x = enc.x.astype(np.float64)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)
    design = np.hstack([x, np.ones((len(x), 1))])

    def predictions(column: int) -> np.ndarray:
        y = enc.y[:, column]
        rows = ~np.isnan(y)
        if enc.kinds[column] == "multiclass":
            targets = np.stack([(y[rows] == k).astype(float) for k in np.unique(y[rows])], 1)
        else:
            targets = y[rows, None]
        return design @ _ridge(x[rows], targets)

    main = predictions(0)[:, 0]
    scores = {}
    for k, name in enumerate(enc.names[1:], start=1):
        aux = predictions(k)
        values = [abs(float(np.corrcoef(main, aux[:, j])[0, 1])) for j in range(aux.shape[1])]
        finite = [v for v in values if math.isfinite(v)]
        scores[name] = max(finite) if finite else math.nan
    return pd.Series(scores, dtype=float)


BASELINES = {
    "correlation": label_correlation,
    "mutual_info": mutual_information_baseline,
    "prediction": prediction_correlation,
}
