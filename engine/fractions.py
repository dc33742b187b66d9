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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace

from engine.budget import Budget
from engine.chunks import resolve_device
from engine.curves import FractionAdvice, mechanism_hints
from engine.errors import TooFewRowsError
from engine.evidence import LabelCoverage, label_coverage
from engine.methods import Method
from engine.metrics import MetricName
from engine.pipeline import LocalRunner, execute, planned_epochs, splits_for
from engine.problem import Problem
from engine.ranking import Advice
from engine.scoring import IntervalMethod
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
    shares = plan.main_train_fractions
    per_share = planned_epochs(method, share_budget(plan, shares[0]), len(problem.candidates))
    total = per_share * len(shares)
    answers: list[FractionAdvice] = []
    coverage: list[list[LabelCoverage]] = []
    chunks = 0
    advice: Advice | None = None
    # Every share's splits first (cheap): a share too small fails before any training.
    all_splits = [splits_at(problem, plan, share, seed) for share in shares]
    for i, (share, splits) in enumerate(zip(shares, all_splits, strict=True)):
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
        answers.append(
            FractionAdvice(
                main_train_fraction=share,
                main_train=splits.n_main_train,
                baseline=advice.baseline,
                candidates=advice.candidates,
                rounds=advice.rounds,
                runs=advice.runs,
            )
        )
        coverage.append(label_coverage(problem, splits))
    assert advice is not None  # the budget holds at least one share here
    return combine_fractions(advice, plan, answers, coverage, chunks, metric)


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
