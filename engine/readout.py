"""Reading a trained batch out: each probe's run (test metrics at its best weights,
validation curve, training losses, the train-validation fit), and the batched
evaluation passes that the training loop shares."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from engine.metrics import (
    METRICS_BY_KIND,
    MetricName,
    TargetScale,
    compute_metric,
    main_loss_elements,
)
from engine.objective import ProbeObjective
from engine.probe import ProbeBatch
from engine.probe_spec import ProbeSpec
from engine.stopping import EarlyStopping
from engine.training_data import TrainingData

# Rows of one evaluation pass: small enough for the activations to stay in cache, and
# the same whichever probes share the batch (chunking must not change the rounding).
_EVAL_ROWS = 256
# Pool rows per block of the training-loss pass (bounds its inputs' memory).
_BLOCK_ROWS = 4096


@dataclass(frozen=True)
class ProbeRun:
    """A finished probe: main-task test metrics read at the best validation epoch.

    ``curve`` is the main task's validation metric after each epoch the probe trained.
    ``error`` says why a probe has no usable result (e.g. its loss diverged). ``fit``:
    the main head's loss at the best epoch on the rows whose main label trained
    (``train_loss``) and on the validation rows (``val_loss``), for the train–validation
    gap hint (:mod:`engine.curves`); empty where it was not measured.
    ``train_curve`` is the main task's training loss per epoch (the mean over the
    epoch's minibatches, as trained, dropout included) and ``aux_curve`` the auxiliary
    tasks' (summed when a probe has several; empty for a baseline); both empty where
    they were not recorded. They do not take part in comparing runs.
    """

    spec: ProbeSpec
    metrics: dict[str, float]
    curve: tuple[float, ...]
    best_epoch: int
    epochs: int
    error: str | None = None
    fit: dict[str, float] = field(default_factory=dict, compare=False)
    train_curve: tuple[float, ...] = field(default=(), compare=False)
    aux_curve: tuple[float, ...] = field(default=(), compare=False)


@dataclass
class ProbeRecord:
    """Per probe of the live batch: the validation score and training losses of every
    epoch so far, the stopping state and the epoch its loss diverged (-1: never)."""

    stopping: EarlyStopping
    diverged_at: torch.Tensor
    curves: list[torch.Tensor] = field(default_factory=list)
    train_main: list[torch.Tensor] = field(default_factory=list)
    train_aux: list[torch.Tensor] = field(default_factory=list)

    def select(self, keep: torch.Tensor) -> ProbeRecord:
        return ProbeRecord(
            self.stopping.select(keep),
            self.diverged_at[keep],
            [c[keep] for c in self.curves],
            [c[keep] for c in self.train_main],
            [c[keep] for c in self.train_aux],
        )


def eval_rows(
    data: TrainingData, objective: ProbeObjective, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluation rows [R, n] (data.val or data.test) -> the batch's inputs per
    replicate [R', n, F] and each probe's main labels [P, n]."""
    reps = objective.rep_tensor
    picked = rows[reps]
    return data.inputs(picked, reps), data.labels[picked, 0][objective.probe_rep]


def read_runs(
    data: TrainingData, metric: MetricName, batch: ProbeBatch, record: ProbeRecord
) -> list[ProbeRun]:
    """The runs of a batch that holds its probes' best weights."""
    objective = ProbeObjective(data, batch)
    kind = data.problem.main.kind
    test_x, test_y = eval_rows(data, objective, data.test)
    val_x, val_y = eval_rows(data, objective, data.val)
    with torch.no_grad():
        test_out = evaluate(batch, test_x)
        train_loss = _train_loss(batch, data, objective)
        val_loss = compute_metric("loss", evaluate(batch, val_x), val_y, kind, objective.main_scale)
    fit = torch.stack([train_loss, val_loss], dim=1).double().cpu().tolist()  # [P, 2]
    return _collect(
        batch.specs,
        data,
        metric,
        test_out,
        test_y,
        objective.main_scale,
        record.curves,
        (record.train_main, record.train_aux),
        record.stopping.best_epoch,
        record.stopping.stopped_at,
        record.diverged_at,
        fit,
    )


def _collect(
    specs: Sequence[ProbeSpec],
    data: TrainingData,
    metric: MetricName,
    test_out: torch.Tensor,
    test_y: torch.Tensor,
    scale: TargetScale,
    curves: list[torch.Tensor],
    losses: tuple[list[torch.Tensor], list[torch.Tensor]],
    best_epoch: torch.Tensor,
    stopped_at: torch.Tensor,
    diverged_at: torch.Tensor,
    fit: list[list[float]],
) -> list[ProbeRun]:
    kind = data.problem.main.kind
    with torch.no_grad():
        values = {
            name: compute_metric(name, test_out, test_y, kind, scale).double().cpu().numpy()
            for name in METRICS_BY_KIND[kind]
        }
    curve_matrix = torch.stack(curves, dim=1).double().cpu().numpy()  # [P, epochs]
    main_matrix, aux_matrix = (torch.stack(c, dim=1).double().cpu().numpy() for c in losses)
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
        trained = slice(0, stop_list[p] + 1)
        curve = tuple(float(v) for v in curve_matrix[p, trained])
        train_curve = tuple(float(v) for v in main_matrix[p, trained])
        aux_curve = tuple(float(v) for v in aux_matrix[p, trained]) if spec.aux else ()
        runs.append(
            ProbeRun(
                spec,
                metrics,
                curve,
                best_list[p],
                stop_list[p] + 1,
                error,
                {"train_loss": fit[p][0], "val_loss": fit[p][1]},
                train_curve=train_curve,
                aux_curve=aux_curve,
            )
        )
    return runs


def _train_loss(batch: ProbeBatch, data: TrainingData, objective: ProbeObjective) -> torch.Tensor:
    """Each probe's main-task loss [P] on its replicate's rows whose main label trains
    (one forward pass over the pool, in blocks, no gradient): the training side of the
    train–validation gap."""
    reps = objective.rep_tensor
    pool = data.pool[reps]  # [R', n_pool]
    total = torch.zeros(batch.n_probes, device=data.device)
    count = torch.zeros(batch.n_probes, device=data.device)
    for start in range(0, pool.shape[1], _BLOCK_ROWS):
        rows = pool[:, start : start + _BLOCK_ROWS]
        labels = objective.main_labels(rows)  # [P, n]; NaN: not trained
        known = torch.isfinite(labels)
        out = evaluate(batch, data.inputs(rows, reps))
        loss = main_loss_elements(
            out, torch.where(known, labels, 0.0), data.problem.main.kind, objective.main_scale
        )
        total += torch.where(known, loss, 0.0).sum(dim=1)
        count += known.sum(dim=1)
    return total / count.clamp_min(1)


def evaluate(batch: ProbeBatch, x: torch.Tensor) -> torch.Tensor:
    """Main-head outputs [P, n, O] for per-replicate inputs x [R', n, F], in row chunks
    small enough for the activations to stay in cache."""
    n_rows = x.shape[1]
    step = _EVAL_ROWS
    parts = [
        batch.head_outputs(x[:, start : start + step], main_only=True, fused=True)
        for start in range(0, n_rows, step)
    ]
    return torch.cat(parts, dim=2).mT  # [P, O, n] -> [P, n, O]
