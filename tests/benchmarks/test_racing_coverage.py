"""The racing coverage simulation runs the engine's job loop on gains it knows."""

import numpy as np

from benchmarks.racing_coverage import TRUE_GAINS, simulate, summary
from engine import Budget


def test_simulated_jobs_report_the_engines_rounds_and_intervals():
    racing = Budget(seeds=5, race_step=5, max_replicates=10)
    fixed = Budget(seeds=10, max_replicates=10)
    raced = simulate(12, "normal", racing)
    once = simulate(12, "normal", fixed)
    assert len(raced) == len(once) == 12 * len(TRUE_GAINS)
    # Racing trains 5 replicates of everything, then 5 more only of open candidates;
    # the fixed job trains all 10 in one round.
    assert set(raced.replicates) <= {5, 10}
    assert set(once.replicates) == {10}
    assert set(once.rounds) == {1}
    assert summary(raced)["replicates per job"] <= summary(once)["replicates per job"]
    # A large true gain is measured close to the truth, inside its own interval.
    big = raced[raced.truth == max(TRUE_GAINS)]
    assert np.allclose(big.gain.mean(), max(TRUE_GAINS), atol=0.02)
    assert (raced.ci_low <= raced.gain).all()
    assert (raced.gain <= raced.ci_high).all()
    # Over 120 candidates a 95% interval covering under 85% would be a broken interval.
    assert summary(raced)["coverage"] > 0.85
    assert summary(once)["coverage"] > 0.85
