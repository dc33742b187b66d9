"""Racing (engine.racing): later rounds train only the candidates still open, the error
rate is spread over the planned looks, and the decisions replay from stored runs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from engine import Budget, ProbeRun, ProbeSpec, prepare, splits_for
from engine.pipeline import execute
from engine.racing import NEGLIGIBLE, RaceSchedule, is_open, schedule
from engine.ranking import CandidateAdvice
from engine.training import ProgressFn
from tests.engine.conftest import candidate_advice

# The test gain of each candidate per replicate (loss: lower is better, so a positive
# gain here is a loss this much below the baseline's 1.0).
GAINS = {
    0: lambda r: 0.30 + 0.01 * (r % 3),  # large and steady: helpful in round 1
    1: lambda r: 0.002 * ((-1) ** r),  # tiny either way: negligible in round 1
    2: lambda r: 0.05 * (1 if r % 2 else -0.6),  # noisy, open until the cap
}


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


def _job(problem, **budget):
    plan = Budget(**budget)
    runner = ScriptedRunner()
    advice = execute(
        problem, splits_for(problem, plan, 0), plan, runner, method="probe", seed=0, metric="loss"
    )
    return advice, runner


def test_later_rounds_train_only_open_candidates(problem):
    advice, runner = _job(problem, seeds=4, race_step=4, max_replicates=12)
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
    assert advice.confidence == pytest.approx(1 - 0.05 / 3)


def test_a_job_stops_when_every_candidate_is_settled(problem, monkeypatch):
    monkeypatch.setitem(GAINS, 2, lambda r: 0.20 + 0.01 * (r % 2))  # helpful at once too
    advice, runner = _job(problem, seeds=4, race_step=4, max_replicates=12)
    assert len(runner.rounds) == 1
    assert advice.rounds == 1
    assert advice.confidence == pytest.approx(1 - 0.05 / 3)  # the looks planned, not taken


def test_no_racing_when_the_cap_is_the_first_round(problem):
    advice, runner = _job(problem, seeds=4, max_replicates=4)
    assert len(runner.rounds) == 1
    assert advice.confidence == pytest.approx(0.95)


def test_schedule_spreads_the_error_rate_over_its_looks():
    race = RaceSchedule(first=5, step=5, cap=12)
    assert [list(r) for r in race.rounds()] == [
        list(range(5)),
        list(range(5, 10)),
        list(range(10, 12)),
    ]
    assert race.looks == 3
    assert race.confidence == pytest.approx(1 - 0.05 / 3)
    assert race.q_level == pytest.approx(0.05 / 3)
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
