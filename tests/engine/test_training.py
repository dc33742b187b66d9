"""The batched engine trains each probe exactly as if it were trained alone."""

import math

import numpy as np
import pytest
import torch

from engine import (
    DEFAULT_RECIPE,
    RECIPES,
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
from engine.errors import SpecError
from engine.objective import ProbeObjective
from engine.probe import ProbeBatch
from engine.reference import train_sequential
from engine.sampling import DropoutMasks
from engine.training_data import TrainingData
from tests.engine.conftest import probe_batch


def _close(a, b, tol=1e-4):
    assert a.spec == b.spec
    assert a.best_epoch == b.best_epoch
    assert a.epochs == b.epochs
    for name in a.metrics:
        assert a.metrics[name] == pytest.approx(b.metrics[name], abs=tol), name
    np.testing.assert_allclose(a.curve, b.curve, atol=tol)
    # The main head's training and validation loss at the best epoch (the gap hint's).
    assert set(a.fit) == {"train_loss", "val_loss"}
    for name in b.fit:
        assert a.fit[name] == pytest.approx(b.fit[name], abs=tol), name
    # The training losses per epoch, main and auxiliary, as each probe trained.
    assert len(a.train_curve) == len(b.train_curve) == a.epochs
    np.testing.assert_allclose(a.train_curve, b.train_curve, atol=tol)
    assert len(a.aux_curve) == len(b.aux_curve) == (a.epochs if a.spec.aux else 0)
    np.testing.assert_allclose(a.aux_curve, b.aux_curve, atol=tol)


def _assert_batched_equals_sequential(data, specs, budget):
    batched = train_probes(data, specs, budget, seed=0, metric="loss")
    sequential = train_sequential(data, specs, budget, seed=0, metric="loss")
    for a, b in zip(batched, sequential, strict=True):
        _close(a, b)


def test_batched_equals_sequential_nn_loop(small_data):
    problem, budget, data = small_data
    specs = pairwise_plan(len(problem.candidates), budget.seeds)
    _assert_batched_equals_sequential(data, specs, budget)


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


# ---------------------------------------------------------------- the faithful recipe


def _recipe(budget, **changes):
    return Budget(**{**budget.__dict__, **changes})


@pytest.mark.parametrize(
    ("hidden", "dropout", "weight_decay"),
    [
        ((24, 12), 0.3, 1e-2),
        ((256, 64), 0.2, 1e-4),
        ((32,), 0.5, 0.0),
        tuple(RECIPES[DEFAULT_RECIPE][k] for k in ("hidden", "dropout", "weight_decay")),
    ],
)
def test_batched_equals_sequential_with_dropout_and_weight_decay(
    small_data, hidden, dropout, weight_decay
):
    problem, budget, data = small_data
    recipe = _recipe(
        budget, hidden=hidden, dropout=dropout, weight_decay=weight_decay, lr=1e-3, epochs=4
    )
    specs = pairwise_plan(len(problem.candidates), recipe.seeds)
    _assert_batched_equals_sequential(data, specs, recipe)


def test_dropout_is_deterministic_and_changes_training(small_data):
    problem, budget, data = small_data
    specs = pairwise_plan(len(problem.candidates), 1)
    recipe = _recipe(budget, dropout=0.3, weight_decay=1e-3)
    first = train_probes(data, specs, recipe, seed=0, metric="loss")
    again = train_probes(data, specs, recipe, seed=0, metric="loss")
    assert [r.metrics for r in first] == [r.metrics for r in again]
    assert [r.curve for r in first] == [r.curve for r in again]
    plain = train_probes(data, specs, budget, seed=0, metric="loss")
    assert [r.curve for r in plain] != [r.curve for r in first]


def test_baseline_and_pairing_see_the_same_dropout_masks(small_data):
    problem, budget, data = small_data
    specs = [ProbeSpec(0), ProbeSpec(0, (1,)), ProbeSpec(1), ProbeSpec(1, (2,))]
    batch = probe_batch(problem, budget, data, specs)
    masks = DropoutMasks([0, 1], budget.hidden, 0.5, seed=0, device=torch.device("cpu"))
    drawn = masks.draw(64)
    rows = data.pool[:2, :64]
    with torch.no_grad():
        h = batch.hidden_groups(data.inputs(rows, torch.tensor([0, 1])), dropout=drawn)
    # Same initial trunk and the same masks: a replicate's baseline and pairing agree.
    torch.testing.assert_close(h[0][0], h[0][1])
    torch.testing.assert_close(h[1][0], h[1][1])
    # The masks drop units (about half) and differ between replicates.
    for per_layer in drawn:
        for m in per_layer:
            assert 0.3 < float((m == 0).float().mean()) < 0.7
    assert not torch.equal(drawn[0][0], drawn[1][0])
    # A replicate's masks depend on it alone, and blocks of rows give the same masks
    # as drawing minibatch by minibatch (the reference loop's order).
    alone = DropoutMasks([1], budget.hidden, 0.5, seed=0, device=torch.device("cpu"))
    steps = [alone.draw(n)[0] for n in (20, 20, 24)]
    for layer in range(len(budget.hidden)):
        torch.testing.assert_close(
            torch.cat([s[layer] for s in steps], dim=1), drawn[1][layer], rtol=0, atol=0
        )


def test_fused_path_gives_autograds_gradients(small_data):
    """The training path (ReLU and dropout in place on the matmul's output and on the
    incoming gradient, the bias as a column of ones) gives the same gradients as plain
    autograd, step after step, with minibatches of different sizes."""
    problem, budget, data = small_data
    specs = [ProbeSpec(0), ProbeSpec(0, (1,)), ProbeSpec(1), ProbeSpec(1, (0, 2))]
    batch = probe_batch(problem, budget, data, specs)
    masks = DropoutMasks([0, 1], budget.hidden, 0.3, seed=0, device=torch.device("cpu"))
    reps = torch.tensor([0, 1])
    for start, stop in ((0, 64), (64, 104)):
        rows = data.pool[:2, start:stop]
        drawn = masks.draw(stop - start)
        grads = []
        for fused in (True, False):
            out = batch.head_outputs(data.inputs(rows, reps), dropout=drawn, fused=fused)
            weights = torch.linspace(-1, 1, out.numel()).view(out.shape)
            grads.append(torch.autograd.grad((out * weights).sum(), batch.parameters()))
        for fused_grad, plain_grad in zip(*grads, strict=True):
            torch.testing.assert_close(fused_grad, plain_grad, rtol=1e-5, atol=1e-6)


def test_training_makes_no_host_sync_per_step(small_data):
    """Reading a tensor's value on the host (``item``, ``bool``...) waits for the GPU;
    the engine does that per epoch, never per minibatch: the count does not grow with
    the number of steps. (On CPU the fused Adam kernel reads its step counter inside
    the kernel; on CUDA that counter stays on the device, so those reads are not
    counted.)"""
    from torch.profiler import ProfilerActivity, profile

    problem, budget, data = small_data
    specs = pairwise_plan(len(problem.candidates), budget.seeds)
    reads = {"aten::_local_scalar_dense", "aten::is_nonzero"}

    def in_fused_optimizer(event):
        parent = event.cpu_parent
        while parent is not None:
            if parent.name.startswith("aten::_fused_adam"):
                return True
            parent = parent.cpu_parent
        return False

    def syncs(batch_size):
        recipe = _recipe(budget, batch_size=batch_size, dropout=0.2, epochs=2, patience=0)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            train_probes(data, specs, recipe, seed=0, metric="loss")
        return sum(1 for e in prof.events() if e.name in reads and not in_fused_optimizer(e))

    few, many = syncs(128), syncs(16)  # 3 vs 23 steps per epoch
    assert few == many
    assert few <= 10  # the per-epoch early-stopping check and the final read-out


def test_training_keeps_the_device_and_dtype(small_data):
    problem, budget, data = small_data
    specs = pairwise_plan(len(problem.candidates), 1)
    batch = probe_batch(problem, budget, data, specs)
    assert all(p.dtype == torch.float32 and p.device == data.device for p in batch.parameters())
    masks = DropoutMasks([0], budget.hidden, 0.2, seed=0, device=data.device)
    assert all(m.dtype == torch.float32 and m.device == data.device for m in masks.draw(8)[0])


@pytest.mark.parametrize(
    ("field", "value"), [("dropout", 1.0), ("dropout", -0.1), ("weight_decay", -1e-3)]
)
def test_regularisation_options_are_bounded(field, value):
    with pytest.raises(SpecError) as caught:
        Budget(**{field: value})
    assert caught.value.field == f"budget.{field}"
    assert Budget().dropout == 0.0
    assert Budget().weight_decay == 0.0


def test_stopped_probes_leave_the_batch_and_the_rest_train_on_unchanged(small_data, monkeypatch):
    """A probe that early stopping ended is read out and dropped from the batch at the
    end of its epoch: the other probes (dropout masks, batch order and optimiser state
    included) train on exactly as if alone, and no later step computes a stopped probe."""
    problem, budget, data = small_data
    recipe = _recipe(budget, dropout=0.2, weight_decay=1e-3, epochs=40, patience=2, lr=1e-2)
    specs = pairwise_plan(len(problem.candidates), recipe.seeds)
    widths: list[int] = []
    head_outputs = ProbeBatch.head_outputs

    def counted(self, x, **kwargs):
        if kwargs.get("fused") and not kwargs.get("main_only"):
            widths.append(self.n_probes)  # a training step
        return head_outputs(self, x, **kwargs)

    monkeypatch.setattr(ProbeBatch, "head_outputs", counted)
    batched = train_probes(data, specs, recipe, seed=0, metric="loss")
    assert len({run.epochs for run in batched}) > 1  # probes stopped at different epochs
    steps_per_epoch = -(-data.pool.shape[1] // recipe.batch_size)
    # Every step computed only probes still training: the probe-steps are exactly the
    # epochs each probe trained.
    assert sum(widths) == steps_per_epoch * sum(run.epochs for run in batched)
    for spec, in_batch in zip(specs, batched, strict=True):
        _close(train_probes(data, [spec], recipe, seed=0, metric="loss")[0], in_batch)


def test_a_cancel_after_probes_left_the_batch_keeps_their_runs(small_data):
    problem, budget, data = small_data
    recipe = _recipe(budget, epochs=40, patience=2, lr=1e-2)
    specs = pairwise_plan(len(problem.candidates), recipe.seeds)
    whole = {run.spec: run for run in train_probes(data, specs, recipe, seed=0, metric="loss")}
    last = max(run.epochs for run in whole.values())
    cancel_at = sorted({run.epochs for run in whole.values()})[1]  # after a first stop
    assert cancel_at < last
    kept: list = []

    def cancel(done, total):
        if done >= len(specs) * cancel_at:
            raise Cancelled

    with pytest.raises(Cancelled):
        train_probes(
            data, specs, recipe, seed=0, metric="loss", progress=cancel, finished=kept.extend
        )
    # Every probe that had stopped by then, those already out of the batch included,
    # is kept with the numbers of the whole run; no other probe is.
    assert sorted(run.spec for run in kept) == sorted(
        spec for spec, run in whole.items() if run.epochs <= cancel_at
    )
    for run in kept:
        _close(run, whole[run.spec])
