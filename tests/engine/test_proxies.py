"""Screening proxies: the batched measurement equals a plain loop over candidates, the
screening run is reproducible, and on tables with a known answer the proxies rank
related candidates above unrelated ones."""

import pytest
import torch

from engine import (
    Budget,
    ProbeSpec,
    ScreenResult,
    SpecError,
    advise,
    make_task_family,
    pairwise_plan,
    screen,
)
from engine.objective import ProbeObjective
from engine.proxies import _MainRows, _Meter
from tests.engine.conftest import probe_batch


def _screen_batch(problem, budget, data, seed=0):
    n = len(problem.candidates)
    specs = [ProbeSpec(r, tuple(range(n))) for r in range(budget.seeds)]
    batch = probe_batch(problem, budget, data, specs, seed=seed)
    return batch, ProbeObjective(data, batch)


def _loop_proxies(objective, rows, main_rows, lr):
    """The measurement written plainly: one candidate after another, each with its own
    backward pass and lookahead copy of the trunk."""
    batch = objective.batch
    shared = batch.shared_parameters()
    x_main = objective.inputs(main_rows)
    main = objective.main_loss(batch.trunk(x_main), main_rows)
    g_main = batch.per_probe(torch.autograd.grad(main.sum(), shared))  # [P, S]
    n_slots = objective.slot_active.shape[1]
    drop, cosine = [], []
    for c in range(n_slots):
        _, aux = objective.losses(rows)
        g_c = torch.autograd.grad(aux[:, c].sum(), shared)
        flat = batch.per_probe(g_c)
        with torch.no_grad():
            stepped = [p - lr * g for p, g in zip(shared, g_c, strict=True)]
            after = objective.main_loss(batch.trunk(x_main, stepped), main_rows)
            drop.append(main.detach() - after)
            cosine.append(torch.cosine_similarity(flat, g_main, dim=-1))
    return torch.stack(drop, 1), torch.stack(cosine, 1), main.detach()


@pytest.mark.parametrize("chunk", [1, 2, 100])
def test_batched_measurement_equals_a_loop_over_candidates(small_data, chunk):
    problem, budget, data = small_data  # binary main; multiclass, sparse, regression aux
    batch, objective = _screen_batch(problem, budget, data)
    rows = data.pool[:, :64]
    main_rows = _MainRows(data, objective.replicates, seed=0, batch_size=48).draw()
    meter = _Meter(objective, lr=0.05, chunk=chunk)
    meter.measure(rows, main_rows, usable=torch.ones(batch.n_probes, dtype=torch.bool))

    drop, cosine, before = _loop_proxies(objective, rows, main_rows, lr=0.05)
    measured = meter.counts == 1
    assert measured.all()  # every slot has labels in these 64 rows
    torch.testing.assert_close(meter.drop.float(), drop, atol=2e-6, rtol=1e-4)
    torch.testing.assert_close(meter.base.float(), before[:, None].expand_as(drop))
    torch.testing.assert_close(meter.cosine.float(), cosine, atol=1e-5, rtol=1e-4)
    result = meter.result(epochs=1)
    expected = (drop / before[:, None] / 0.05).numpy()
    assert result.values["lookahead"] == pytest.approx(expected, rel=1e-3, abs=1e-4)


def test_per_probe_rows_are_each_probes_own_trunk(small_data):
    problem, budget, data = small_data
    specs = pairwise_plan(len(problem.candidates), 2)  # 2 groups of K = 4 probes
    batch = probe_batch(problem, budget, data, specs)
    width = budget.hidden[0]
    flat = batch.per_probe(batch.shared_parameters())  # [P, S]
    for p in range(batch.n_probes):
        group = next(g for g, (_, a, b) in enumerate(batch.groups) if a <= p < b)
        j = p - batch.groups[group][1]
        cols = slice(j * width, (j + 1) * width)
        own = [
            batch.first_w[group][:, cols].reshape(-1),
            batch.first_b[group][:, cols].reshape(-1),
            *(w[p].reshape(-1) for w in batch.deep_w),
            *(b[p].reshape(-1) for b in batch.deep_b),
        ]
        torch.testing.assert_close(flat[p], torch.cat(own))
    # With a leading dimension (one row per candidate), each slice flattens the same way.
    stacked = batch.per_probe([torch.stack([t, 2 * t]) for t in batch.shared_parameters()])
    torch.testing.assert_close(stacked[1], 2 * flat)


def test_screen_is_reproducible_and_reports_its_epochs(small_data):
    problem, budget, data = small_data
    plan = Budget(**{**budget.__dict__, "screen_epochs": 3, "proxy_every": 1})
    seen = []
    a = screen(data, plan, seed=0, progress=lambda d, t: seen.append((d, t)))
    b = screen(data, plan, seed=0)
    assert seen == [(2, 6), (4, 6), (6, 6)]  # 2 replicates x 3 epochs
    assert a.probes == 2
    assert a.epochs == 3
    for name in ("lookahead", "grad_cosine"):
        assert a.values[name].shape == (2, len(problem.candidates))
        assert (a.values[name] == b.values[name]).all()
    assert (a.measured > 0).all()
    assert (abs(a.values["grad_cosine"]) <= 1).all()
    assert set(a.proxies(0)) == {"lookahead", "grad_cosine"}
    again = ScreenResult.from_dict(a.to_dict())
    assert again.proxies(1) == a.proxies(1)


def test_method_screen_ranks_by_proxy_and_measures_no_gain():
    family = make_task_family(n_rows=600, n_features=8, relatedness=(0.9, 0.0), seed=1)
    advice = advise(family.frame, "y", list(family.candidates), method="screen", seeds=2, epochs=4)
    assert advice.method == "screen"
    assert advice.runs == ()
    assert advice.agreement is None
    assert advice.baseline.seeds == 0
    assert all(c.verdict == "not_probed" and not c.probed for c in advice.candidates)
    scores = [c.proxies["lookahead"] for c in advice.candidates]
    assert scores == sorted(scores, reverse=True)
    assert [c.rank for c in advice.candidates] == [1, 2, 3, 4]
    frame = advice.to_frame()
    assert frame["gain"].isna().all()
    assert list(frame["lookahead"]) == scores


@pytest.mark.parametrize(
    ("option", "field"),
    [
        ({"proxy_every": 0}, "budget.proxy_every"),
        ({"screen_epochs": 0}, "budget.screen_epochs"),
        ({"screen_proxy": "tag"}, "budget.screen_proxy"),
        ({"proxy_rows": "val"}, "budget.proxy_rows"),
        ({"confirm_top": 0}, "budget.confirm_top"),
        ({"confirm_random": -1}, "budget.confirm_random"),
        ({"subset_budget": 0}, "budget.subset_budget"),
        ({"subset_width": 0}, "budget.subset_width"),
        ({"subset_search": "yes"}, "budget.subset_search"),
        ({"subset_weighting": "max"}, "budget.subset_weighting"),
    ],
)
def test_screening_budget_options_are_validated(option, field):
    with pytest.raises(SpecError) as info:
        Budget(**option)
    assert info.value.field == field


def test_screen_epochs_default_to_at_most_ten():
    assert Budget(epochs=30).screening_epochs == 10
    assert Budget(epochs=4).screening_epochs == 4
    assert Budget(epochs=30, screen_epochs=25).screening_epochs == 25
