"""Train many probes at once: the baseline and every pairing of every replicate in one
batched model on shared minibatches, with early stopping per probe. The losses are in
:mod:`engine.objective`, the minibatch order and dropout masks in :mod:`engine.sampling`,
the stopping rule in :mod:`engine.stopping`, the read-out of runs in
:mod:`engine.readout`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from engine.budget import Budget
from engine.metrics import HIGHER_IS_BETTER, MetricName, compute_metric
from engine.objective import ProbeObjective, auxiliary_weights
from engine.probe import ProbeBatch
from engine.probe_spec import ProbeSpec
from engine.readout import ProbeRecord, ProbeRun, eval_rows, evaluate, read_runs
from engine.sampling import BatchOrder, DropoutMasks
from engine.soft import SoftProbeBatch, make_batch
from engine.stopping import EarlyStopping
from engine.training_data import TrainingData

ProgressFn = Callable[[int, int], None]
"""Called with (probe-epochs done, probe-epochs in total); may raise to stop."""

FinishedFn = Callable[[list[ProbeRun]], None]
"""Given the runs of the probes that had finished when ``progress`` raised to stop."""

# Floats of inputs, labels and dropout masks read at once for a block of minibatches.
_BLOCK_FLOATS = 4 * 2**20


def train_probes(
    data: TrainingData,
    specs: Sequence[ProbeSpec],
    budget: Budget,
    *,
    seed: int,
    metric: MetricName,
    progress: ProgressFn | None = None,
    finished: FinishedFn | None = None,
) -> list[ProbeRun]:
    """Train ``specs`` together as one batched model and return their runs in order.

    Each probe's result depends only on its own spec, the data, budget and seed; which
    other probes share the batch does not change it (up to float rounding). When
    ``progress`` raises to stop the training (a cancel), the probes that early stopping
    had already ended are handed to ``finished`` first, with the runs they would have
    had at the end, so a stopped batch does not lose its finished work.
    """
    if not specs:
        return []
    # Probes of one replicate sit together so they share first-layer matmuls.
    order = sorted(range(len(specs)), key=lambda i: specs[i].replicate)
    runs = _train_sorted(data, [specs[i] for i in order], budget, seed, metric, progress, finished)
    result: list[ProbeRun | None] = [None] * len(specs)
    for position, run in zip(order, runs, strict=True):
        result[position] = run
    return [run for run in result if run is not None]


class _Live:
    """The probes still training: their batch, optimiser, losses and evaluation rows."""

    def __init__(
        self, data: TrainingData, batch: ProbeBatch, budget: Budget, optimizer: torch.optim.Adam
    ) -> None:
        self.batch = batch
        self.optimizer = optimizer
        self.objective = ProbeObjective(data, batch)
        self.aux_weight = auxiliary_weights(batch, budget)  # [P]
        self.val_x, self.val_y = eval_rows(data, self.objective, data.val)
        # Inputs, labels and dropout masks are read a block of minibatches at a time.
        reps, bs = len(self.objective.replicates), budget.batch_size
        per_row = reps * (data.x.shape[1] + sum(budget.hidden)) + batch.n_probes * (
            2 + 2 * batch.slot_active.shape[1]
        )
        self.block = bs * max(1, _BLOCK_FLOATS // max(1, per_row * bs))

    def select(self, data: TrainingData, budget: Budget, keep: torch.Tensor) -> _Live:
        """The probes where ``keep`` [P] holds, going on from their current weights and
        optimiser state."""
        old = self.batch.parameters()
        batch = self.batch.select(keep)
        optimizer = _adam(batch.parameters(), budget.lr, budget.weight_decay)
        states = [self.optimizer.state[p] for p in old]
        for key, value in states[0].items():
            if value.shape == old[0].shape:  # a moment: one slice per probe
                values = self.batch.select_slices([s[key] for s in states], keep)
                for param, kept in zip(batch.parameters(), values, strict=True):
                    optimizer.state[param][key] = kept
            else:  # the step count, the same for every tensor
                for param in batch.parameters():
                    optimizer.state[param][key] = value.clone()
        return _Live(data, batch, budget, optimizer)


def _train_sorted(
    data: TrainingData,
    specs: Sequence[ProbeSpec],
    budget: Budget,
    seed: int,
    metric: MetricName,
    progress: ProgressFn | None,
    finished: FinishedFn | None = None,
) -> list[ProbeRun]:
    main = data.problem.main
    device = data.device
    batch = make_batch(
        specs,
        budget,
        n_features=data.problem.features.n_features,
        main_outputs=main.n_outputs,
        aux_outputs=data.aux_outputs,
        seed=seed,
        device=device,
    )
    # Soft sharing: each probe's main and candidate trunks are coupled (engine.soft).
    soft = batch if isinstance(batch, SoftProbeBatch) and budget.coupling > 0 else None
    # Probes that early stopping ended leave a hard-sharing batch at the end of the
    # epoch (their runs are read then), so the batch trains only probes still learning.
    compact = not isinstance(batch, SoftProbeBatch)
    live = _Live(data, batch, budget, _adam(batch.parameters(), budget.lr, budget.weight_decay))
    n_probes = batch.n_probes
    index = list(range(n_probes))  # live probe -> position in specs
    done: dict[int, ProbeRun] = {}

    batches = BatchOrder(data, live.objective.replicates, seed)
    dropout = None
    if budget.dropout > 0:
        dropout = DropoutMasks(
            live.objective.replicates, budget.hidden, budget.dropout, seed, device
        )
    record = ProbeRecord(
        EarlyStopping(n_probes, budget.epochs, budget.patience, HIGHER_IS_BETTER[metric], device),
        torch.full((n_probes,), -1, dtype=torch.long, device=device),
    )
    # Each probe's weights at its best validation epoch: the test set is read once, at
    # the end, with these (the same numbers as reading it at that epoch).
    best_params = [p.detach().clone() for p in batch.parameters()]
    total = n_probes * budget.epochs
    bs = budget.batch_size
    n_pool = batches.pool.shape[1]

    def finish(keep: torch.Tensor) -> None:
        """Read the runs of the live probes where ``keep`` holds, with their best weights."""
        if compact and not bool(keep.all()):
            runs = read_runs(
                data, metric, live.batch.select(keep, best_params), record.select(keep)
            )
        else:  # training ends here: the batch itself takes the best weights
            with torch.no_grad():
                for param, kept in zip(live.batch.parameters(), best_params, strict=True):
                    param.copy_(kept)
            runs = read_runs(data, metric, live.batch, record)
            runs = [run for run, k in zip(runs, keep.tolist(), strict=True) if k]
        positions = [i for i, k in zip(index, keep.tolist(), strict=True) if k]
        done.update(zip(positions, runs, strict=True))

    def ordered() -> list[ProbeRun]:
        return [done[i] for i in sorted(done)]

    for epoch in range(budget.epochs):
        order = batches.epoch_order()  # [R', n_pool]
        epoch_main = torch.zeros(live.batch.n_probes, device=device)
        epoch_aux = torch.zeros(live.batch.n_probes, device=device)
        steps = 0
        for first in range(0, n_pool, live.block):
            rows = order[:, first : first + live.block]
            x_block = data.inputs(rows, live.objective.rep_tensor)  # [R', n, F]
            targets_block = live.objective.targets(rows, bs)
            masks_block = None if dropout is None else dropout.draw(rows.shape[1])
            for start in range(0, rows.shape[1], bs):
                stop = start + bs
                masks = None
                if masks_block is not None:
                    masks = [[m[:, start:stop] for m in ms] for ms in masks_block]
                out = live.batch.head_outputs(x_block[:, start:stop], dropout=masks, fused=True)
                main_loss, aux_loss = live.objective.losses_of(out, targets_block.rows(start, stop))
                probe_loss = main_loss + live.aux_weight[:, None].mul(aux_loss).sum(dim=1)  # [P]
                epoch_main += main_loss.detach()
                epoch_aux += aux_loss.detach().sum(dim=1)
                steps += 1
                if soft is not None:
                    probe_loss = probe_loss + budget.coupling * soft.penalty(budget.sharing)
                # A probe whose loss stops being finite is marked and no longer steered
                # by its loss; the others are unaffected (their weights are separate).
                diverged_at = record.diverged_at
                newly = ~torch.isfinite(probe_loss) & (diverged_at < 0)
                record.diverged_at = torch.where(newly, epoch, diverged_at)
                live.optimizer.zero_grad(set_to_none=True)
                torch.where(record.diverged_at < 0, probe_loss, 0.0).sum().backward()
                live.optimizer.step()

        record.train_main.append(epoch_main / max(steps, 1))
        record.train_aux.append(epoch_aux / max(steps, 1))
        with torch.no_grad():
            val_out = evaluate(live.batch, live.val_x)
            score = compute_metric(
                metric, val_out, live.val_y, main.kind, live.objective.main_scale
            )
            record.curves.append(score)
            improved = record.stopping.update(score, record.diverged_at, epoch)
            masks_p = live.batch.probe_masks(improved)
            for kept, param, mask in zip(
                best_params, live.batch.parameters(), masks_p, strict=True
            ):
                torch.where(mask, param, kept, out=kept)
        if progress is not None:
            try:
                progress(n_probes * (epoch + 1), total)
            except Exception:
                if finished is not None:
                    # Only now (never on the way) are the stopped probes' test metrics
                    # read: with their best weights, as at the end, so the same numbers.
                    stopped = ~record.stopping.active
                    if bool(stopped.any()):
                        finish(stopped)
                    if done:
                        finished(ordered())
                raise
        if record.stopping.done:
            break
        active = record.stopping.active
        if compact and not bool(active.all()):
            finish(~active)
            kept_groups = [bool(active[a:b].any()) for _, a, b in live.batch.groups]
            batches.keep(kept_groups)
            if dropout is not None:
                dropout.keep(kept_groups)
            best_params = live.batch.select_slices(best_params, active)
            index = [i for i, k in zip(index, active.tolist(), strict=True) if k]
            record = record.select(active)
            live = live.select(data, budget, active)

    finish(torch.ones(live.batch.n_probes, dtype=torch.bool, device=device))
    runs = ordered()
    if progress is not None:
        try:
            progress(total, total)
        except Exception:
            if finished is not None:
                finished(runs)  # the work is done: a stop now keeps all of it
            raise
    return runs


def _adam(params: list[torch.Tensor], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam over the stacked tensors (AdamW with decoupled weight decay when it is
    set); the fused kernel where the device has one (one pass per tensor instead of
    about ten elementwise ops)."""
    fused = params[0].device.type in ("cpu", "cuda")
    if weight_decay > 0:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    return torch.optim.Adam(params, lr=lr, fused=fused)
