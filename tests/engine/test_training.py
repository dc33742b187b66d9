"""The batched engine trains each probe exactly as if it were trained alone."""

import math

import numpy as np
import pytest
import torch

from engine import (
    Budget,
    Cancelled,
    ProbeSpec,
    build_advice,
    make_task_family,
    pairwise_plan,
    prepare,
    splits_for,
    train_probes,
)
from engine import run_probes as run_chunked
from engine.reference import train_sequential
from engine.training import ProbeObjective, TrainingData
from tests.engine.conftest import probe_batch


def _close(a, b, tol=1e-4):
    assert a.spec == b.spec
    assert a.best_epoch == b.best_epoch
    assert a.epochs == b.epochs
    for name in a.metrics:
        assert a.metrics[name] == pytest.approx(b.metrics[name], abs=tol), name
    np.testing.assert_allclose(a.curve, b.curve, atol=tol)


def test_batched_equals_sequential_nn_loop(small_data):
    problem, budget, data = small_data
    specs = pairwise_plan(len(problem.candidates), budget.seeds)
    batched = train_probes(data, specs, budget, seed=0, metric="loss")
    sequential = train_sequential(data, specs, budget, seed=0, metric="loss")
    for a, b in zip(batched, sequential, strict=True):
        _close(a, b)


def test_probe_alone_equals_probe_in_batch(small_data):
    problem, budget, data = small_data
    specs = pairwise_plan(len(problem.candidates), budget.seeds)
    batched = train_probes(data, specs, budget, seed=0, metric="auroc")
    for spec, in_batch in zip(specs, batched, strict=True):
        _close(train_probes(data, [spec], budget, seed=0, metric="auroc")[0], in_batch)


def test_order_and_chunking_do_not_change_results(small_data):
    problem, budget, data = small_data
    specs = pairwise_plan(len(problem.candidates), budget.seeds)
    whole = train_probes(data, specs, budget, seed=0, metric="loss")
    shuffled = list(reversed(specs))
    again = train_probes(data, shuffled, budget, seed=0, metric="loss")
    assert [r.spec for r in again] == shuffled
    for a, b in zip(whole, reversed(again), strict=True):
        _close(a, b)
    tiny = Budget(**{**budget.__dict__, "memory_mb": 0.1})
    chunked, n_chunks = run_chunked(
        problem, data.splits, specs, tiny, seed=0, metric="loss", data=data
    )
    assert n_chunks > 1
    for a, b in zip(whole, chunked, strict=True):
        _close(a, b)


def test_baseline_and_pairings_share_initialisation(small_data):
    problem, budget, data = small_data
    specs = [ProbeSpec(0), ProbeSpec(0, (1,)), ProbeSpec(1), ProbeSpec(1, (2,))]
    batch = probe_batch(problem, budget, data, specs)
    h = budget.hidden[0]
    first = batch.first_w[0]  # replicate 0: [F, 2*H]
    torch.testing.assert_close(first[:, :h], first[:, h:])
    torch.testing.assert_close(batch.main_w[0], batch.main_w[1])
    torch.testing.assert_close(batch.deep_w[0][0], batch.deep_w[0][1])
    assert not torch.equal(batch.main_w[0], batch.main_w[2])  # replicates differ


def test_masked_labels_are_ignored_by_the_loss(small_data):
    problem, budget, data = small_data
    sparse = [c.name for c in problem.candidates].index("rel_1_0.30")
    assert problem.candidates[sparse].n_labelled < 0.35 * problem.n_rows
    batch = probe_batch(problem, budget, data, [ProbeSpec(0, (sparse,))])
    objective = ProbeObjective(data, batch)
    rows = data.pool[:1, :200]
    main_loss, aux_loss = objective.losses(rows)

    # The same loss computed by hand on the labelled rows only.
    with torch.no_grad():
        h = batch.trunk(data.inputs(rows, torch.tensor([0])))
        out = batch.aux_heads(h)[0, 0]  # [b, O]
        y = data.labels[rows[0], sparse + 1]
        known = torch.isfinite(y)
        assert 0 < known.sum() < len(y)
        expected = torch.nn.functional.cross_entropy(out[known], y[known].long())
    assert aux_loss[0, 0].item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.isfinite(main_loss).all()
    # And it trains end to end without error.
    run = train_probes(data, [ProbeSpec(0, (sparse,))], budget, seed=0, metric="loss")[0]
    assert run.error is None
    assert math.isfinite(run.metrics["loss"])


