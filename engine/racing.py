"""Adaptive replicates (racing): a job trains in rounds, and each round after the first
adds replicates only for the candidates whose answer is still open.

Round 1 trains ``seeds`` replicates of the baseline and of every candidate; each later
round trains ``race_step`` more replicates of the baseline and of the *open* candidates,
until none is open or ``max_replicates`` is reached. A candidate is settled when its
verdict is called (``helpful``/``harmful`` at the job's false discovery rate) or when
its whole interval lies within ±``NEGLIGIBLE`` of the baseline's metric (a gain too
small to matter either way), or, with ``race_futility`` > 0, when it is futile: its
conditional power — the chance that its interval at the cap excludes zero were its gain
what it measures so far (the "current trend") — is below ``race_futility``
(:func:`conditional_power`). Otherwise it is open.

Looking at the data after every round and stopping when an interval excludes zero
would make a 95% interval cover less than 95% of the time. The schedule fixes the
looks in advance (round k ends at ``n_k`` replicates, the last at the cap) and gives
look k an error rate α_k with α_1 + … + α_K ≤ 0.05 (``race_spending``):

- ``obf`` (default): O'Brien–Fleming-like Lan–DeMets spending, A(t) = 2 − 2Φ(z_0.975/√t)
  at information fraction t = n_k / cap, α_k = A(t_k) − A(t_{k−1}) (A(1) = 0.05). Early
  looks get little (5 of 10 replicates: α_1 = 0.0056) and the last look most
  (α_2 = 0.0444), so a candidate that runs to the cap is nearly as powerful as in a
  fixed job.
- ``pocock``: Pocock-like spending, A(t) = 0.05·ln(1 + (e − 1)t): more early, less last.
- ``bonferroni``: α_k = 0.05 / K at every look.

A candidate's interval and verdict are those of the look its last replicate was trained
in: confidence 1 − α_k and q-gate Q_LEVEL·α_k/0.05. Why the reported interval covers:
let I_k be the candidate's interval from its first n_k replicates at confidence 1 − α_k
(defined whether or not the job reaches look k). Each I_k is a fixed-n interval, so
P(I_k misses the true gain) ≤ α_k, whatever the stopping rule (exactly α_k for the
t-interval on normal paired differences; otherwise as good as that interval is at n_k).
The interval reported is I_S for the look S the candidate stopped at, so
P(it misses) ≤ P(some I_k misses) ≤ Σ α_k ≤ 0.05 (the union bound). That is all that is
claimed: the spending functions only choose how the 0.05 is split; no joint
distribution of the looks is used (which would allow more). A wrong-sign or null verdict
needs a missing interval, so it too has probability ≤ 0.05 per candidate; the q-gate's
split over the looks is the same heuristic as the interval's, not a proven false
discovery rate across looks. With one look (``max_replicates`` ≤ ``seeds``) every
schedule is the plain 95% interval and q ≤ Q_LEVEL. The argument holds for any stopping
rule, so stopping a futile candidate early keeps the coverage; what it costs is power
(a candidate stopped at look k keeps look k's wider interval and never gets a verdict
from a later look).

Every decision depends only on finished runs, so a runner that replays stored runs
takes the same rounds as the one that trained them (jobs resume).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

from scipy import stats

from engine.budget import Budget, RaceSpending
from engine.metrics import MetricName
from engine.probe_spec import ProbeSpec
from engine.ranking import Advice, CandidateAdvice
from engine.readout import ProbeRun
from engine.scoring import Q_LEVEL

NEGLIGIBLE = 0.01
"""A gain within ±1% of the baseline's metric counts as no gain (the validity
benchmark scores helpful recall on references with relative gain of at least 1%)."""

ALPHA = 0.05
"""The error rate a job's looks share (the plain interval's 95%)."""


def spent(spending: RaceSpending, t: float) -> float:
    """Error rate spent by information fraction ``t`` in (0, 1] (``ALPHA`` at 1)."""
    if t >= 1:
        return ALPHA
    if spending == "obf":
        z = float(stats.norm.ppf(1 - ALPHA / 2))
        return float(2 - 2 * stats.norm.cdf(z / math.sqrt(t)))
    if spending == "pocock":
        return ALPHA * math.log(1 + (math.e - 1) * t)
    raise ValueError(f"no spending function for {spending!r}")


@dataclass(frozen=True)
class RaceSchedule:
    """How a job's replicates are spent: ``first`` in round 1, then ``step`` per round
    for the open candidates, at most ``cap`` per candidate; ``spending`` splits the
    error rate over the rounds' looks."""

    first: int
    step: int
    cap: int
    spending: RaceSpending = "obf"

    @property
    def looks(self) -> int:
        """Rounds the job may run (the number of looks the error rate is spread over)."""
        return len(self.bounds())

    def bounds(self) -> list[int]:
        """The replicate count at the end of each round (the last is the cap)."""
        ends = [self.first]
        while ends[-1] < self.cap:
            ends.append(min(self.cap, ends[-1] + self.step))
        return ends

    @cached_property
    def alphas(self) -> tuple[float, ...]:
        """Each look's error rate; they sum to at most ``ALPHA`` (exactly, but for
        rounding)."""
        if self.spending == "bonferroni" or self.looks == 1:
            return (ALPHA / self.looks,) * self.looks
        ends = self.bounds()
        cumulative = [0.0, *(spent(self.spending, n / ends[-1]) for n in ends)]
        return tuple(b - a for a, b in pairwise(cumulative))

    def look_of(self, replicates: int) -> int:
        """The look (0-based) of a candidate trained on replicates 0 … ``replicates`` − 1:
        the round its last replicate belongs to."""
        return next((k for k, end in enumerate(self.bounds()) if replicates <= end), self.looks - 1)

    def confidence_at(self, replicates: int) -> float:
        """The interval confidence of a candidate with that many replicates."""
        return 1 - self.alphas[self.look_of(replicates)]

    def q_level_at(self, replicates: int) -> float:
        """The false discovery rate its verdict is gated at."""
        return Q_LEVEL * (self.alphas[self.look_of(replicates)] / ALPHA)

    @property
    def confidence(self) -> float:
        """The lowest confidence of any look's intervals (0.95 with a single look)."""
        return 1 - max(self.alphas)

    def rounds(self) -> list[range]:
        """The replicate indices of each round."""
        bounds = self.bounds()
        return [range(lo, hi) for lo, hi in zip([0, *bounds[:-1]], bounds, strict=True)]


