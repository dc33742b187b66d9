"""Zero-cost evidence about each candidate, read from the labels alone (no training):
how many rows carry its label, how many of those also carry the main task's, and how
strongly the two labels go together there (absolute correlation and mutual
information). :func:`with_evidence` attaches it to ranked candidates and flags where
the probes and the labels disagree.

The estimators work on label arrays as the engine encodes them (:class:`EncodedTask`:
class codes for binary and multiclass tasks, numbers for regression, NaN = missing),
so the validity benchmark scores its zero-training baselines with the same code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from engine.problem import Problem
from engine.splits import Splits
from engine.tasks import TaskKind

if TYPE_CHECKING:  # engine.ranking imports LabelEvidence from here; only the type is needed
    from engine.ranking import CandidateAdvice

MIN_ROWS = 10
"""Fewer rows labelled for both tasks than this give NaN correlation and information."""

MAX_BINS = 10
"""At most this many quantile bins for a regression label (mutual information)."""


@dataclass(frozen=True)
class LabelEvidence:
    """What one candidate's labels say before any probe trains.

    ``labelled``: rows carrying the candidate's label. ``overlap``: rows carrying both
    its label and the main task's (0 for a candidate from another table, whose rows
    carry only its own label). ``correlation``: :func:`label_correlation` of the two
    labels over the overlap, in [0, 1]. ``mutual_info``: :func:`mutual_information`
    there, in nats. Both are NaN with fewer than :data:`MIN_ROWS` overlapping rows.
    """

    name: str
    labelled: int
    overlap: int
    correlation: float
    mutual_info: float


def label_evidence(problem: Problem) -> list[LabelEvidence]:
    """Every candidate's label evidence against the main task, in candidate order."""
    main = problem.main
    evidence = []
    for task in problem.candidates:
        both = np.isfinite(main.values) & np.isfinite(task.values)
        evidence.append(
            LabelEvidence(
                name=task.name,
                labelled=task.n_labelled,
                overlap=int(both.sum()),
                correlation=label_correlation(
                    main.values, task.values, x_kind=main.kind, y_kind=task.kind
                ),
                mutual_info=mutual_information(
                    main.values,
                    task.values,
                    x_discrete=main.kind != "regression",
                    y_discrete=task.kind != "regression",
                ),
            )
        )
    return evidence


def with_evidence(
    candidates: Sequence[CandidateAdvice], evidence: Sequence[LabelEvidence]
) -> list[CandidateAdvice]:
    """Attach each candidate's label evidence (matched by name) and flag where the
    probe and the label correlation disagree; order, gains, intervals and verdicts
    stay as they are.

    The rule looks at the probed candidates with a finite gain and a finite label
    correlation, n of them. Each gets a rank by gain and a rank by correlation
    (1 = highest, ties in ranking order). A candidate is flagged when the two ranks
    differ by at least max(3, n / 2), or when its whole interval is below zero
    (the probe says it hurts) while its correlation ranks in the top third
    (rank <= n // 3). The flag is a prompt to look closer, not a verdict: a related
    label can still hurt, and an unrelated one can still help.
    """
    by_name = {e.name: e for e in evidence}
    scored = [
        c
        for c in candidates
        if c.probed
        and math.isfinite(c.gain)
        and c.name in by_name
        and math.isfinite(by_name[c.name].correlation)
    ]
    n = len(scored)
    gain_rank = {c.name: r for r, c in enumerate(sorted(scored, key=lambda c: -c.gain), start=1)}
    corr_rank = {
        c.name: r
        for r, c in enumerate(sorted(scored, key=lambda c: -by_name[c.name].correlation), start=1)
    }
    wide = max(3.0, n / 2)
    flagged = {
        c.name
        for c in scored
        if abs(gain_rank[c.name] - corr_rank[c.name]) >= wide
        or (c.ci_high < 0 and corr_rank[c.name] <= n // 3)
    }
    return [
        replace(c, evidence=by_name.get(c.name), evidence_disagrees=c.name in flagged)
        for c in candidates
    ]


def label_correlation(
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_kind: TaskKind,
    y_kind: TaskKind,
    min_rows: int = MIN_ROWS,
) -> float:
    """Absolute correlation in [0, 1] of two labels over the rows that carry both.

    Binary and regression labels: |Pearson| (on a binary label's 0/1 codes, the
    point-biserial or phi coefficient). A multiclass label has no order, so against a
    binary or regression label it gets the correlation ratio η (the square root of
    the share of the other label's variance explained by its classes; η = |r| when it
    has two classes, and against a binary label η = Cramér's V). Two multiclass labels
    get Cramér's V. NaN with fewer than ``min_rows`` common rows or a constant label.
    """
    keep = np.isfinite(x) & np.isfinite(y)
    if int(keep.sum()) < max(2, min_rows):
        return math.nan
    a, b = x[keep].astype(np.float64), y[keep].astype(np.float64)
    if x_kind == "multiclass" and y_kind == "multiclass":
        return _cramers_v(a, b)
    if x_kind == "multiclass":
        return _correlation_ratio(b, a)
    if y_kind == "multiclass":
        return _correlation_ratio(a, b)
    da, db = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float((da * da).sum()) * float((db * db).sum()))
    if denominator == 0:
        return math.nan
    return min(1.0, abs(float((da * db).sum())) / denominator)


