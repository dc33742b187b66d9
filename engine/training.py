"""Train many probes at once: the baseline and every pairing of every replicate in one
batched model on shared minibatches, with early stopping per probe."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.budget import Budget
from engine.metrics import (
    HIGHER_IS_BETTER,
    METRICS_BY_KIND,
    MetricName,
    TargetScale,
    compute_metric,
    main_loss_elements,
)
from engine.probe import ProbeBatch, ProbeSpec
from engine.problem import Problem
from engine.seeding import derive_seed
from engine.splits import Splits

ProgressFn = Callable[[int, int], None]
"""Called with (probe-epochs done, probe-epochs in total); may raise to stop."""

_KIND_CODE = {"regression": 0, "binary": 1, "multiclass": 2}
# Rows of one evaluation pass: small enough for the activations to stay in cache, and
# the same whichever probes share the batch (chunking must not change the rounding).
_EVAL_ROWS = 256
# Floats of inputs, labels and dropout masks read at once for a block of minibatches.
_BLOCK_FLOATS = 4 * 2**20


@dataclass(frozen=True)
class ProbeRun:
    """A finished probe: main-task test metrics read at the best validation epoch.

    ``curve`` is the main task's validation metric after each epoch the probe trained.
    ``error`` says why a probe has no usable result (e.g. its loss diverged).
    """

    spec: ProbeSpec
    metrics: dict[str, float]
    curve: tuple[float, ...]
    best_epoch: int
    epochs: int
    error: str | None = None


@dataclass(frozen=True)
class Targets:
    """Labels of consecutive training rows for every probe, read once per block of
    minibatches: y_main [P, n] and y_aux [P, A, n] (0 where missing), and each row's
    weight in its minibatch's masked mean (0 where the label is missing)."""

    y_main: torch.Tensor
    main_weight: torch.Tensor
    y_aux: torch.Tensor
    aux_weight: torch.Tensor

    def rows(self, start: int, stop: int) -> Targets:
        """The targets of rows [start, stop) (views)."""
        return Targets(
            self.y_main[:, start:stop],
            self.main_weight[:, start:stop],
            self.y_aux[..., start:stop],
            self.aux_weight[..., start:stop],
        )


