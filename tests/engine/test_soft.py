"""Soft parameter sharing probes: the coupling penalty, batched ≡ sequential, and the
two limits (coupling 0: independent trunks; a large coupling: hard sharing)."""

import math

import numpy as np
import pytest
import torch

from engine import (
    Budget,
    ProbeSpec,
    SpecError,
    advise,
    check_method,
    describe_recipe,
    make_task_family,
    pairwise_plan,
    prepare,
    recipe_budget,
    splits_for,
    train_probes,
)
from engine import run_probes as run_chunked
from engine.reference import train_sequential
from engine.soft import SMOOTHING, SoftProbeBatch, coupling_penalty
from engine.training_data import TrainingData


def _soft(budget, sharing, **changes):
    return Budget(**{**budget.__dict__, "sharing": sharing, **changes})


def _close(a, b, tol=1e-4):
    assert a.spec == b.spec
    assert a.best_epoch == b.best_epoch
    assert a.epochs == b.epochs
    for name in a.metrics:
        assert a.metrics[name] == pytest.approx(b.metrics[name], abs=tol), name
    np.testing.assert_allclose(a.curve, b.curve, atol=tol)


# ---------------------------------------------------------------- the penalty by hand


def test_penalties_of_hand_computed_matrices():
    # Layer 1: m = (3, 0), a = (0, 4): ||m - a||² = 9 + 16; [m; a] = diag(3, 4) has
    # singular values 4 and 3. Layer 2: m = a = (1, 2, 2): distance 0; [m; a] has rank
    # 1, singular value sqrt(2)·3.
    layer1 = (torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 4.0]]))
    layer2 = (torch.tensor([[1.0, 2.0, 2.0]]), torch.tensor([[1.0, 2.0, 2.0]]))
    l2 = coupling_penalty([layer1, layer2], "soft_l2")
    assert l2.tolist() == [25.0]
    trace = coupling_penalty([layer1, layer2], "soft_trace")
    # Smoothed: Σ sqrt(σ² + ε), within 2·sqrt(ε) of the nuclear norm.
    assert trace.item() == pytest.approx(7 + 3 * math.sqrt(2), abs=2 * math.sqrt(SMOOTHING))
    with pytest.raises(ValueError, match="hard"):
        coupling_penalty([layer1], "hard")


def test_trace_penalty_is_smooth_where_the_trunks_are_equal():
    m = torch.tensor([[1.0, 2.0, 2.0]], requires_grad=True)
    a = torch.tensor([[1.0, 2.0, 2.0]], requires_grad=True)
    coupling_penalty([(m, a)], "soft_trace").sum().backward()
    # ||[m; a]||_* = sqrt(2)·|m| when a = m, with gradient m / (sqrt(2)·|m|) for each.
    expected = torch.tensor([[1.0, 2.0, 2.0]]) / (3 * math.sqrt(2))
    assert m.grad is not None
    assert a.grad is not None
    torch.testing.assert_close(m.grad, expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(a.grad, expected, rtol=1e-4, atol=1e-6)


def _tiny_batch(specs):
    return SoftProbeBatch(
        specs,
        n_features=2,
        hidden=(3, 2),
        main_outputs=1,
        aux_outputs=[1, 1],
        seed=0,
        device=torch.device("cpu"),
    )


def _trunks_by_hand(batch, probe):
    """Per layer, probe's main and candidate (weight, bias) read from the stacked
    tensors slice by slice: group-local slice j is the main trunk, K + j the candidate's."""
    group = next(g for g, (_, s, e) in enumerate(batch.groups) if s <= probe < e)
    _, start, stop = batch.groups[group]
    k, j, h1 = stop - start, probe - start, batch.hidden[0]
    w, b = batch.first_w[group], batch.first_b[group]
    layers = [
        [
            (w[:, s * h1 : (s + 1) * h1], b[0, s * h1 : (s + 1) * h1])
            for s in (j, k + j)  # main, candidate
        ]
    ]
    for ws, bs in zip(batch.deep_w_groups, batch.deep_b_groups, strict=True):
        layers.append([(ws[group][s], bs[group][s, 0]) for s in (j, k + j)])
    return layers


@pytest.mark.parametrize("sharing", ["soft_l2", "soft_trace"])
def test_batch_penalty_is_the_hand_computed_one_per_probe(sharing):
    specs = [ProbeSpec(0), ProbeSpec(0, (0,)), ProbeSpec(1, (1,))]
    batch = _tiny_batch(specs)
    # Move every candidate trunk away from its main trunk.
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for t in batch.shared_parameters():
            t.add_(0.3 * torch.randn(t.shape, generator=generator))
    with torch.no_grad():
        penalty = batch.penalty(sharing)
        by_hand = {probe: _trunks_by_hand(batch, probe) for probe in (1, 2)}
    assert penalty[0].item() == 0.0  # a baseline has no candidate trunk to couple
    for probe in (1, 2):
        expected = 0.0
        for (wm, bm), (wa, ba) in by_hand[probe]:
            m = torch.cat([wm.flatten(), bm]).detach().double()
            a = torch.cat([wa.flatten(), ba]).detach().double()
            if sharing == "soft_l2":
                expected += float(((m - a) ** 2).sum())
            else:
                sigma = np.linalg.svd(torch.stack([m, a]).numpy(), compute_uv=False)
                expected += float(np.sqrt(sigma**2 + SMOOTHING).sum())
        assert penalty[probe].item() == pytest.approx(expected, rel=1e-5)


def test_candidate_trunks_start_as_the_main_trunks():
    batch = _tiny_batch([ProbeSpec(0), ProbeSpec(0, (0,)), ProbeSpec(0, (1,))])
    for probe in range(3):
        for main, candidate in _trunks_by_hand(batch, probe):
            torch.testing.assert_close(main[0], candidate[0], rtol=0, atol=0)
            torch.testing.assert_close(main[1], candidate[1], rtol=0, atol=0)
    assert batch.penalty("soft_l2").tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="one candidate"):
        _tiny_batch([ProbeSpec(0, (0, 1))])