def _correlation_ratio(values: np.ndarray, classes: np.ndarray) -> float:
    """η: sqrt(between-class sum of squares / total sum of squares) of ``values``."""
    codes = np.unique(classes, return_inverse=True)[1]
    centred = values - values.mean()
    total = float((centred * centred).sum())
    if total == 0:
        return math.nan
    sums = np.bincount(codes, weights=centred)
    counts = np.bincount(codes)
    between = float((sums * sums / counts).sum())
    return min(1.0, math.sqrt(between / total))


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    table = _contingency(_codes(a), _codes(b))
    n = table.sum()
    expected = table.sum(1, keepdims=True) @ table.sum(0, keepdims=True) / n
    k = min(table.shape) - 1
    if k == 0:
        return math.nan
    chi2 = float(((table - expected) ** 2 / expected).sum())
    return min(1.0, math.sqrt(chi2 / (n * k)))


def _codes(values: np.ndarray) -> np.ndarray:
    return np.unique(values, return_inverse=True)[1].reshape(-1)


def _contingency(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    table = np.zeros((int(a.max()) + 1, int(b.max()) + 1))
    np.add.at(table, (a, b), 1)
    return table


def _discrete(values: np.ndarray, discrete: bool) -> np.ndarray:
    """Integer codes: the values themselves for a discrete label, else sqrt(n / 5)
    quantile bins (between 2 and :data:`MAX_BINS`)."""
    if discrete:
        return _codes(values)
    bins = int(np.clip(math.sqrt(len(values) / 5), 2, MAX_BINS))
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, values, side="right")


def mutual_information(
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_discrete: bool,
    y_discrete: bool,
    min_rows: int = MIN_ROWS,
) -> float:
    """Plug-in mutual information (nats) of two labels over their common rows, a
    regression label binned at quantiles, minus the Miller-Madow bias
    (cells - rows - columns + 1) / 2n; NaN below ``min_rows`` rows. The correction can
    take it slightly below zero for independent labels."""
    keep = ~(np.isnan(x) | np.isnan(y))
    n = int(keep.sum())
    if n < max(1, min_rows):
        return math.nan
    table = _contingency(_discrete(x[keep], x_discrete), _discrete(y[keep], y_discrete))
    p = table / n
    pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum())
    cells, rows, cols = int(nz.sum()), int((pa > 0).sum()), int((pb > 0).sum())
    return mi - (cells - rows - cols + 1) / (2 * n)


FEW_LABELS = 30
"""A candidate with fewer labelled training rows than this (per replicate, on average)
gets a note: its gain rests on too few of its labels to say much either way (the same
floor as the main task's :data:`engine.splits.MIN_LABELLED_ROWS`)."""


@dataclass(frozen=True)
class LabelCoverage:
    """How much of the data one candidate's label covers, and how much of that the
    probes train on.

    ``labelled``: rows carrying its label; ``share``: that over the job's rows (with
    candidates from other tables, those tables' rows count too). ``train_labelled``:
    its labelled rows among a replicate's training rows (the rows its loss sees),
    averaged over replicates. ``train_overlap``: the rows whose *main* label trains
    (``main_train`` of them per replicate) that also carry its label, averaged over
    replicates — where the two losses meet on the same rows. ``note``: a sentence when
    ``train_labelled`` is under :data:`FEW_LABELS`, else None.
    """

    name: str
    labelled: int
    share: float
    train_labelled: float
    train_overlap: float
    main_train: int
    note: str | None


def label_coverage(problem: Problem, splits: Splits) -> list[LabelCoverage]:
    """Every candidate's label coverage under ``splits``, in candidate order (a pure
    function of the prepared problem and its splits; no training)."""
    n_rows = max(1, problem.n_rows)
    main_train = splits.main_train  # [R, N] bool
    n_main_train = int(main_train[0].sum()) if main_train.shape[0] else 0
    has = np.isfinite(problem.labels[:, 1:]).astype(np.float32)  # [N, C]
    in_pool = np.zeros_like(main_train, dtype=np.float32)  # [R, N]
    np.put_along_axis(in_pool, splits.pool, 1.0, axis=1)
    # Counts per replicate and candidate as one product each (exact in float32 up to
    # 2**24 rows), then their mean over replicates.
    train_labelled = (in_pool @ has).mean(axis=0) if len(in_pool) else np.zeros(has.shape[1])
    overlap = (
        (main_train.astype(np.float32) @ has).mean(axis=0)
        if len(main_train)
        else np.zeros(has.shape[1])
    )
    coverage = []
    for c, task in enumerate(problem.candidates):
        labelled = task.n_labelled
        trained = float(train_labelled[c])
        note = None
        if trained < FEW_LABELS:
            note = (
                f"Only {labelled} of {problem.n_rows} rows ({labelled / n_rows:.1%}) carry "
                f"this candidate's label, about {trained:.0f} of them in a "
                f"replicate's training rows (under {FEW_LABELS}): its gain rests on too few "
                "labels to tell much either way. Label more rows of it, or leave it out."
            )
        coverage.append(
            LabelCoverage(
                name=task.name,
                labelled=labelled,
                share=labelled / n_rows,
                train_labelled=trained,
                train_overlap=float(overlap[c]),
                main_train=n_main_train,
                note=note,
            )
        )
    return coverage
