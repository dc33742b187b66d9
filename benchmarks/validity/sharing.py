"""Hard vs soft parameter sharing in benchmark v2: the table that scores the advice of
each sharing against the reference of each sharing, family by family.

A run with ``--reference-sharing hard,soft_l2`` (or ``hard,soft_trace``, or all three)
builds each reference of every family and scores every engine method against each
(``FamilyResult.scores`` holds the scores against the first, ``other_scores`` those
against the others); a soft method is compared with the reference of its own sharing
(none if that one was not built). The advice's sharing
is read from its method (``probe@full+sharing=soft_l2+coupling=0.1``; otherwise the
recipe's, hard for both of the engine's recipes). Per family and soft method, the table
gives the Spearman of the soft advice with the soft reference, of the hard advice with
the hard reference, both crosswise, how well the hard and the soft advice agree with
each other (Spearman of their gains, job by job: the same seed, so the same splits) and
the hard and soft references with each other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

import engine
from benchmarks.validity.baselines import BASELINES
from benchmarks.validity.v2 import engine_method

if TYPE_CHECKING:
    from benchmarks.validity.v2 import FamilyResult


def method_sharing(method: str) -> str | None:
    """The parameter sharing an engine method's probes train; None for a baseline."""
    if method in BASELINES:
        return None
    _, recipe, knobs = engine_method(method)
    return str(knobs.get("sharing", engine.recipe_budget(recipe).sharing))


def spearman(a: pd.Series, b: pd.Series) -> float:
    """Spearman of two candidate-indexed series over the candidates both have."""
    both = pd.concat([a, b], axis=1).dropna()
    if len(both) < 3 or both.iloc[:, 0].nunique() < 2 or both.iloc[:, 1].nunique() < 2:
        return math.nan
    return float(stats.spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic)


def advice_agreement(predictions: pd.DataFrame, a: str, b: str) -> float:
    """Mean over the jobs both methods ran of the Spearman of their candidates' gains."""
    values = []
    for job in sorted(set(predictions.job)):
        rows = predictions[predictions.job == job]
        gains = [rows[rows.method == m].set_index("candidate")["gain"] for m in (a, b)]
        if all(len(g) for g in gains):
            values.append(spearman(*gains))
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _mean(scores: pd.DataFrame, column: str, method: str | None, reference: str | None) -> float:
    """Mean of ``column`` over ``method``'s jobs scored against ``reference``."""
    if method is None or reference is None:
        return math.nan
    jobs = scores[(scores.method == method) & (scores.reference == reference)]
    return float(jobs[column].mean()) if len(jobs) else math.nan


def sharing_table(results: Sequence[FamilyResult]) -> pd.DataFrame:
    """One row per (family, soft-sharing method) of the run; empty without one."""
    rows = []
    for r in results:
        scores = pd.concat([r.scores, r.other_scores], ignore_index=True)
        if scores.empty:
            continue
        references = {r.primary: r.reference, **r.other_references}
        methods = list(dict.fromkeys(scores.method))
        sharing = {m: method_sharing(m) for m in methods}
        hard = [m for m in methods if sharing[m] == "hard"]
        hard_method = "probe" if "probe" in hard else (hard[0] if hard else None)
        hard_ref = references.get("hard")

        rho = partial(_mean, scores, "spearman")
        seconds = partial(_mean, scores, "seconds", reference=r.primary)
        for soft in [m for m in methods if sharing[m] not in (None, "hard")]:
            key = str(sharing[soft])
            soft_ref = references.get(key)
            row: dict[str, Any] = {
                "family": r.family,
                "half": r.half,
                "soft method": soft,
                "hard method": hard_method or "–",
                "soft advice vs soft reference": rho(soft, key if soft_ref else None),
                "hard advice vs hard reference": rho(hard_method, "hard" if hard_ref else None),
                "hard advice vs soft reference": rho(hard_method, key if soft_ref else None),
                "soft advice vs hard reference": rho(soft, "hard" if hard_ref else None),
                # The zero-cost yardstick, against the soft reference (NaN if not run).
                "label correlation vs soft reference": rho(
                    "correlation" if "correlation" in methods else None, key if soft_ref else None
                ),
                "hard vs soft advice": (
                    advice_agreement(r.predictions, hard_method, soft) if hard_method else math.nan
                ),
                "hard vs soft reference": (
                    spearman(hard_ref.summary["gain"], soft_ref.summary["gain"])
                    if hard_ref and soft_ref
                    else math.nan
                ),
            }
            for name, ref in (("soft", soft_ref), ("hard", hard_ref)):
                row[f"{name} reference reliability"] = ref.reliability if ref else math.nan
                row[f"{name} reference class"] = ref.label if ref else "–"
                row[f"{name} reference replicates"] = ref.replicates if ref else 0
                row[f"{name} reference CPU s"] = ref.seconds if ref else math.nan
            row["soft advice CPU s/job"] = seconds(soft)
            row["hard advice CPU s/job"] = seconds(hard_method)
            row["jobs"] = int(((scores.method == soft) & (scores.reference == r.primary)).sum())
            rows.append(row)
    return pd.DataFrame(rows)