# ---------------------------------------------------------------- batched ≡ sequential


@pytest.mark.parametrize(
    ("sharing", "coupling", "dropout"), [("soft_l2", 0.1, 0.3), ("soft_trace", 0.05, 0.2)]
)
def test_batched_equals_sequential_soft(small_data, sharing, coupling, dropout):
    problem, budget, data = small_data
    recipe = _soft(budget, sharing, coupling=coupling, dropout=dropout, weight_decay=1e-2, epochs=4)
    specs = pairwise_plan(len(problem.candidates), recipe.seeds)
    batched = train_probes(data, specs, recipe, seed=0, metric="loss")
    sequential = train_sequential(data, specs, recipe, seed=0, metric="loss")
    for a, b in zip(batched, sequential, strict=True):
        _close(a, b)
    # A baseline is the main trunk alone, hard sharing's baseline, whatever the coupling.
    bases = [s for s in specs if s.is_baseline]
    hard = train_probes(data, bases, _soft(recipe, "hard"), seed=0, metric="loss")
    for h in hard:
        _close(next(r for r in batched if r.spec == h.spec), h, tol=1e-6)
    # Chunks and order change nothing either.
    tiny = Budget(**{**recipe.__dict__, "memory_mb": 0.05})
    chunked, n_chunks = run_chunked(
        problem, data.splits, list(reversed(specs)), tiny, seed=0, metric="loss", data=data
    )
    assert n_chunks > 1
    for a, b in zip(batched, reversed(chunked), strict=True):
        _close(a, b)


# ---------------------------------------------------------------- the two limits


@pytest.mark.parametrize("sharing", ["soft_l2", "soft_trace"])
def test_coupling_zero_gives_exactly_the_baseline(small_data, sharing):
    """Independent trunks cannot help: with coupling 0 each pairing's main trunk trains
    exactly as its replicate's baseline, which is hard sharing's baseline."""
    problem, budget, data = small_data
    recipe = _soft(budget, sharing, coupling=0.0, dropout=0.2)
    specs = pairwise_plan(len(problem.candidates), recipe.seeds)
    runs = train_probes(data, specs, recipe, seed=0, metric="loss")
    hard = train_probes(
        data, [s for s in specs if s.is_baseline], _soft(recipe, "hard"), seed=0, metric="loss"
    )
    baselines = {r.spec.replicate: r for r in runs if r.spec.is_baseline}
    for run in runs:
        base = baselines[run.spec.replicate]
        assert run.best_epoch == base.best_epoch
        for name, value in run.metrics.items():
            assert value == pytest.approx(base.metrics[name], abs=1e-6), (run.spec.key, name)
        np.testing.assert_allclose(run.curve, base.curve, atol=1e-6)
    for h in hard:
        _close(baselines[h.spec.replicate], h, tol=1e-6)


def test_large_coupling_behaves_like_hard_sharing():
    """A coupling that ties the two trunks (here to about 1% of their norm) gives gains
    within 0.025 (test loss, standardised) of hard sharing's, in the same order and
    with the same signs, where coupling 0 gives none. (Much larger couplings are not
    closer: under Adam the stiff penalty's gradient fills the second-moment estimate
    and slows the trunks' learning, so gains drift negative.)"""
    family = make_task_family(
        n_rows=800, n_features=8, relatedness=(1.0,), n_noise=1, label_noise=0.3, seed=0
    )
    problem = prepare(family.frame, family.main, list(family.candidates))
    budget = Budget(
        seeds=3,
        max_replicates=3,
        epochs=15,
        batch_size=32,
        lr=3e-3,
        hidden=(32,),
        patience=0,
        main_train_fraction=0.05,
    )
    data = TrainingData(problem, splits_for(problem, budget, seed=0), torch.device("cpu"))
    specs = pairwise_plan(2, budget.seeds)

    def gains(recipe):
        runs = train_probes(data, specs, recipe, seed=0, metric="loss")
        loss = np.array([r.metrics["loss"] for r in runs]).reshape(budget.seeds, 3)
        return (loss[:, :1] - loss[:, 1:]).mean(axis=0)  # per candidate, + = better

    hard = gains(budget)
    tied = gains(_soft(budget, "soft_l2", coupling=1.0))
    free = gains(_soft(budget, "soft_l2", coupling=0.0))
    assert hard[0] > 0.025 > 0 > hard[1]  # a helpful and a harmful candidate
    np.testing.assert_allclose(tied, hard, atol=0.025)
    assert np.sign(tied).tolist() == np.sign(hard).tolist()
    np.testing.assert_allclose(free, 0.0, atol=1e-6)


