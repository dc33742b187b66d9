"""A job at several shares of the main task's training labels (``main_train_fractions``):
one racing run per share, all on the same replicate splits.

Nesting and pairing come from how the engine draws everything: a replicate's split is
one permutation of each stratum of the main task's labelled rows, drawn from (seed,
replicate) alone; its test and validation rows are the permutation's first rows and
its kept training rows a prefix of the rest, ``round(share × n)`` of them. So at every
share a replicate holds out the same validation and test rows, and its kept main rows
at a smaller share are a subset of those at a larger one. The pool a replicate trains
on (every row outside validation and test) is the same at every share, and its
initialisation, minibatch order and dropout masks are drawn from (seed, replicate)
alone, so they are the same too: only which main labels enter the loss differs, and a
candidate's gains at two shares are a paired comparison over the replicates both ran.

Each share races on its own (a candidate settled with all main labels may still be open
with few), so the shares may end with different replicate counts; the first ``seeds``
replicates are always common to all of them.

So the shares train together (:func:`race_shares`): one ``TrainingData`` holds every
share (each probe reads the main labels of its own share), and each racing round trains
the round's probes of every share still racing in one batch of probes, a replicate's
probes at every share side by side (one minibatch order, one first-layer matmul). Each
share's answer is the one a run at that share alone gives, up to float rounding. The
methods that screen or search subsets run one share after another
(:func:`share_by_share`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace

from engine.budget import Budget
from engine.chunks import resolve_device
from engine.curves import FractionAdvice, mechanism_hints
from engine.errors import TooFewRowsError
from engine.evidence import LabelCoverage, label_coverage, label_evidence
from engine.methods import Method, Stages
from engine.metrics import MetricName
from engine.pipeline import (
    LocalRunner,
    Runner,
    build_advice,
    execute,
    planned_epochs,
    splits_for,
)
from engine.problem import Problem
from engine.racing import Race
from engine.ranking import Advice
from engine.readout import ProbeRun
from engine.recipes import DEFAULT_RECIPE
from engine.scoring import DEFAULT_INTERVAL, IntervalMethod
from engine.splits import Splits
from engine.training import ProgressFn
from engine.training_data import TrainingData


def share_budget(plan: Budget, share: float) -> Budget:
    """The budget of one share's run: ``main_train_fraction`` = share, no list."""
    return replace(plan, main_train_fraction=share, main_train_fractions=())


def advise_fractions(
    problem: Problem,
    plan: Budget,
    *,
    seed: int,
    device: str,
    metric: MetricName,
    interval: IntervalMethod,
    method: Method,
    recipe: str,
    progress: ProgressFn | None = None,
) -> Advice:
    """Run the job at every share of ``plan.main_train_fractions`` (ascending) and
    combine the answers: the largest share's advice, with every share's in
    ``fractions`` and the candidates' mechanism hints in ``hints``."""
    # Every share's splits first (cheap): a share too small fails before any training.
    shares = [(share, splits_at(problem, plan, share, seed)) for share in plan.main_train_fractions]
    if method != "probe" or plan.subset_search:
        return share_by_share(
            problem,
            plan,
            shares,
            seed=seed,
            device=device,
            metric=metric,
            interval=interval,
            method=method,
            recipe=recipe,
            progress=progress,
        )
    data = TrainingData(problem, shares[-1][1], resolve_device(device), shares=shares)
    return race_shares(
        problem,
        plan,
        shares,
        LocalRunner(data, plan, seed, metric),
        seed=seed,
        metric=metric,
        interval=interval,
        recipe=recipe,
        progress=progress,
    )


