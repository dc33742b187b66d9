"""How well a method's predicted gains agree with the reference's true gains, and the
zero-cost baseline (absolute label correlation with the main task)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from benchmarks.validity.scenarios import Scenario
from engine import TaskSpec, evidence

TOP_K = 3
# The bar for a truly helpful reference: its interval excludes zero and its gain
# is at least 1% of the baseline's test loss (``rel_gain`` of the reference summary).
MATERIAL_GAIN = 0.01


def top_k_overlap(predicted: pd.Series, truth: pd.Series, k: int = TOP_K) -> float:
    """Share of the truly best ``k`` candidates that are also among the predicted best ``k``."""
    k = min(k, len(truth))
    if k == 0:
        return math.nan
    best_true = set(truth.sort_values(ascending=False, kind="stable").index[:k])
    best_pred = set(predicted.sort_values(ascending=False, kind="stable").index[:k])
    return len(best_true & best_pred) / k


def agreement(
    predicted: pd.Series,
    truth: pd.DataFrame,
    verdicts: pd.Series | None = None,
    *,
    k: int = TOP_K,
) -> dict[str, Any]:
    """Compare predicted gains (candidate -> value, higher = more helpful) with the truth
    (candidate -> ``gain`` and ``sign``: +1 significantly positive, -1 negative, 0 not).

    With ``verdicts`` (candidate -> helpful / harmful / inconclusive) also counts the
    verdicts against the truth's signs, as counts so that they can be pooled:
    precision of helpful = helpful_right / helpful_called, recall = helpful_right /
    truly_helpful, harmful_flagged = harmful_right / truly_harmful, and
    wrong_direction = calls whose sign is the opposite of a significant true gain.
    Where the truth has ``rel_gain``, also the helpful counts against the material
    references only (significantly positive and ``rel_gain`` >= MATERIAL_GAIN):
    helpful_right_material and truly_helpful_material.
    """
    names = [c for c in truth.index if c in predicted.index and np.isfinite(predicted[c])]
    pred = predicted[names].astype(float)
    true = truth.loc[names, "gain"].astype(float)
    enough = len(names) >= 3 and pred.nunique() > 1 and true.nunique() > 1
    row: dict[str, Any] = {
        "n_candidates": len(names),
        "spearman": float(stats.spearmanr(pred, true).statistic) if enough else math.nan,
        "kendall": float(stats.kendalltau(pred, true).statistic) if enough else math.nan,
        f"top{k}": top_k_overlap(pred, true, k),
    }
    if verdicts is not None:
        sign = truth.loc[names, "sign"]
        called = verdicts[names]
        row |= {
            "helpful_called": int((called == "helpful").sum()),
            "helpful_right": int(((called == "helpful") & (sign > 0)).sum()),
            "truly_helpful": int((sign > 0).sum()),
            "harmful_called": int((called == "harmful").sum()),
            "harmful_right": int(((called == "harmful") & (sign < 0)).sum()),
            "truly_harmful": int((sign < 0).sum()),
            "wrong_direction": int(
                (((called == "helpful") & (sign < 0)) | ((called == "harmful") & (sign > 0))).sum()
            ),
        }
        if "rel_gain" in truth:
            material = (sign > 0) & (truth.loc[names, "rel_gain"] >= MATERIAL_GAIN)
            row |= {
                "helpful_right_material": int(((called == "helpful") & material).sum()),
                "truly_helpful_material": int(material.sum()),
            }
    return row


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


# The per-job verdict counts that precision and recall are pooled from.
COUNTS = (
    "helpful_called",
    "helpful_right",
    "truly_helpful",
    "harmful_called",
    "harmful_right",
    "truly_harmful",
    "wrong_direction",
    "helpful_right_material",
    "truly_helpful_material",
)


def pooled_rates(rows: pd.DataFrame) -> dict[str, float]:
    """Precision / recall of verdicts from summed counts (micro-averaged)."""
    total = rows.reindex(columns=list(COUNTS)).sum()
    return {
        "helpful_precision": ratio(total.helpful_right, total.helpful_called),
        "helpful_recall": ratio(total.helpful_right, total.truly_helpful),
        "harmful_flagged": ratio(total.harmful_right, total.truly_harmful),
        "harmful_precision": ratio(total.harmful_right, total.harmful_called),
        "helpful_called": float(total.helpful_called),
        "truly_helpful": float(total.truly_helpful),
        "truly_harmful": float(total.truly_harmful),
        "wrong_direction": float(total.wrong_direction),
    }


def covered(low: pd.Series, high: pd.Series, target: pd.Series) -> pd.Series:
    """Whether each interval [low, high] holds its target (NaN intervals count as misses)."""
    return (low <= target) & (target <= high)


def label_pair(scenario: Scenario, task: TaskSpec) -> pd.DataFrame | None:
    """The main task's and one candidate's labels side by side (columns ``main``, ``aux``):
    the same row, or for a candidate of another table the row matched on
    ``scenario.match_on`` (keys that match more than one row are dropped); ``None`` for a
    candidate of another table without a match key."""
    main = scenario.main.column
    if task.source is None:
        return scenario.frame[[main, task.column]].set_axis(["main", "aux"], axis=1)
    if not scenario.match_on:
        return None
    keys = list(scenario.match_on)
    other = scenario.tables[task.source][[*keys, task.column]]
    other = other.drop_duplicates(keys, keep=False).set_axis([*keys, "aux"], axis=1)
    pair = scenario.frame[[*keys, main]].rename(columns={main: "main"})
    return pair.merge(other, on=keys)[["main", "aux"]]


def paired_labels(scenario: Scenario) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per candidate, (main labels, candidate labels) as the engine encodes them (class
    codes, or numbers for regression; NaN = missing) over the rows of :func:`label_pair`;
    empty arrays for a candidate of another table without a match key."""
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


def label_correlation(scenario: Scenario) -> pd.Series:
    """The zero-cost baseline: per candidate, the engine's absolute label correlation
    (:func:`engine.evidence.label_correlation`: Pearson; the correlation ratio η for a
    multiclass candidate) with the main task's labels over rows that carry both. A
    candidate from another table is matched row to row on ``scenario.match_on``;
    without a match it gets NaN."""
    main_kind = scenario.main.kind or "regression"
    scores = {
        name: evidence.label_correlation(
            m, a, x_kind=main_kind, y_kind=task.kind or "regression", min_rows=2
        )
        for (name, (m, a)), task in zip(
            paired_labels(scenario).items(), scenario.candidates, strict=True
        )
    }
    return pd.Series(scores, dtype=float)