class TrainingData:
    """A problem and its splits as tensors on one device, shared by every chunk."""

    def __init__(self, problem: Problem, splits: Splits, device: torch.device) -> None:
        self.problem = problem
        self.splits = splits
        self.device = device
        values = problem.features.values.astype(np.float64)
        standardise = problem.features.standardise
        n_reps = splits.replicates
        n_tasks = len(problem.tasks)

        # Feature statistics from each replicate's training rows only.
        mean = np.zeros((n_reps, values.shape[1]))
        std = np.ones((n_reps, values.shape[1]))
        # Target statistics: main from its training labels, candidates from the pool.
        y_mean = np.zeros((n_reps, n_tasks))
        y_std = np.ones((n_reps, n_tasks))
        main_train = np.where(splits.main_train, problem.labels[:, 0][None, :], np.nan)
        for r in range(n_reps):
            rows = values[splits.pool[r]][:, standardise]
            with warnings.catch_warnings():
                # A column with no value on a split gives an all-NaN slice; it is imputed.
                warnings.simplefilter("ignore", category=RuntimeWarning)
                mu = np.nanmean(rows, axis=0)
                sd = np.nanstd(rows, axis=0)
            mean[r, standardise] = np.nan_to_num(mu)
            std[r, standardise] = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
            for t, task in enumerate(problem.tasks):
                if task.kind != "regression":
                    continue
                y = main_train[r] if t == 0 else problem.labels[splits.pool[r], t]
                y = y[np.isfinite(y)]
                if y.size:
                    y_mean[r, t] = y.mean()
                    y_std[r, t] = y.std() if y.std() > 0 else 1.0

        def tensor(array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.as_tensor(array, dtype=dtype, device=device)

        self.x = tensor(problem.features.values)  # [N, F], NaN = missing
        self.x_mean = tensor(mean)  # [R, F]
        self.x_std = tensor(std)  # [R, F]
        self.labels = tensor(problem.labels)  # [N, T]
        self.y_mean = tensor(y_mean)  # [R, T]
        self.y_std = tensor(y_std)  # [R, T]
        self.main_train = tensor(main_train)  # [R, N] main labels usable in training
        self.pool = tensor(splits.pool, torch.long)  # [R, n_pool]
        self.val = tensor(splits.val, torch.long)  # [R, n_val]
        self.test = tensor(splits.test, torch.long)  # [R, n_test]
        candidates = problem.candidates
        self.aux_outputs = [c.n_outputs for c in candidates]
        self.aux_kind = torch.tensor([_KIND_CODE[c.kind] for c in candidates], device=device)
        self.aux_classes = torch.tensor(self.aux_outputs, device=device)

    def inputs(self, rows: torch.Tensor, replicates: torch.Tensor) -> torch.Tensor:
        """Standardised, imputed features [R', n, F] of rows [R', n] per replicate."""
        x = (self.x[rows] - self.x_mean[replicates, None]) / self.x_std[replicates, None]
        return torch.nan_to_num(x, nan=0.0)


def train_probes(
    data: TrainingData,
    specs: Sequence[ProbeSpec],
    budget: Budget,
    *,
    seed: int,
    metric: MetricName,
    progress: ProgressFn | None = None,
) -> list[ProbeRun]:
    """Train ``specs`` together as one batched model and return their runs in order.

    Each probe's result depends only on its own spec, the data, budget and seed; which
    other probes share the batch does not change it (up to float rounding).
    """
    if not specs:
        return []
    # Probes of one replicate sit together so they share first-layer matmuls.
    order = sorted(range(len(specs)), key=lambda i: specs[i].replicate)
    runs = _train_sorted(data, [specs[i] for i in order], budget, seed, metric, progress)
    result: list[ProbeRun | None] = [None] * len(specs)
    for position, run in zip(order, runs, strict=True):
        result[position] = run
    return [run for run in result if run is not None]


class ProbeObjective:
    """The losses of a chunk of probes (ordered by replicate) on a minibatch.

    Holds what stays fixed while a chunk trains: which replicate each probe belongs
    to, which candidate each auxiliary slot learns, and the target scales.
    """

    def __init__(self, data: TrainingData, batch: ProbeBatch) -> None:
        self.data = data
        self.batch = batch
        device = data.device
        specs = batch.specs
        self.replicates = [r for r, _, _ in batch.groups]
        self.rep_tensor = torch.tensor(self.replicates, device=device)  # [R']
        position = {r: i for i, r in enumerate(self.replicates)}
        self.probe_rep = torch.tensor([position[s.replicate] for s in specs], device=device)
        rep_global = self.rep_tensor[self.probe_rep]  # [P]
        self.main_scale = TargetScale(data.y_mean[rep_global, 0], data.y_std[rep_global, 0])
        self.slot_active = batch.slot_active  # [P, A]
        self.slot_kind = data.aux_kind[batch.slot_task]  # [P, A]
        self.task_col = batch.slot_task + 1  # [P, A] column in labels
        self.slot_mean = data.y_mean[rep_global[:, None], self.task_col]  # [P, A]
        self.slot_std = data.y_std[rep_global[:, None], self.task_col]  # [P, A]
        aux_width = batch.aux_w.shape[-1]
        slot_classes = data.aux_classes[batch.slot_task]  # [P, A]
        self.class_mask = torch.arange(aux_width, device=device) < slot_classes[..., None]
        self.kinds_present = {int(k) for k in self.slot_kind[self.slot_active].unique().tolist()}

    def losses(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows [R', b] per replicate -> (main loss [P], auxiliary loss per slot [P, A]).

        Each task's loss is the mean over the rows that carry its label; a task with
        no labelled row in the batch contributes 0. Inactive slots are 0.
        """
        main, aux = self.batch.split_outputs(self.batch.head_outputs(self.inputs(rows)))
        return self.main_loss_of(main, rows), self.aux_loss_of(aux, rows)

    def targets(self, rows: torch.Tensor, batch_size: int) -> Targets:
        """The labels of rows [R', n] (consecutive minibatches of ``batch_size``), read
        once for all of them, with each row's weight in its minibatch's masked mean."""
        data = self.data
        y_main = data.main_train[self.rep_tensor[:, None], rows][self.probe_rep]  # [P, n]
        main_known = torch.isfinite(y_main)
        labels = data.labels[rows]  # [R', n, T]
        y_aux = labels[self.probe_rep[:, None], :, self.task_col]  # [P, A, n]
        valid = torch.isfinite(y_aux) & self.slot_active[..., None]
        return Targets(
            torch.where(main_known, y_main, 0.0),
            _step_weights(main_known, batch_size),
            torch.where(valid, y_aux, 0.0),
            _step_weights(valid, batch_size),
        )

    def losses_of(
        self, outputs: torch.Tensor, targets: Targets
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Head outputs [P, O_all, b] and their rows' :meth:`targets` -> (main loss [P],
        auxiliary loss per slot [P, A]), the same masked means as :meth:`losses`."""
        main, aux = self.batch.split_outputs(outputs)
        main_elements = main_loss_elements(
            main, targets.y_main, self.data.problem.main.kind, self.main_scale
        )
        aux_elements = _aux_loss_elements(
            aux,
            targets.y_aux,
            self.slot_kind,
            self.kinds_present,
            self.class_mask,
            self.slot_mean,
            self.slot_std,
        )
        # A row without the label has weight 0 (its element is finite: labels are 0).
        main_loss = (main_elements * targets.main_weight).sum(dim=-1)
        aux_loss = (aux_elements * targets.aux_weight).sum(dim=-1)
        return main_loss, aux_loss

    def inputs(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows [R', b] per replicate -> standardised features [R', b, F]."""
        return self.data.inputs(rows, self.rep_tensor)

    def main_loss(self, h: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Trunk output h [P, b, H] of rows [R', b] -> masked mean main loss [P]."""
        return self.main_loss_of(self.batch.main_head(h), rows)

    def main_loss_of(self, outputs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Main head outputs [P, b, O] of rows [R', b] -> masked mean main loss [P]."""
        data = self.data
        y_main = data.main_train[self.rep_tensor[:, None], rows][self.probe_rep]  # [P, b]
        main_known = torch.isfinite(y_main)
        return _masked_mean(
            main_loss_elements(
                outputs,
                torch.where(main_known, y_main, 0.0),
                data.problem.main.kind,
                self.main_scale,
            ),
            main_known,
        )

    def aux_loss_of(self, outputs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Auxiliary head outputs [P, A, b, O] of rows [R', b] -> loss per slot [P, A]."""
        y_aux = self.data.labels[rows][self.probe_rep]  # [P, b, T]
        y_aux = y_aux.gather(2, self.task_col[:, None, :].expand(-1, y_aux.shape[1], -1))
        y_aux = y_aux.transpose(1, 2)  # [P, A, b]
        valid = torch.isfinite(y_aux) & self.slot_active[..., None]
        return _masked_mean(
            _aux_loss_elements(
                outputs,
                torch.where(valid, y_aux, 0.0),
                self.slot_kind,
                self.kinds_present,
                self.class_mask,
                self.slot_mean,
                self.slot_std,
            ),
            valid,
        )


def auxiliary_weights(batch: ProbeBatch, budget: Budget) -> torch.Tensor:
    """Weight of each auxiliary loss per probe [P]: λ, or λ/k for a probe with k > 1
    auxiliary tasks under ``subset_weighting="mean"``."""
    n_aux = batch.slot_active.sum(dim=1).clamp(min=1)  # [P]
    weight = torch.full(n_aux.shape, budget.lam, device=n_aux.device)
    return weight / n_aux if budget.subset_weighting == "mean" else weight


class BatchOrder:
    """Each replicate's own minibatch order, drawn from (seed, replicate) alone, so a
    replicate's probes see the same batches whichever chunk or run they train in."""

    def __init__(self, data: TrainingData, replicates: Sequence[int], seed: int) -> None:
        device = data.device
        self.generators = [
            torch.Generator().manual_seed(derive_seed(seed, "batches", r)) for r in replicates
        ]
        self.pool = data.pool[torch.tensor(list(replicates), device=device)]  # [R', n_pool]

    def epoch(self, batch_size: int) -> list[torch.Tensor]:
        """The next epoch's minibatches, each rows [R', b]."""
        order = self.epoch_order()
        n_pool = order.shape[1]
        return [order[:, start : start + batch_size] for start in range(0, n_pool, batch_size)]

    def epoch_order(self) -> torch.Tensor:
        """The next epoch's row order [R', n_pool]; minibatch k is columns
        [k*b, (k+1)*b)."""
        n_pool = self.pool.shape[1]
        order = torch.stack([torch.randperm(n_pool, generator=g) for g in self.generators])
        return self.pool.gather(1, order.to(self.pool.device))


class DropoutMasks:
    """Dropout keep-masks of the trunk, one stream per (replicate, layer) drawn from
    (seed, replicate, layer) alone: the probes of a replicate (its baseline and every
    pairing) see the same masks, whichever chunk they train in, and drawing a block
    of rows at once gives the same masks as drawing them minibatch by minibatch."""

    def __init__(
        self,
        replicates: Sequence[int],
        hidden: Sequence[int],
        rate: float,
        seed: int,
        device: torch.device,
    ) -> None:
        self.hidden = tuple(hidden)
        self.rate = rate
        self.device = device
        self.generators = [
            [
                torch.Generator(device=device).manual_seed(derive_seed(seed, "dropout", r, layer))
                for layer in range(len(hidden))
            ]
            for r in replicates
        ]

    def draw(self, rows: int) -> list[list[torch.Tensor]]:
        """The masks of the next ``rows`` training rows: per replicate and layer, the
        scaled keep-mask feature-major [H_l, rows] (0 or 1/(1-p))."""
        scale = 1.0 / (1.0 - self.rate)
        masks = []
        for generators in self.generators:
            per_layer = []
            for width, generator in zip(self.hidden, generators, strict=True):
                u = torch.rand(rows, width, generator=generator, device=self.device)
                per_layer.append(((u >= self.rate) * scale).T.contiguous())
            masks.append(per_layer)
        return masks


def _train_sorted(
    data: TrainingData,
    specs: Sequence[ProbeSpec],
    budget: Budget,
    seed: int,
    metric: MetricName,
    progress: ProgressFn | None,
) -> list[ProbeRun]:
    main = data.problem.main
    device = data.device
    batch = ProbeBatch(
        specs,
        n_features=data.problem.features.n_features,
        hidden=budget.hidden,
        main_outputs=main.n_outputs,
        aux_outputs=data.aux_outputs,
        seed=seed,
        device=device,
    )
    objective = ProbeObjective(data, batch)
    optimizer = _adam(batch.parameters(), budget.lr, budget.weight_decay)
    n_probes = batch.n_probes
    rep_tensor, probe_rep = objective.rep_tensor, objective.probe_rep

    batches = BatchOrder(data, objective.replicates, seed)
    dropout = None
    if budget.dropout > 0:
        dropout = DropoutMasks(objective.replicates, budget.hidden, budget.dropout, seed, device)
    aux_weight = auxiliary_weights(batch, budget)  # [P]
    val_rows = data.val[rep_tensor]  # [R', n_val]
    test_rows = data.test[rep_tensor]
    val_x = data.inputs(val_rows, rep_tensor)  # [R', n_val, F]
    test_x = data.inputs(test_rows, rep_tensor)
    val_y = data.labels[val_rows, 0][probe_rep]  # [P, n_val]
    test_y = data.labels[test_rows, 0][probe_rep]  # [P, n_test]

    higher = HIGHER_IS_BETTER[metric]
    best = torch.full((n_probes,), -math.inf if higher else math.inf, device=device)
    best_epoch = torch.full((n_probes,), -1, dtype=torch.long, device=device)
    since_best = torch.zeros(n_probes, dtype=torch.long, device=device)
    active = torch.ones(n_probes, dtype=torch.bool, device=device)
    stopped_at = torch.full((n_probes,), budget.epochs - 1, dtype=torch.long, device=device)
    diverged_at = torch.full((n_probes,), -1, dtype=torch.long, device=device)
    # Each probe's weights at its best validation epoch: the test set is read once, at
    # the end, with these (the same numbers as reading it at that epoch).
    best_params = [p.detach().clone() for p in batch.parameters()]
    curves: list[torch.Tensor] = []
    total = n_probes * budget.epochs
    bs = budget.batch_size
    n_pool = batches.pool.shape[1]
    # Inputs, labels and dropout masks are read a block of minibatches at a time.
    per_row = len(rep_tensor) * (data.x.shape[1] + sum(budget.hidden)) + n_probes * (
        2 + 2 * batch.slot_active.shape[1]
    )
    block = bs * max(1, _BLOCK_FLOATS // max(1, per_row * bs))

    for epoch in range(budget.epochs):
        order = batches.epoch_order()  # [R', n_pool]
        for first in range(0, n_pool, block):
            rows = order[:, first : first + block]
            x_block = data.inputs(rows, rep_tensor)  # [R', n, F]
            targets_block = objective.targets(rows, bs)
            masks_block = None if dropout is None else dropout.draw(rows.shape[1])
            for start in range(0, rows.shape[1], bs):
                stop = start + bs
                masks = None
                if masks_block is not None:
                    masks = [[m[:, start:stop] for m in ms] for ms in masks_block]
                out = batch.head_outputs(x_block[:, start:stop], dropout=masks, fused=True)
                main_loss, aux_loss = objective.losses_of(out, targets_block.rows(start, stop))
                probe_loss = main_loss + aux_weight[:, None].mul(aux_loss).sum(dim=1)  # [P]
                # A probe whose loss stops being finite is marked and no longer steered
                # by its loss; the others are unaffected (their weights are separate).
                newly = ~torch.isfinite(probe_loss) & (diverged_at < 0)
                diverged_at = torch.where(newly, epoch, diverged_at)
                optimizer.zero_grad(set_to_none=True)
                torch.where(diverged_at < 0, probe_loss, 0.0).sum().backward()
                optimizer.step()

        with torch.no_grad():
            val_out = _evaluate(batch, val_x)
            score = compute_metric(metric, val_out, val_y, main.kind, objective.main_scale)
            curves.append(score)
            better = score > best if higher else score < best
            improved = better & active & torch.isfinite(score) & (diverged_at < 0)
            best = torch.where(improved, score, best)
            best_epoch = torch.where(improved, epoch, best_epoch)
            masks_p = batch.probe_masks(improved)
            for kept, param, mask in zip(best_params, batch.parameters(), masks_p, strict=True):
                torch.where(mask, param, kept, out=kept)
            since_best = torch.where(improved, 0, since_best + 1)
            ended = active & (
                (diverged_at >= 0) | ((since_best >= budget.patience) & (budget.patience > 0))
            )
            stopped_at = torch.where(ended, epoch, stopped_at)
            active = active & ~ended
        if progress is not None:
            progress(n_probes * (epoch + 1), total)
        if not bool(active.any()):
            break

    with torch.no_grad():
        for param, kept in zip(batch.parameters(), best_params, strict=True):
            param.copy_(kept)
        best_test_out = _evaluate(batch, test_x)
    if progress is not None:
        progress(total, total)
    return _collect(
        specs,
        data,
        metric,
        best_test_out,
        test_y,
        objective.main_scale,
        curves,
        best_epoch,
        stopped_at,
        diverged_at,
    )


def _collect(
    specs: Sequence[ProbeSpec],
    data: TrainingData,
    metric: MetricName,
    test_out: torch.Tensor,
    test_y: torch.Tensor,
    scale: TargetScale,
    curves: list[torch.Tensor],
    best_epoch: torch.Tensor,
    stopped_at: torch.Tensor,
    diverged_at: torch.Tensor,
) -> list[ProbeRun]:
    kind = data.problem.main.kind
    with torch.no_grad():
        values = {
            name: compute_metric(name, test_out, test_y, kind, scale).double().cpu().numpy()
            for name in METRICS_BY_KIND[kind]
        }
    curve_matrix = torch.stack(curves, dim=1).double().cpu().numpy()  # [P, epochs]
    best_list = best_epoch.cpu().tolist()
    stop_list = stopped_at.cpu().tolist()
    diverged_list = diverged_at.cpu().tolist()
    runs = []
    for p, spec in enumerate(specs):
        error = None
        metrics: dict[str, float]
        if diverged_list[p] >= 0:
            error = f"training diverged (non-finite loss) in epoch {diverged_list[p] + 1}"
        if best_list[p] < 0:
            error = error or "the validation metric was never finite"
            metrics = dict.fromkeys(values, math.nan)
        else:
            metrics = {name: float(v[p]) for name, v in values.items()}
        curve = tuple(float(v) for v in curve_matrix[p, : stop_list[p] + 1])
        runs.append(ProbeRun(spec, metrics, curve, best_list[p], stop_list[p] + 1, error))
    return runs


def _adam(params: list[torch.Tensor], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam over the stacked tensors (AdamW with decoupled weight decay when it is
    set); the fused kernel where the device has one (one pass per tensor instead of
    about ten elementwise ops)."""
    fused = params[0].device.type in ("cpu", "cuda")
    if weight_decay > 0:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    return torch.optim.Adam(params, lr=lr, fused=fused)


def _evaluate(batch: ProbeBatch, x: torch.Tensor) -> torch.Tensor:
    """Main-head outputs [P, n, O] for per-replicate inputs x [R', n, F], in row chunks
    small enough for the activations to stay in cache."""
    n_rows = x.shape[1]
    step = _EVAL_ROWS
    parts = [
        batch.head_outputs(x[:, start : start + step], main_only=True, fused=True)
        for start in range(0, n_rows, step)
    ]
    return torch.cat(parts, dim=2).mT  # [P, O, n] -> [P, n, O]


def _step_weights(mask: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Mask [..., n] over consecutive minibatches of ``batch_size`` rows -> each row's
    weight in its minibatch's mean over the masked rows: 1/count, 0 where unmasked."""
    n = mask.shape[-1]
    steps = -(-n // batch_size)
    padded = F.pad(mask.float(), (0, steps * batch_size - n)).unflatten(-1, (steps, batch_size))
    weights: torch.Tensor = padded / padded.sum(dim=-1, keepdim=True).clamp(min=1)
    return weights.flatten(-2)[..., :n]


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last axis of the entries where mask holds (0 where none do)."""
    total = torch.where(mask, values, 0.0).sum(dim=-1)
    return total / mask.sum(dim=-1).clamp(min=1)


def _aux_loss_elements(
    outputs: torch.Tensor,  # [P, A, b, O]
    labels: torch.Tensor,  # [P, A, b], 0 where missing
    slot_kind: torch.Tensor,  # [P, A]
    kinds_present: set[int],
    class_mask: torch.Tensor,  # [P, A, O]
    mean: torch.Tensor,  # [P, A]
    std: torch.Tensor,  # [P, A]
) -> torch.Tensor:
    """Per-row loss of every auxiliary slot [P, A, b], each by its own task kind."""
    first = outputs[..., 0]
    loss = torch.zeros_like(first)
    kind = slot_kind[..., None]
    if 0 in kinds_present:
        target = (labels - mean[..., None]) / std[..., None]
        loss = torch.where(kind == 0, (first - target) ** 2, loss)
    if 1 in kinds_present:
        bce = F.binary_cross_entropy_with_logits(first, labels.clamp(0, 1), reduction="none")
        loss = torch.where(kind == 1, bce, loss)
    if 2 in kinds_present:
        # Padding logits of narrower heads get a large negative value, not -inf, so that
        # no NaN reaches the gradient of slots that do not use this branch.
        logits = torch.where(class_mask[:, :, None, :], outputs, -1e4)
        target = labels.long().clamp(0, outputs.shape[-1] - 1)
        ce = -torch.log_softmax(logits, dim=-1).gather(-1, target[..., None]).squeeze(-1)
        loss = torch.where(kind == 2, ce, loss)
    return loss
