"""The notebook-level entry point: table + spec in, ranked advice out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.advice import Advice, TaskInfo, summarise
from engine.budget import Budget
from engine.errors import SpecError
from engine.features import FeatureConfig
from engine.metrics import METRIC_NAMES, METRICS_BY_KIND, MetricName
from engine.plan import chunk_plan, pairwise_plan
from engine.probe import ProbeSpec
from engine.problem import Problem, prepare
from engine.scoring import INTERVAL_METHODS, IntervalMethod
from engine.splits import Splits, make_splits
from engine.tasks import TaskSpec
from engine.training import ProbeRun, ProgressFn, TrainingData, train_probes


def advise(
    frame: pd.DataFrame,
    main: str | TaskSpec,
    candidates: Sequence[str | TaskSpec],
    *,
    seed: int = 0,
    features: Sequence[str] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    metric: MetricName = "loss",
    interval: IntervalMethod = "corrected",
    device: str = "cpu",
    progress: ProgressFn | None = None,
    feature_config: FeatureConfig | None = None,
    **budget: Any,
) -> Advice:
    """Measure how much each candidate task helps the main task.

    Trains, for every replicate, the main task alone and paired with each candidate
    (hard parameter sharing), and ranks candidates by the paired gain in ``metric``
    on held-out rows. Budget keywords: see :class:`engine.Budget`. ``interval`` is
    "corrected" (Nadeau–Bengio, see :func:`holdout_ratio`) or "naive".

    >>> advice = advise(df, main="y", candidates=["a", "b"], seeds=3, epochs=30)
    >>> advice.to_frame()  # doctest: +SKIP
    """
    plan = Budget.from_kwargs(**budget)
    problem = prepare(
        frame, main, candidates, features=features, tables=tables, feature_config=feature_config
    )
    check_metric(metric, problem)
    check_interval(interval)
    splits = splits_for(problem, plan, seed)
    specs = pairwise_plan(len(problem.candidates), plan.seeds)
    runs, n_chunks = run_probes(
        problem, splits, specs, plan, seed=seed, metric=metric, device=device, progress=progress
    )
    return build_advice(
        problem, splits, runs, plan, seed=seed, metric=metric, interval=interval, chunks=n_chunks
    )


def check_metric(metric: str, problem: Problem) -> None:
    if metric not in METRIC_NAMES or metric not in METRICS_BY_KIND[problem.main.kind]:
        allowed = ", ".join(METRICS_BY_KIND[problem.main.kind])
        raise SpecError(
            f"Metric {metric!r} does not apply to a {problem.main.kind} main task.",
            field="metric",
            hint=f"Use one of {allowed}.",
        )


def check_interval(interval: str) -> None:
    if interval not in INTERVAL_METHODS:
        raise SpecError(
            f"Unknown interval method {interval!r}.",
            field="interval",
            hint=f"Use one of {', '.join(INTERVAL_METHODS)}.",
        )


def splits_for(problem: Problem, budget: Budget, seed: int) -> Splits:
    return make_splits(
        problem,
        replicates=budget.seeds,
        seed=seed,
        val_fraction=budget.val_fraction,
        test_fraction=budget.test_fraction,
        main_train_fraction=budget.main_train_fraction,
    )


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise SpecError(f"Unknown device {device!r}.", field="device") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SpecError(
            "CUDA was asked for but is not available.",
            field="device",
            hint="Use device='cpu' or 'auto'.",
        )
    return resolved


def run_probes(
    problem: Problem,
    splits: Splits,
    specs: Sequence[ProbeSpec],
    budget: Budget,
    *,
    seed: int,
    metric: MetricName,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    data: TrainingData | None = None,
) -> tuple[list[ProbeRun], int]:
    """Train ``specs`` chunk by chunk under the budget's memory cap.

    Returns the runs in the order of ``specs`` and the number of chunks used.
    """
    data = data or TrainingData(problem, splits, resolve_device(device))
    chunks = chunk_plan(specs, problem, budget)
    total = len(specs) * budget.epochs
    offset = 0
    runs: list[ProbeRun] = []
    for chunk in chunks:

        def chunk_progress(done: int, _total: int, offset: int = offset) -> None:
            if progress is not None:
                progress(offset + done, total)

        runs.extend(
            train_probes(data, chunk, budget, seed=seed, metric=metric, progress=chunk_progress)
        )
        offset += len(chunk) * budget.epochs
    return runs, len(chunks)


def build_advice(
    problem: Problem,
    splits: Splits,
    runs: Sequence[ProbeRun],
    budget: Budget,
    *,
    seed: int,
    metric: MetricName,
    interval: IntervalMethod = "corrected",
    method: str = "probe",
    chunks: int = 1,
) -> Advice:
    baseline, ranked = summarise(
        runs,
        main=TaskInfo.of(problem.main),
        candidates=[TaskInfo.of(t) for t in problem.candidates],
        metric=metric,
        test_train_ratio=holdout_ratio(splits, problem),
        interval=interval,
    )
    return Advice(
        metric=metric,
        method=method,
        main=TaskInfo.of(problem.main),
        baseline=baseline,
        candidates=tuple(ranked),
        runs=tuple(runs),
        interval=interval,
        seed=seed,
        budget=asdict(budget),
        dropped_features=dict(problem.features.dropped),
        chunks=chunks,
    )


def holdout_ratio(splits: Splits, problem: Problem | None = None) -> float:
    """n_test / n_train for the corrected resampled interval.

    The correction accounts for the variance that comes from which of the main task's
    labelled rows each replicate holds out, so n_train counts the main-labelled rows a
    replicate may train on: every main-labelled row outside its validation and test
    sets, whether or not ``main_train_fraction`` uses its label. Rows without a main
    label never rotate into a test set and do not count (counting them, as auxsel 0.1
    did, shrank the correction on sparse data; docs/validity.md measured its coverage).
    Without ``problem`` every pool row counts.
    """
    pool = splits.pool[0]
    if problem is not None:
        n_train = int(np.isfinite(problem.main.values[pool]).sum())
    else:
        n_train = int(pool.shape[0])
    return int(splits.test.shape[1]) / max(1, n_train)
