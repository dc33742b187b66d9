"""Adaptive replicates (racing): a job trains in rounds, and each round after the first
adds replicates only for the candidates whose answer is still open.

Round 1 trains ``seeds`` replicates of the baseline and of every candidate; each later
round trains ``race_step`` more replicates of the baseline and of the *open* candidates,
until none is open or ``max_replicates`` is reached. A candidate is settled when its
verdict is called (``helpful``/``harmful`` at the job's false discovery rate) or when
its whole interval lies within ±``NEGLIGIBLE`` of the baseline's metric (a gain too
small to matter either way); otherwise it is open.

Looking at the data after every round and stopping when an interval excludes zero
would make a 95% interval cover less than 95% of the time. The schedule fixes the
number of looks in advance (``looks``) and spends the error rate evenly over them
(Bonferroni over looks): every look's intervals are at confidence 1 − 0.05/looks and its
q-gate at 0.05/looks, so the interval reported when the job stops covers the gain with
at least 95% probability whichever look it stopped at. With one look (``max_replicates``
≤ ``seeds``) this is the plain 95% interval and q ≤ 0.05.

Every decision depends only on finished runs, so a runner that replays stored runs
takes the same rounds as the one that trained them (jobs resume).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.budget import Budget
from engine.metrics import MetricName
from engine.probe import ProbeSpec
from engine.ranking import Advice, CandidateAdvice
from engine.scoring import Q_LEVEL
from engine.training import ProbeRun

NEGLIGIBLE = 0.01
"""A gain within ±1% of the baseline's metric counts as no gain (the validity
benchmark scores helpful recall on references with relative gain of at least 1%)."""


@dataclass(frozen=True)
class RaceSchedule:
    """How a job's replicates are spent: ``first`` in round 1, then ``step`` per round
    for the open candidates, at most ``cap`` per candidate."""

    first: int
    step: int
    cap: int

    @property
    def looks(self) -> int:
        """Rounds the job may run (the number of looks the error rate is spread over)."""
        return 1 + math.ceil(max(0, self.cap - self.first) / self.step)

    @property
    def confidence(self) -> float:
        """Each look's interval confidence (0.95 with a single look)."""
        return 1 - 0.05 / self.looks

    @property
    def q_level(self) -> float:
        """Each look's false discovery rate for verdicts (``Q_LEVEL`` with one look)."""
        return Q_LEVEL / self.looks

    def rounds(self) -> list[range]:
        """The replicate indices of each round."""
        bounds = [self.first]
        while bounds[-1] < self.cap:
            bounds.append(min(self.cap, bounds[-1] + self.step))
        return [range(lo, hi) for lo, hi in zip([0, *bounds[:-1]], bounds, strict=True)]


def schedule(budget: Budget) -> RaceSchedule:
    """The budget's racing schedule (one round when ``max_replicates`` ≤ ``seeds``)."""
    return RaceSchedule(budget.seeds, budget.race_step, budget.replicate_cap)


def round_specs(replicates: range, candidates: Sequence[int]) -> list[ProbeSpec]:
    """Per replicate of the round: the baseline, then each candidate paired with it."""
    return [
        spec
        for r in replicates
        for spec in [ProbeSpec(r), *(ProbeSpec(r, (c,)) for c in candidates)]
    ]


def is_open(candidate: CandidateAdvice, baseline_metric: float) -> bool:
    """Whether more replicates could still change this candidate's answer."""
    if candidate.verdict in ("helpful", "harmful", "not_probed"):
        return False
    if not (math.isfinite(candidate.ci_low) and math.isfinite(candidate.ci_high)):
        return True  # too few replicates for an interval yet
    band = NEGLIGIBLE * abs(baseline_metric) if math.isfinite(baseline_metric) else 0.0
    return not (-band <= candidate.ci_low and candidate.ci_high <= band)


def open_candidates(
    ranked: Sequence[CandidateAdvice], names: Sequence[str], baseline_metric: float
) -> list[int]:
    """Indices (in ``names``' order) of the candidates still open after a round."""
    index = {name: i for i, name in enumerate(names)}
    return sorted(index[c.name] for c in ranked if is_open(c, baseline_metric))


def race(
    budget: Budget,
    probed: Sequence[int],
    names: Sequence[str],
    metric: MetricName,
    train: Callable[[Sequence[ProbeSpec], int], list[ProbeRun]],
    advise: Callable[[Sequence[ProbeRun], int], Advice],
) -> tuple[list[ProbeRun], int, Advice | None]:
    """Train the ``probed`` candidates (indices into ``names``) round by round: round 1
    all of them, later rounds the open ones, until none is open or the schedule ends.

    ``train(specs, planned)`` trains a round's specs; ``planned`` is the round's
    probe-epochs had every probed candidate stayed open (progress plans every round in
    full, so a job that settles early jumps). ``advise(runs, rounds)`` scores the runs
    so far. Returns every run, the rounds taken and the last round's advice (``None``
    when nothing was probed).
    """
    runs: list[ProbeRun] = []
    active = list(probed)
    rounds = 0
    advice: Advice | None = None
    for replicates in schedule(budget).rounds() if active else []:
        specs = round_specs(replicates, active)
        planned = len(replicates) * (1 + len(probed)) * budget.epochs
        runs.extend(train(specs, planned))
        rounds += 1
        advice = advise(runs, rounds)
        active = open_candidates(
            advice.candidates, names, advice.baseline.metrics.get(metric, math.nan)
        )
        if not active:
            break
    return runs, rounds, advice
