"""How a job runs: the notebook-level entry point (table + spec in, ranked advice out),
the ``Runner`` a job's method trains through, its stages (screening, racing rounds of
paired probes, subset search) and the scoring of the runs into advice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd

from engine.budget import Budget
from engine.chunks import resolve_device, run_probes
from engine.errors import SpecError
from engine.evidence import LabelEvidence, label_evidence, with_evidence
from engine.features import FeatureConfig
from engine.methods import (
    DEFAULT_METHOD,
    Confirmation,
    Method,
    Stages,
    agreement_of,
    check_method,
    choose_confirmations,
    with_screening,
)
from engine.metrics import DEFAULT_METRIC, METRIC_NAMES, METRICS_BY_KIND, MetricName
from engine.probe_spec import ProbeSpec
from engine.problem import Problem, prepare
from engine.proxies import ScreenResult, screen
from engine.racing import race, schedule
from engine.ranking import Advice, TaskInfo, summarise
from engine.readout import ProbeRun
from engine.recipes import DEFAULT_RECIPE, RecipeName, recipe_budget
from engine.scoring import DEFAULT_INTERVAL, INTERVAL_METHODS, IntervalMethod
from engine.splits import Splits, make_splits
from engine.subsets import search_subsets
from engine.tasks import TaskSpec
from engine.training import ProgressFn
from engine.training_data import TrainingData


def advise(
    frame: pd.DataFrame,
    main: str | TaskSpec,
    candidates: Sequence[str | TaskSpec],
    *,
    seed: int = 0,
    features: Sequence[str] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    metric: MetricName = DEFAULT_METRIC,
    interval: IntervalMethod = DEFAULT_INTERVAL,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    feature_config: FeatureConfig | None = None,
    method: Method = DEFAULT_METHOD,
    recipe: RecipeName = DEFAULT_RECIPE,
    **budget: Any,
) -> Advice:
    """Measure how much each candidate task helps the main task.

    Trains, for every replicate, the main task alone and paired with each candidate
    (hard parameter sharing, or soft with ``sharing="soft_l2"`` / ``"soft_trace"`` and
    a ``coupling``, see :mod:`engine.soft`), and ranks candidates by the paired gain in
    ``metric`` on held-out rows. Budget keywords: see :class:`engine.Budget`. ``interval`` is
    "naive" (default, see :data:`engine.scoring.DEFAULT_INTERVAL`) or "corrected"
    (Nadeau–Bengio, see :func:`holdout_ratio`).

    ``recipe``: what the user will train, and so what every probe trains (see
    :mod:`engine.recipes`): ``full`` (default), a standard full-training MLP, or
    ``quick``, the short narrow probe. Budget keywords such as ``hidden``, ``lr`` or
    ``sharing`` override single knobs of it, e.g. ``recipe="quick",
    sharing="soft_l2", coupling=0.1``.

    ``method``: ``probe`` (default) as above; ``screen`` ranks the candidates by a
    proxy from one joint run and trains no probe, so it reports no gains;
    ``screen+probe`` screens, then probes the ``confirm_top`` best-screened candidates
    and ``confirm_random`` others, and reports how well the proxy ranked them (see
    :mod:`engine.methods`). ``subset_search=True`` adds a greedy search for a set of
    candidates to train together (see :mod:`engine.subsets`).
    ``main_train_fractions=[0.1, 0.25, 0.5, 1.0]`` runs the job at each share of the
    main task's training labels on nested, paired splits (see :mod:`engine.fractions`;
    ``Advice.fractions`` and ``to_frame()`` give every share). ``progress`` gets
    (probe-epochs done, planned total) over all of it; a screening run counts
    ``seeds × screen_epochs``, the subset search its whole ``subset_budget``.

    >>> advice = advise(df, main="y", candidates=["a", "b"], seeds=3, epochs=30)
    >>> advice.to_frame()  # doctest: +SKIP
    """
    plan = recipe_budget(recipe, **budget)
    check_method(method, plan)
    problem = prepare(
        frame, main, candidates, features=features, tables=tables, feature_config=feature_config
    )
    check_metric(metric, problem)
    check_interval(interval)
    if plan.main_train_fractions:  # every share, trained together (engine.fractions)
        from engine.fractions import advise_fractions  # it builds on this module

        return advise_fractions(
            problem,
            plan,
            seed=seed,
            device=device,
            metric=metric,
            interval=interval,
            method=method,
            recipe=recipe,
            progress=progress,
        )
    splits = splits_for(problem, plan, seed)
    runner = LocalRunner(TrainingData(problem, splits, resolve_device(device)), plan, seed, metric)
    return execute(
        problem,
        splits,
        plan,
        runner,
        method=method,
        seed=seed,
        metric=metric,
        interval=interval,
        progress=progress,
        recipe=recipe,
    )


class Runner(Protocol):
    """Trains what a job's method asks for. ``LocalRunner`` trains in this process;
    the service's runner first reuses stored results and stores new ones as they
    finish, so an interrupted job resumes where it stopped."""

    @property
    def chunks(self) -> int:
        """Training chunks used so far."""
        ...

    def screen(self, progress: ProgressFn) -> ScreenResult:
        """The joint screening run's proxy scores."""
        ...

    def probes(self, specs: Sequence[ProbeSpec], progress: ProgressFn) -> list[ProbeRun]:
        """The runs of ``specs``, in order."""
        ...