# ---------------------------------------------------------------- the recipe knobs


def test_sharing_is_a_checked_recipe_knob():
    with pytest.raises(SpecError) as caught:
        Budget(sharing="soft")  # type: ignore[arg-type]
    assert caught.value.field == "budget.sharing"
    with pytest.raises(SpecError) as caught:
        Budget(coupling=-1.0)
    assert caught.value.field == "budget.coupling"
    with pytest.raises(SpecError) as caught:
        Budget(sharing="soft_l2", subset_search=True)
    assert caught.value.field == "budget.sharing"
    with pytest.raises(SpecError) as caught:
        check_method("screen+probe", Budget(sharing="soft_trace"))
    assert caught.value.field == "budget.sharing"

    quick = recipe_budget("quick", sharing="soft_trace", coupling=0.5)
    assert (quick.sharing, quick.coupling, quick.hidden) == ("soft_trace", 0.5, (32,))
    assert describe_recipe("full", Budget()).endswith("hard parameter sharing")
    assert "(changed)" not in describe_recipe("full", Budget(coupling=3.0))  # unused
    text = describe_recipe("quick", quick)
    assert "(changed)" in text
    assert text.endswith("soft parameter sharing (trace norm, coupling 0.5)")


def test_advise_answers_for_soft_sharing():
    family = make_task_family(n_rows=300, n_features=6, relatedness=(0.9,), n_noise=1, seed=1)
    advice = advise(
        family.frame,
        family.main,
        list(family.candidates),
        recipe="quick",
        sharing="soft_l2",
        coupling=0.5,
        seeds=2,
        max_replicates=2,
        epochs=3,
    )
    assert advice.budget["sharing"] == "soft_l2"
    assert advice.recipe_text.endswith("soft parameter sharing (L2 distance, coupling 0.5)")
    assert {c.name for c in advice.candidates} == set(family.candidates)
    assert all(math.isfinite(c.gain) for c in advice.candidates)


def test_soft_training_makes_no_host_sync_per_step():
    """As for hard sharing (tests/engine/test_training.py): the penalty reads nothing on
    the host, so the count of host reads does not grow with the number of steps."""
    from torch.profiler import ProfilerActivity, profile

    family = make_task_family(n_rows=300, n_features=6, relatedness=(0.9,), n_noise=1, seed=0)
    problem = prepare(family.frame, family.main, list(family.candidates))
    budget = Budget(seeds=2, max_replicates=2, epochs=2, patience=0, hidden=(16, 8), dropout=0.2)
    data = TrainingData(problem, splits_for(problem, budget, 0), torch.device("cpu"))
    reads = {"aten::_local_scalar_dense", "aten::is_nonzero"}

    def in_fused_optimizer(event):
        parent = event.cpu_parent
        while parent is not None:
            if parent.name.startswith("aten::_fused_adam"):
                return True
            parent = parent.cpu_parent
        return False

    def syncs(sharing, batch_size):
        recipe = _soft(budget, sharing, batch_size=batch_size)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            train_probes(data, pairwise_plan(1, 1), recipe, seed=0, metric="loss")
        return sum(1 for e in prof.events() if e.name in reads and not in_fused_optimizer(e))

    assert syncs("soft_trace", 64) == syncs("soft_trace", 8) <= 10  # 2 vs 15 steps


def test_cost_and_chunks_count_the_second_trunk():
    from engine import JobShape, chunk_plan, estimate_cost

    shape = JobShape(rows=3000, n_features=20, n_candidates=8)
    hard = estimate_cost("probe", Budget(), shape)
    soft = estimate_cost("probe", Budget(sharing="soft_l2"), shape)
    assert 1.5 < soft.flops / hard.flops < 2.1
    assert 1.5 < soft.probe_bytes / hard.probe_bytes < 2.1
    family = make_task_family(n_rows=300, seed=0)
    problem = prepare(family.frame, family.main, list(family.candidates))
    specs = pairwise_plan(len(problem.candidates), 5)
    hard_chunks = chunk_plan(specs, problem, Budget(memory_mb=5))
    soft_chunks = chunk_plan(specs, problem, Budget(memory_mb=5, sharing="soft_trace"))
    assert len(soft_chunks) > len(hard_chunks)
