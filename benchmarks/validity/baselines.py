"""Zero-training baselines of benchmark v2, scored like any method (they give a ranking,
no verdicts): label correlation (``agreement.label_correlation``), mutual information
between the labels, and the correlation of cheap single-task predictions.

Mutual information is the engine's binned estimator with the Miller-Madow bias
correction (:func:`engine.evidence.mutual_information`, scikit-learn not being a
dependency of auxsel), and the single-task models are ridge
regressions in closed form (on 0/1 labels for a binary task: a linear probability
model).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmarks.validity.agreement import label_correlation, paired_labels
from benchmarks.validity.scenarios import Scenario
from benchmarks.validity.truth import encode
from engine.evidence import mutual_information

RIDGE = 1.0


def mutual_information_baseline(scenario: Scenario) -> pd.Series:
    main_discrete = scenario.main.kind != "regression"
    scores = {
        name: mutual_information(
            m, a, x_discrete=main_discrete, y_discrete=task.kind != "regression"
        )
        for (name, (m, a)), task in zip(
            paired_labels(scenario).items(), scenario.candidates, strict=True
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
