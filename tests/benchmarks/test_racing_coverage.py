"""The racing coverage simulation runs the engine's job loop on gains it knows."""

import numpy as np
import pytest

from benchmarks.racing_coverage import TRUE_GAINS, budget_for, compare, simulate, summary
from engine import Budget


def test_simulated_jobs_report_the_engines_rounds_and_intervals():
    racing = Budget(seeds=5, race_step=5, max_replicates=10)
    fixed = budget_for("fixed", 10)
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


def test_the_schedules_run_side_by_side_on_the_same_jobs():
    table, by_truth = compare(6, ["normal"], [10], ["fixed", "obf", "bonferroni"])
    assert list(table.index) == [("normal", 10, s) for s in ("fixed", "obf", "bonferroni")]
    fixed = table.loc[("normal", 10, "fixed")]
    assert fixed["replicates per job"] == 10 * (1 + len(TRUE_GAINS))
    assert fixed["saved vs fixed"] == 0
    for name in ("obf", "bonferroni"):
        raced = table.loc[("normal", 10, name)]
        assert raced["replicates per job"] <= fixed["replicates per job"]
        assert raced["saved vs fixed"] >= 0
    # Per true gain: a row per distinct gain, a column per schedule.
    assert list(by_truth.index) == sorted(set(TRUE_GAINS))
    assert by_truth.shape[1] == 3
    assert ((by_truth >= 0) & (by_truth <= 1)).all().all()
    # Only the spending differs between the raced rows: the last look's interval is
    # narrower under O'Brien-Fleming than under Bonferroni (0.956 against 0.975).
    assert (
        table.loc[("normal", 10, "obf"), "mean interval width"]
        < table.loc[("normal", 10, "bonferroni"), "mean interval width"]
    )


def test_a_schedule_names_its_options():
    budget = budget_for("obf+futility=0.2+fdr=bh", 15)
    assert (budget.race_spending, budget.race_futility, budget.fdr) == ("obf", 0.2, "bh")
    assert budget.max_replicates == 15
    fixed = budget_for("fixed+fdr=storey", 10)
    assert (fixed.seeds, fixed.max_replicates, fixed.fdr) == (10, 10, "storey")
    with pytest.raises(ValueError, match="options are"):
        budget_for("obf+cap=3", 10)