def schedule(budget: Budget) -> RaceSchedule:
    """The budget's racing schedule (one round when ``max_replicates`` ≤ ``seeds``)."""
    return RaceSchedule(budget.seeds, budget.race_step, budget.replicate_cap, budget.race_spending)


def round_specs(replicates: range, candidates: Sequence[int]) -> list[ProbeSpec]:
    """Per replicate of the round: the baseline, then each candidate paired with it."""
    return [
        spec
        for r in replicates
        for spec in [ProbeSpec(r), *(ProbeSpec(r, (c,)) for c in candidates)]
    ]


def conditional_power(candidate: CandidateAdvice, plan: RaceSchedule) -> float:
    """The chance that the candidate's interval at the cap excludes zero, were its true
    gain the gain measured so far (Lan & Wittes' B-value under the current trend).

    At information fraction t = n / cap with z = gain / se, the final z-statistic is
    normal with mean z / √t and variance 1 − t given the data so far; it must pass the
    last look's critical value (Student t at cap − 1 degrees of freedom, the interval
    the cap's look reports). 1 when the candidate is at the cap or has no finite
    statistic yet (nothing to stop on)."""
    n, cap = candidate.seeds, plan.cap
    if n >= cap or not (math.isfinite(candidate.gain) and math.isfinite(candidate.se)):
        return 1.0
    if candidate.se <= 0:
        return 1.0 if candidate.gain != 0 else 0.0
    t = n / cap
    z = abs(candidate.gain) / candidate.se
    critical = float(stats.t.ppf(1 - plan.alphas[-1] / 2, cap - 1))
    return float(stats.norm.cdf((z / math.sqrt(t) - critical) / math.sqrt(1 - t)))


def is_open(
    candidate: CandidateAdvice,
    baseline_metric: float,
    plan: RaceSchedule | None = None,
    futility: float = 0.0,
) -> bool:
    """Whether more replicates could still change this candidate's answer (with a
    ``plan`` and ``futility`` > 0: and whether they are likely enough to)."""
    if candidate.verdict in ("helpful", "harmful", "not_probed"):
        return False
    if not (math.isfinite(candidate.ci_low) and math.isfinite(candidate.ci_high)):
        return True  # too few replicates for an interval yet
    band = NEGLIGIBLE * abs(baseline_metric) if math.isfinite(baseline_metric) else 0.0
    if -band <= candidate.ci_low and candidate.ci_high <= band:
        return False
    return plan is None or futility <= 0 or conditional_power(candidate, plan) >= futility


def open_candidates(
    ranked: Sequence[CandidateAdvice],
    names: Sequence[str],
    baseline_metric: float,
    plan: RaceSchedule | None = None,
    futility: float = 0.0,
) -> list[int]:
    """Indices (in ``names``' order) of the candidates still open after a round."""
    index = {name: i for i, name in enumerate(names)}
    return sorted(index[c.name] for c in ranked if is_open(c, baseline_metric, plan, futility))


class Race:
    """One racing run a round at a time, so that several (a job's shares, engine.fractions)
    can train their rounds together: :meth:`next_round` gives the next round's specs,
    :meth:`record` takes their runs and decides which candidates stay open. The rules
    are :func:`race`'s."""

    def __init__(
        self,
        budget: Budget,
        probed: Sequence[int],
        names: Sequence[str],
        metric: MetricName,
        advise: Callable[[Sequence[ProbeRun], int], Advice],
    ) -> None:
        self.budget = budget
        self.probed = list(probed)
        self.names = names
        self.metric = metric
        self.advise = advise
        self.plan = schedule(budget)
        self.schedule = self.plan.rounds() if self.probed else []
        self.runs: list[ProbeRun] = []
        self.active = list(self.probed)
        self.rounds = 0
        self.advice: Advice | None = None

    @property
    def done(self) -> bool:
        """Whether no candidate is open or the schedule has ended."""
        return not self.active or self.rounds >= len(self.schedule)

    def next_round(self) -> tuple[list[ProbeSpec], int]:
        """The next round's specs and its probe-epochs had every probed candidate stayed
        open (progress plans every round in full, so a job that settles early jumps)."""
        replicates = self.schedule[self.rounds]
        planned = len(replicates) * (1 + len(self.probed)) * self.budget.epochs
        return round_specs(replicates, self.active), planned

    def record(self, runs: Sequence[ProbeRun]) -> None:
        """The runs of :meth:`next_round`'s specs: score every run so far and keep the
        candidates still open."""
        self.runs.extend(runs)
        self.rounds += 1
        advice = self.advise(self.runs, self.rounds)
        self.advice = advice
        self.active = open_candidates(
            advice.candidates,
            self.names,
            advice.baseline.metrics.get(self.metric, math.nan),
            self.plan,
            self.budget.race_futility,
        )


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
    racing = Race(budget, probed, names, metric, advise)
    while not racing.done:
        racing.record(train(*racing.next_round()))
    return racing.runs, racing.rounds, racing.advice
