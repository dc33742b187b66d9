"""The training objective of a chunk of probes: the main and auxiliary losses of every
probe on a minibatch (masked means over the rows that carry each label), and the
weight of the auxiliary losses."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.budget import Budget
from engine.metrics import main_loss_elements
from engine.probe import ProbeBatch
from engine.training_data import TrainingData


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
        # Each probe's share of the main labels (engine.fractions; 0 without shares).
        self.probe_share = torch.tensor([data.share_index(s.share) for s in specs], device=device)
        self.main_scale = data.main_scale(rep_global, self.probe_share)
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
        y_main = self.main_labels(rows)  # [P, n]
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

    def main_labels(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows [R', n] per replicate -> each probe's main labels that train [P, n]
        (NaN where its replicate and share use none)."""
        return self.data.main_labels(self.rep_tensor, rows, self.probe_rep, self.probe_share)

    def inputs(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows [R', b] per replicate -> standardised features [R', b, F]."""
        return self.data.inputs(rows, self.rep_tensor)

    def main_loss(self, h: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Trunk output h [P, b, H] of rows [R', b] -> masked mean main loss [P]."""
        return self.main_loss_of(self.batch.main_head(h), rows)

    def main_loss_of(self, outputs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Main head outputs [P, b, O] of rows [R', b] -> masked mean main loss [P]."""
        data = self.data
        y_main = self.main_labels(rows)  # [P, b]
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