class LocalRunner:
    """Everything in this process, on one device."""

    def __init__(self, data: TrainingData, budget: Budget, seed: int, metric: MetricName):
        self.data = data
        self.budget = budget
        self.seed = seed
        self.metric = metric
        self.chunks = 0

    def screen(self, progress: ProgressFn) -> ScreenResult:
        return screen(self.data, self.budget, seed=self.seed, progress=progress)

    def probes(self, specs: Sequence[ProbeSpec], progress: ProgressFn) -> list[ProbeRun]:
        runs, n_chunks = run_probes(
            self.data.problem,
            self.data.splits,
            specs,
            self.budget,
            seed=self.seed,
            metric=self.metric,
            progress=progress,
            data=self.data,
        )
        self.chunks += n_chunks
        return runs


def execute(
    problem: Problem,
    splits: Splits,
    plan: Budget,
    runner: Runner,
    *,
    method: Method,
    seed: int,
    metric: MetricName,
    interval: IntervalMethod = DEFAULT_INTERVAL,
    progress: ProgressFn | None = None,
    recipe: str = DEFAULT_RECIPE,
) -> Advice:
    """Carry out a job's method with ``runner``: screen (``screen``, ``screen+probe``),
    paired probes of the chosen candidates, then the subset search if asked for.
    Every choice depends only on results, so a runner that replays stored results
    reaches the same advice as one that trains everything."""
    n_candidates = len(problem.candidates)
    stages = Stages(progress, planned_epochs(method, plan, n_candidates))
    screened: ScreenResult | None = None
    confirmation: Confirmation | None = None
    probed: Sequence[int] = range(n_candidates)
    if method != "probe":
        screened = runner.screen(stages.stage(plan.seeds * plan.screening_epochs))
        if method == "screen+probe":
            scores = screened.scores(plan.screen_proxy)
            confirmation = choose_confirmations(scores.tolist(), plan, seed)
            probed = confirmation.candidates
        else:
            probed = ()

    # The labels do not change between rounds: their evidence is read once per job.
    evidence = label_evidence(problem)

    def advise_on(runs: Sequence[ProbeRun], rounds: int) -> Advice:
        return build_advice(
            problem,
            splits,
            runs,
            plan,
            seed=seed,
            metric=metric,
            interval=interval,
            method=method,
            chunks=runner.chunks,
            screen=screened,
            confirmation=confirmation,
            recipe=recipe,
            rounds=rounds,
            evidence=evidence,
        )

    def train_round(specs: Sequence[ProbeSpec], planned: int) -> list[ProbeRun]:
        return runner.probes(specs, stages.stage(planned))

    runs, rounds, advice = race(
        plan, probed, [t.name for t in problem.candidates], metric, train_round, advise_on
    )
    if advice is None:  # nothing to probe (method screen): the screening's advice
        advice = advise_on(runs, rounds)
    if plan.subset_search:

        def train(subset_specs: Sequence[ProbeSpec]) -> list[ProbeRun]:
            return runner.probes(subset_specs, stages.stage(len(subset_specs) * plan.epochs))

        subset, subset_runs = search_subsets(
            runs,
            advice.candidates,
            [t.name for t in problem.candidates],
            plan,
            metric=metric,
            test_train_ratio=holdout_ratio(splits, problem),
            interval=interval,
            train=train,
        )
        advice = replace(
            advice, subset=subset, runs=(*advice.runs, *subset_runs), chunks=runner.chunks
        )
    stages.finish()
    return advice


