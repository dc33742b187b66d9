"""Racing (engine.racing): later rounds train only the candidates still open, the error
rate is split over the planned looks (each candidate's interval at its own look's
share), and the decisions replay from stored runs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from engine import RACE_SPENDINGS, Budget, ProbeRun, ProbeSpec, SpecError, prepare, splits_for
from engine.pipeline import execute
from engine.racing import (
    ALPHA,
    NEGLIGIBLE,
    RaceSchedule,
    conditional_power,
    is_open,
    schedule,
)
from engine.ranking import CandidateAdvice
from engine.scoring import Q_LEVEL
from engine.training import ProgressFn
from tests.engine.conftest import candidate_advice

# The test gain of each candidate per replicate (loss: lower is better, so a positive
# gain here is a loss this much below the baseline's 1.0).
GAINS = {
    0: lambda r: 0.30 + 0.01 * (r % 3),  # large and steady: helpful in round 1
    1: lambda r: 0.0002 * ((-1) ** r),  # tiny either way: negligible in round 1
    2: lambda r: 0.05 * (1 if r % 2 else -0.6),  # noisy, open until the cap
}


class ReplayRunner:
    """A runner that trains nothing and answers from stored runs (a resumed job)."""

    chunks = 1

    def __init__(self, stored: Sequence[ProbeRun]) -> None:
        self.stored = {r.spec: r for r in stored}
        self.rounds: list[list[ProbeSpec]] = []

    def screen(self, progress: ProgressFn):  # pragma: no cover - method "probe" only
        raise AssertionError("no screening in these jobs")

    def probes(self, specs: Sequence[ProbeSpec], progress: ProgressFn) -> list[ProbeRun]:
        self.rounds.append(list(specs))
        return [self.stored[spec] for spec in specs]  # KeyError: a spec never trained


class ScriptedRunner:
    """A runner whose probe results are written in advance (no training): records what
    each round asked for."""

    chunks = 1

    def __init__(self) -> None:
        self.rounds: list[list[ProbeSpec]] = []

    def screen(self, progress: ProgressFn):  # pragma: no cover - method "probe" only
        raise AssertionError("no screening in these jobs")

    def probes(self, specs: Sequence[ProbeSpec], progress: ProgressFn) -> list[ProbeRun]:
        self.rounds.append(list(specs))
        runs = []
        for spec in specs:
            loss = 1.0 - (GAINS[spec.aux[0]](spec.replicate) if spec.aux else 0.0)
            metrics = {"loss": loss, "rmse": math.sqrt(loss), "r2": 1 - loss}
            runs.append(ProbeRun(spec, metrics, (loss,), 0, 1))
        return runs


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 5)), columns=["x0", "x1", "y", "a", "b"])
    frame["c"] = rng.normal(size=200)
    return prepare(frame, "y", ["a", "b", "c"], features=["x0", "x1"])


def _job(problem, runner=None, **budget):
    plan = Budget(**budget)
    runner = runner or ScriptedRunner()
    advice = execute(
        problem, splits_for(problem, plan, 0), plan, runner, method="probe", seed=0, metric="loss"
    )
    return advice, runner


@pytest.mark.parametrize("spending", RACE_SPENDINGS)
def test_later_rounds_train_only_open_candidates(problem, spending):
    advice, runner = _job(problem, seeds=4, race_step=4, max_replicates=12, race_spending=spending)
    first, *later = runner.rounds
    assert {s.aux for s in first} == {(), (0,), (1,), (2,)}
    assert {s.replicate for s in first} == set(range(4))
    # Candidate 0 was called helpful and candidate 1 negligible after round 1: no
    # replicate of either is trained again; candidate 2 and the baselines it pairs
    # with get the rest, up to the cap.
    assert len(later) == 2
    for round_specs, replicates in zip(later, (range(4, 8), range(8, 12)), strict=True):
        assert {s.aux for s in round_specs} == {(), (2,)}
        assert {s.replicate for s in round_specs} == set(replicates)
    by_name = {c.name: c for c in advice.candidates}
    assert by_name["a"].verdict == "helpful"
    assert by_name["a"].seeds == 4
    assert by_name["b"].verdict == "inconclusive"
    assert by_name["b"].seeds == 4
    assert by_name["c"].seeds == 12
    assert advice.baseline.seeds == 12
    assert advice.rounds == 3
    # Each interval is at the look its candidate stopped at (the union bound over the
    # looks covers it whichever that was); the advice states the lowest.
    race = RaceSchedule(4, 4, 12, spending)
    alphas = race.alphas
    assert by_name["a"].confidence == pytest.approx(1 - alphas[0])
    assert by_name["b"].confidence == pytest.approx(1 - alphas[0])
    assert by_name["c"].confidence == pytest.approx(1 - alphas[2])
    assert advice.confidence == pytest.approx(1 - max(alphas))


@pytest.mark.parametrize("spending", RACE_SPENDINGS)
def test_a_resumed_job_replays_the_same_rounds(problem, spending):
    budget = {"seeds": 4, "race_step": 4, "max_replicates": 12, "race_spending": spending}
    trained, first = _job(problem, **budget)
    replayed, again = _job(problem, ReplayRunner(trained.runs), **budget)
    assert again.rounds == first.rounds
    assert replayed.candidates == trained.candidates
    assert replayed.rounds == trained.rounds


def test_a_job_stops_when_every_candidate_is_settled(problem, monkeypatch):
    monkeypatch.setitem(GAINS, 2, lambda r: 0.20 + 0.01 * (r % 2))  # helpful at once too
    advice, runner = _job(
        problem, seeds=4, race_step=4, max_replicates=12, race_spending="bonferroni"
    )
    assert len(runner.rounds) == 1
    assert advice.rounds == 1
    assert advice.confidence == pytest.approx(1 - 0.05 / 3)  # the looks planned, not taken


@pytest.mark.parametrize("spending", RACE_SPENDINGS)
def test_no_racing_when_the_cap_is_the_first_round(problem, spending):
    advice, runner = _job(problem, seeds=4, max_replicates=4, race_spending=spending)
    assert len(runner.rounds) == 1
    assert advice.confidence == 0.95
    assert {c.confidence for c in advice.candidates} == {0.95}


def test_schedule_spreads_the_error_rate_over_its_looks():
    race = RaceSchedule(first=5, step=5, cap=12)
    assert [list(r) for r in race.rounds()] == [
        list(range(5)),
        list(range(5, 10)),
        list(range(10, 12)),
    ]
    assert race.looks == 3
    assert race.spending == "obf"  # the default
    bonferroni = RaceSchedule(first=5, step=5, cap=12, spending="bonferroni")
    assert bonferroni.confidence == pytest.approx(1 - 0.05 / 3)
    assert [bonferroni.q_level_at(n) for n in (5, 10, 12)] == pytest.approx([0.05 / 3] * 3)
    assert schedule(Budget(seeds=5, max_replicates=3)).looks == 1
    assert schedule(Budget(seeds=1)).cap == 1  # one replicate: no interval to race on
    assert Budget().replicate_cap == Budget().max_replicates


def _candidate(verdict: str, low: float, high: float) -> CandidateAdvice:
    return candidate_advice(
        "a",
        (low + high) / 2,
        se=1.0,
        ci_low=low,
        ci_high=high,
        rel_gain=0.0,
        verdict=verdict,
        seeds=5,
    )


def test_a_candidate_is_settled_by_its_verdict_or_a_negligible_interval():
    band = NEGLIGIBLE * 2.0
    assert not is_open(_candidate("helpful", 0.1, 0.3), 2.0)
    assert not is_open(_candidate("harmful", -0.3, -0.1), 2.0)
    assert not is_open(_candidate("inconclusive", -band / 2, band / 2), 2.0)
    assert is_open(_candidate("inconclusive", -band * 2, band / 2), 2.0)
    assert is_open(_candidate("inconclusive", math.nan, math.nan), 2.0)


def test_conditional_power_is_the_current_trends_chance_at_the_cap():
    plan = RaceSchedule(5, 5, 10, "obf")  # the last look's alpha 0.04443
    # By hand: t = 5/10; the last look's interval needs |t-statistic| >= 2.3344 (Student
    # t, 9 df, 1 - 0.04443/2); under the trend the final z is N(z/sqrt(t), 1 - t):
    # z = 1: Phi((1.4142 - 2.3344) / 0.7071) = Phi(-1.3013) = 0.0966;
    # z = 2: Phi((2.8284 - 2.3344) / 0.7071) = Phi(0.6986) = 0.7576.
    for z, power in ((1.0, 0.0966), (2.0, 0.7576)):
        for sign in (1, -1):  # a harmful trend has the same chance of being called
            candidate = candidate_advice("a", sign * z * 0.1, se=0.1, seeds=5)
            assert conditional_power(candidate, plan) == pytest.approx(power, abs=5e-4)
    # At the cap, or without a statistic yet, there is nothing to stop on.
    assert conditional_power(candidate_advice("a", 0.0, se=0.1, seeds=10), plan) == 1.0
    assert conditional_power(candidate_advice("a", 0.1, se=math.nan, seeds=1), plan) == 1.0


def test_futility_closes_a_candidate_unlikely_to_be_called():
    plan = RaceSchedule(5, 5, 10, "obf")
    weak = candidate_advice("a", 0.1, se=0.1, ci_low=-0.2, ci_high=0.4, seeds=5)  # z = 1
    strong = candidate_advice("a", 0.2, se=0.1, ci_low=-0.1, ci_high=0.5, seeds=5)  # z = 2
    assert is_open(weak, 2.0, plan, futility=0.0)  # off: only verdicts and the band settle
    assert is_open(weak, 2.0)
    assert not is_open(weak, 2.0, plan, futility=0.1)  # power 0.097 < 0.1
    assert is_open(weak, 2.0, plan, futility=0.09)
    assert is_open(strong, 2.0, plan, futility=0.5)  # power 0.76


def test_a_futile_candidate_gets_no_more_replicates(problem):
    budget = {"seeds": 4, "race_step": 4, "max_replicates": 12, "race_futility": 0.1}
    advice, runner = _job(problem, **budget)
    # Candidate 2 measures 0.01 +- 0.023 after round 1 (z 0.43, conditional power at the
    # cap about 0.02): futile, so no later round is trained at all, and its interval is
    # round 1's (the union bound over the looks covers it whichever look it stopped at).
    assert len(runner.rounds) == 1
    by_name = {c.name: c for c in advice.candidates}
    assert by_name["c"].seeds == 4
    assert by_name["c"].verdict == "inconclusive"
    assert by_name["c"].confidence == pytest.approx(1 - RaceSchedule(4, 4, 12).alphas[0])
    # A resumed job replays the same decision.
    replayed, again = _job(problem, ReplayRunner(advice.runs), **budget)
    assert again.rounds == runner.rounds
    assert replayed.candidates == advice.candidates
    # Without futility the same job trains it to the cap.
    assert {c.name: c.seeds for c in _job(problem, **budget | {"race_futility": 0})[0].candidates}[
        "c"
    ] == 12


def test_futility_is_a_probability_below_one():
    for bad in (-0.1, 1.0):
        with pytest.raises(SpecError, match="race_futility") as raised:
            Budget(race_futility=bad)
        assert raised.value.field == "budget.race_futility"


@pytest.mark.parametrize("spending", RACE_SPENDINGS)
@pytest.mark.parametrize(("first", "step", "cap"), [(5, 5, 10), (5, 5, 20), (2, 3, 13), (3, 1, 9)])
def test_the_looks_spend_at_most_the_error_rate(spending, first, step, cap):
    race = RaceSchedule(first, step, cap, spending)
    assert len(race.alphas) == race.looks == len(race.rounds())
    assert all(a > 0 for a in race.alphas)
    assert sum(race.alphas) <= ALPHA + 1e-15
    assert sum(race.alphas) == pytest.approx(ALPHA)  # nothing left unspent
    # Every replicate count maps to the look of the round its last replicate is in.
    for k, replicates in enumerate(race.rounds()):
        assert race.look_of(replicates.stop) == k
        assert race.confidence_at(replicates.stop) == 1 - race.alphas[k]
        assert race.q_level_at(replicates.stop) == pytest.approx(Q_LEVEL * race.alphas[k] / ALPHA)
    assert race.confidence == min(race.confidence_at(r.stop) for r in race.rounds())


@pytest.mark.parametrize("spending", RACE_SPENDINGS)
def test_one_look_is_the_plain_95_percent_interval(spending):
    race = RaceSchedule(5, 5, 5, spending)
    assert race.alphas == (ALPHA,)
    assert race.confidence == race.confidence_at(5) == 0.95
    assert race.q_level_at(5) == Q_LEVEL


def test_obrien_fleming_spends_most_at_the_last_look():
    race = RaceSchedule(5, 5, 20, "obf")
    assert list(race.alphas) == sorted(race.alphas)
    assert race.alphas[-1] > race.alphas[-2] > race.alphas[0]
    # Two looks at 5 of 10 replicates: Lan-DeMets' O'Brien-Fleming-like spending.
    assert RaceSchedule(5, 5, 10, "obf").alphas == pytest.approx((0.00557, 0.04443), abs=1e-5)
    # So a candidate raced to the cap gets a narrower interval than under Bonferroni.
    assert race.confidence_at(20) < RaceSchedule(5, 5, 20, "bonferroni").confidence_at(20)


def test_an_unknown_spending_names_the_option():
    with pytest.raises(SpecError, match="race_spending") as raised:
        Budget(race_spending="linear")  # type: ignore[arg-type]
    assert raised.value.field == "budget.race_spending"


def test_storeys_q_values_call_what_bh_leaves_open(problem, monkeypatch):
    """A job of three candidates: one clear helper, one at p = 0.046, one at p = 0.43.
    BH's q for the second is 0.046 * 3 / 2 = 0.069 (inconclusive); no p-value is above
    0.5, so Storey's estimated null share is 1 / 1.5 and its q is 0.046: helpful. The
    interval is the same either way."""
    steps = {0: (0.30, 0.31, 0.32, 0.30), 1: (0.05, 0.02, 0.04, 0.01), 2: (0.03, -0.02, 0.04, 0.0)}
    for c, values in steps.items():
        monkeypatch.setitem(GAINS, c, lambda r, values=values: values[r])
    bh, _ = _job(problem, seeds=4, max_replicates=4, fdr="bh")
    storey, _ = _job(problem, seeds=4, max_replicates=4, fdr="storey")
    b_bh, b_storey = bh.candidate("b"), storey.candidate("b")
    assert b_bh.p_value == pytest.approx(0.0462, abs=1e-4)
    assert b_bh.q_value == pytest.approx(1.5 * b_bh.p_value)
    assert b_storey.q_value == pytest.approx(b_bh.p_value)
    assert (b_bh.ci_low, b_bh.ci_high) == (b_storey.ci_low, b_storey.ci_high)
    assert b_bh.ci_low > 0
    assert (b_bh.verdict, b_storey.verdict) == ("inconclusive", "helpful")
    for advice in (bh, storey):
        assert advice.candidate("a").verdict == "helpful"
        assert advice.candidate("c").verdict == "inconclusive"


def test_an_unknown_fdr_method_names_the_option():
    with pytest.raises(SpecError, match="fdr") as raised:
        Budget(fdr="by")  # type: ignore[arg-type]
    assert raised.value.field == "budget.fdr"