def race_shares(
    problem: Problem,
    plan: Budget,
    shares: Sequence[tuple[float, Splits]],
    runner: Runner,
    *,
    seed: int,
    metric: MetricName,
    interval: IntervalMethod = DEFAULT_INTERVAL,
    recipe: str = DEFAULT_RECIPE,
    progress: ProgressFn | None = None,
) -> Advice:
    """Method ``probe`` at every share (ascending, with its splits) at once: each share
    races on its own (:class:`engine.racing.Race`), and each round the probes of every
    share still racing train in one ``runner.probes`` call, each spec carrying its
    share (``ProbeSpec.share``; the runner's data holds every share). Each share's
    runs and advice are those of a run at that share alone (specs without a share)."""
    names = [t.name for t in problem.candidates]
    probed = range(len(names))
    stages = Stages(progress, planned_epochs("probe", plan, len(names)))
    evidence = label_evidence(problem)

    def share_race(share: float, splits: Splits) -> Race:
        at = share_budget(plan, share)

        def advise_on(runs: Sequence[ProbeRun], rounds: int) -> Advice:
            return build_advice(
                problem,
                splits,
                runs,
                at,
                seed=seed,
                metric=metric,
                interval=interval,
                method="probe",
                chunks=runner.chunks,
                recipe=recipe,
                rounds=rounds,
                evidence=evidence,
            )

        return Race(at, probed, names, metric, advise_on)

    races = [share_race(share, splits) for share, splits in shares]
    while running := [
        (share, r) for (share, _), r in zip(shares, races, strict=True) if not r.done
    ]:
        rounds = [(share, r, *r.next_round()) for share, r in running]
        # A replicate's probes at every share side by side: they share its minibatches.
        specs = sorted(
            (replace(spec, share=share) for share, _, at_share, _ in rounds for spec in at_share),
            key=lambda spec: spec.replicate,
        )
        planned = sum(size for *_, size in rounds)
        trained = dict(zip(specs, runner.probes(specs, stages.stage(planned)), strict=True))
        for share, r, specs_at, _ in rounds:
            r.record([_unshared(trained[replace(spec, share=share)]) for spec in specs_at])
    stages.finish()
    answers = []
    advice: Advice | None = None
    for (share, splits), r in zip(shares, races, strict=True):
        advice = r.advice if r.advice is not None else r.advise(r.runs, r.rounds)
        answers.append(_answer(share, splits, advice))
    assert advice is not None  # the budget holds at least one share here
    coverage = [label_coverage(problem, splits) for _, splits in shares]
    return combine_fractions(advice, plan, answers, coverage, runner.chunks, metric)


def share_by_share(
    problem: Problem,
    plan: Budget,
    shares: Sequence[tuple[float, Splits]],
    *,
    seed: int,
    device: str,
    metric: MetricName,
    interval: IntervalMethod,
    method: Method,
    recipe: str,
    progress: ProgressFn | None = None,
) -> Advice:
    """The job at every share, one whole run per share after another: for the methods
    that screen or search subsets (each share's own screening and search), and the
    reference that :func:`race_shares` is tested against."""
    per_share = planned_epochs(method, share_budget(plan, shares[0][0]), len(problem.candidates))
    total = per_share * len(shares)
    answers: list[FractionAdvice] = []
    chunks = 0
    advice: Advice | None = None
    for i, (share, splits) in enumerate(shares):
        at = share_budget(plan, share)
        data = TrainingData(problem, splits, resolve_device(device))
        runner = LocalRunner(data, at, seed, metric)
        advice = execute(
            problem,
            splits,
            at,
            runner,
            method=method,
            seed=seed,
            metric=metric,
            interval=interval,
            progress=_shifted(progress, i * per_share, total),
            recipe=recipe,
        )
        chunks += advice.chunks
        answers.append(_answer(share, splits, advice))
    assert advice is not None  # the budget holds at least one share here
    coverage = [label_coverage(problem, splits) for _, splits in shares]
    return combine_fractions(advice, plan, answers, coverage, chunks, metric)


def _answer(share: float, splits: Splits, advice: Advice) -> FractionAdvice:
    return FractionAdvice(
        main_train_fraction=share,
        main_train=splits.n_main_train,
        baseline=advice.baseline,
        candidates=advice.candidates,
        rounds=advice.rounds,
        runs=advice.runs,
    )


def _unshared(run: ProbeRun) -> ProbeRun:
    """A run as a run at its share alone has it (its spec without the share)."""
    return replace(run, spec=run.spec.alone)


def combine_fractions(
    largest: Advice,
    plan: Budget,
    answers: Sequence[FractionAdvice],
    coverage: Sequence[Sequence[LabelCoverage]],
    chunks: int,
    metric: MetricName,
) -> Advice:
    """The largest share's ``largest`` advice with every share's answer attached."""
    return replace(
        largest,
        budget=asdict(plan),
        chunks=chunks,
        fractions=tuple(answers),
        hints=mechanism_hints(answers, coverage, metric),
    )


def splits_at(problem: Problem, plan: Budget, share: float, seed: int) -> Splits:
    """One share's splits; too few rows at it is an error of ``main_train_fractions``."""
    try:
        return splits_for(problem, share_budget(plan, share), seed)
    except TooFewRowsError as exc:
        if exc.field != "budget.main_train_fraction":
            raise
        raise TooFewRowsError(
            f"At main_train_fractions share {share:g}: {exc.message}",
            field="budget.main_train_fractions",
            hint="Raise the smallest share, or add labelled rows.",
        ) from exc


def _shifted(progress: ProgressFn | None, offset: int, total: int) -> ProgressFn | None:
    """Progress of one share's run mapped onto the whole job's bar."""
    if progress is None:
        return None

    def report(done: int, _total: int) -> None:
        progress(min(total, offset + done), total)

    return report