def planned_epochs(method: str, budget: Budget, n_candidates: int) -> int:
    """The most probe-epochs a job can take: the screening run, the paired probes and
    the whole subset-search budget (a search that stops early finishes sooner), at
    every share of ``main_train_fractions``."""
    total = 0
    probed = n_candidates
    if method != "probe":
        total += budget.seeds * budget.screening_epochs
        probed = (
            0
            if method == "screen"
            else min(n_candidates, budget.confirm_top + budget.confirm_random)
        )
    if probed:
        total += budget.replicate_cap * (1 + probed) * budget.epochs
    if budget.subset_search:
        total += budget.subset_budget * budget.seeds * budget.epochs
    return total * max(1, len(budget.main_train_fractions))  # a run per share


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
        replicates=budget.replicate_cap,
        seed=seed,
        val_fraction=budget.val_fraction,
        test_fraction=budget.test_fraction,
        main_train_fraction=budget.main_train_fraction,
    )


def build_advice(
    problem: Problem,
    splits: Splits,
    runs: Sequence[ProbeRun],
    budget: Budget,
    *,
    seed: int,
    metric: MetricName,
    interval: IntervalMethod = DEFAULT_INTERVAL,
    method: str = DEFAULT_METHOD,
    chunks: int = 1,
    screen: ScreenResult | None = None,
    confirmation: Confirmation | None = None,
    recipe: str = DEFAULT_RECIPE,
    rounds: int = 1,
    evidence: Sequence[LabelEvidence] | None = None,
) -> Advice:
    """Score the runs into advice. With a ``screen`` result every candidate gets its
    proxy scores and those without single-candidate runs become ``not_probed``; with a
    ``confirmation`` (``screen+probe``) the proxy's agreement with the probes too.
    Every candidate carries its label evidence (:func:`engine.evidence.label_evidence`)
    and the flag of :func:`engine.evidence.with_evidence`, which changes no gain,
    verdict or rank; ``evidence`` is that label evidence when the caller already has it."""
    race = schedule(budget)
    test_train_ratio = holdout_ratio(splits, problem)
    baseline, ranked = summarise(
        runs,
        main=TaskInfo.of(problem.main),
        candidates=[TaskInfo.of(t) for t in problem.candidates],
        metric=metric,
        test_train_ratio=test_train_ratio,
        interval=interval,
        levels=lambda trained: (race.confidence_at(trained), race.q_level_at(trained)),
        fdr=budget.fdr,
    )
    agreement = None
    if screen is not None:
        names = [t.name for t in problem.candidates]
        probed = sorted({r.spec.aux[0] for r in runs if len(r.spec.aux) == 1})
        ranked = with_screening(ranked, screen, names, probed, budget.screen_proxy)
        if confirmation is not None:
            agreement = agreement_of(ranked, screen, names, confirmation, budget.screen_proxy)
    ranked = with_evidence(ranked, label_evidence(problem) if evidence is None else evidence)
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
        agreement=agreement,
        recipe=recipe,
        confidence=race.confidence,
        rounds=rounds,
        test_train_ratio=test_train_ratio,
    )


def holdout_ratio(splits: Splits, problem: Problem) -> float:
    """n_test / n_train for the corrected resampled interval.

    The correction accounts for the variance that comes from which of the main task's
    labelled rows each replicate holds out, so n_train counts the main-labelled rows a
    replicate may train on: every main-labelled row outside its validation and test
    sets, whether or not ``main_train_fraction`` uses its label. Rows without a main
    label never rotate into a test set and do not count (counting them, as auxsel 0.1
    did, shrank the correction on sparse data; docs/validity.md measured its coverage).
    """
    n_train = int(np.isfinite(problem.main.values[splits.pool[0]]).sum())
    return int(splits.test.shape[1]) / max(1, n_train)
