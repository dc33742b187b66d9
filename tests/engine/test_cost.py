"""The cost estimate (engine.estimate_cost): pure arithmetic that agrees with the
chunk planner's memory estimate and scales the way training does."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine import Budget, JobShape, estimate_cost, pairwise_plan, recipe_budget
from engine.plan import chunk_plan, probe_bytes, probe_memory_bytes

LARGEST = Budget(seeds=50, epochs=1000, hidden=(4096,) * 8, batch_size=65536)
"""The largest spec every per-field limit allows (issue 16)."""


def test_largest_legal_spec_costs_what_the_issue_measured():
    """On a full-size table (1M rows): ~1e21 FLOPs and ~51 GiB for one probe."""
    shape = JobShape(rows=1_000_000, n_features=40, n_candidates=39)
    cost = estimate_cost("probe", LARGEST, shape)
    assert cost.probe_epochs == 50 * 1000 * 40
    assert 3e20 < cost.flops < 3e21
    assert 49 < cost.probe_bytes / 2**30 < 53
    assert cost.memory_bytes >= cost.probe_bytes + cost.data_bytes


def test_default_budget_plans_every_racing_round_at_most():
    """The estimate is the most a job can cost: every replicate racing may spend (20)
    for the baseline and each candidate, at the full recipe's 150 epochs; the quick
    recipe's first round alone is far cheaper."""
    shape = JobShape(rows=3000, n_features=32, n_candidates=8)
    cost = estimate_cost("probe", Budget(), shape)
    assert cost.probe_epochs == 20 * 9 * 150
    assert 1e12 < cost.flops < 1e13
    assert cost.memory_mb < 256
    quick = estimate_cost("probe", recipe_budget("quick", max_replicates=5), shape)
    assert quick.probe_epochs == 5 * 9 * 30
    assert quick.flops < cost.flops / 50


def test_memory_estimate_is_the_chunk_planners(small_data):
    """The estimate's one-probe memory is the formula chunk_plan packs chunks with."""
    problem = small_data[0]
    budget = Budget(seeds=2, epochs=3, hidden=(16, 8), batch_size=32)
    aux = max(t.n_outputs for t in problem.candidates)
    for n_aux in (0, 1, 3):
        assert probe_bytes(problem, budget, n_aux) == probe_memory_bytes(
            n_features=problem.features.n_features,
            hidden=budget.hidden,
            batch_size=budget.batch_size,
            main_outputs=problem.main.n_outputs,
            aux_outputs=aux,
            n_aux=n_aux,
        )
    specs = pairwise_plan(len(problem.candidates), 2)
    assert sum(map(len, chunk_plan(specs, problem, budget))) == len(specs)


def test_cost_scales_with_seeds_epochs_and_rows():
    shape = JobShape(rows=10_000, n_features=20, n_candidates=10)
    one_round = Budget(seeds=5, max_replicates=5, epochs=30)
    base = estimate_cost("probe", one_round, shape)
    for doubled in (replace(one_round, seeds=10), replace(one_round, epochs=60)):
        assert estimate_cost("probe", doubled, shape).flops == pytest.approx(2 * base.flops)
    raced = replace(one_round, max_replicates=10)  # racing may spend 5 more replicates
    assert estimate_cost("probe", raced, shape).flops == pytest.approx(2 * base.flops)
    bigger = JobShape(rows=20_000, n_features=20, n_candidates=10)
    assert estimate_cost("probe", one_round, bigger).flops == pytest.approx(2 * base.flops, 0.01)
    # A minibatch never holds more rows than a replicate trains on.
    tiny = JobShape(rows=100, n_features=20, n_candidates=10)
    assert estimate_cost("probe", Budget(batch_size=65536), tiny).probe_bytes == (
        estimate_cost("probe", Budget(batch_size=60), tiny).probe_bytes
    )


def test_screening_counts_its_joint_run_and_fewer_probes():
    shape = JobShape(rows=10_000, n_features=20, n_candidates=100)
    probe = estimate_cost("probe", Budget(), shape)
    screen = estimate_cost("screen+probe", Budget(), shape)
    assert screen.probe_epochs == 5 * 10 + 20 * (1 + 7) * 150
    assert screen.flops < probe.flops
    assert estimate_cost("screen", Budget(), shape).flops > 0