def test_progress_is_reported_and_cancellation_stops_training(small_data):
    problem, budget, data = small_data
    specs = pairwise_plan(len(problem.candidates), 1)
    seen = []
    train_probes(
        data, specs, budget, seed=0, metric="loss", progress=lambda d, t: seen.append((d, t))
    )
    total = len(specs) * budget.epochs
    assert seen[-1] == (total, total)
    assert all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

    def cancel(done, total):
        if done >= len(specs):
            raise Cancelled

    with pytest.raises(Cancelled):
        train_probes(data, specs, budget, seed=0, metric="loss", progress=cancel)


def test_diverging_probe_fails_alone(monkeypatch):
    family = make_task_family(n_rows=400, n_features=6, relatedness=(0.5,), n_noise=1, seed=0)
    frame = family.frame.copy()
    frame["huge"] = frame["noise_0"] * 1e20  # standardised away: stays finite
    problem = prepare(frame, "y", ["rel_0_0.50", "huge", "noise_0"])
    budget = Budget(seeds=1, epochs=4, batch_size=32)
    data = TrainingData(problem, splits_for(problem, budget, 0), torch.device("cpu"))
    specs = pairwise_plan(3, 1)
    clean = train_probes(data, specs, budget, seed=0, metric="loss")

    # Fault injection: candidate 2's loss turns NaN from the fourth step on.
    real_losses = ProbeObjective.losses_of
    steps = {"n": 0}

    def nan_for_candidate_2(self, outputs, targets):
        main, aux = real_losses(self, outputs, targets)
        steps["n"] += 1
        if steps["n"] > 3:
            poisoned = (self.batch.slot_task == 2) & self.batch.slot_active
            aux = torch.where(poisoned, torch.nan, aux)
        return main, aux

    monkeypatch.setattr(ProbeObjective, "losses_of", nan_for_candidate_2)
    runs = train_probes(data, specs, budget, seed=0, metric="loss")
    by_key = {r.spec.key: r for r in runs}
    assert by_key["r0:c2"].error == "training diverged (non-finite loss) in epoch 1"
    assert by_key["r0:c2"].epochs == 1
    # Every other probe trains on, exactly as without the fault.
    for before, after in zip(clean, runs, strict=True):
        if after.spec.key != "r0:c2":
            _close(before, after)
    # The diverged replicate is left out of the candidate's score, with its reason.
    advice = engine_build(problem, data, runs, budget)
    failed = advice.candidate("noise_0")
    assert failed.seeds == 0
    assert "diverged" in failed.errors[0]
    assert advice.candidate("huge").seeds == 1


def test_same_seed_same_numbers_and_other_seed_differs(small_data):
    problem, budget, data = small_data
    specs = pairwise_plan(len(problem.candidates), budget.seeds)
    a = train_probes(data, specs, budget, seed=0, metric="loss")
    b = train_probes(data, specs, budget, seed=0, metric="loss")
    c = train_probes(data, specs, budget, seed=1, metric="loss")
    assert [r.metrics for r in a] == [r.metrics for r in b]
    assert [r.curve for r in a] == [r.curve for r in b]
    assert [r.metrics for r in a] != [r.metrics for r in c]


def engine_build(problem, data, runs, budget):
    return build_advice(problem, data.splits, runs, budget, seed=0, metric="loss")
