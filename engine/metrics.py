"""Main-task metrics, vectorised over probes: every function takes outputs [P, n, O]
and labels [P, n] and returns one value per probe [P]."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from engine.tasks import TaskKind

MetricName = Literal["loss", "accuracy", "auroc", "rmse", "r2"]
METRIC_NAMES: tuple[MetricName, ...] = get_args(MetricName)
DEFAULT_METRIC: MetricName = "loss"
"""The primary metric of a job that names none."""

HIGHER_IS_BETTER: dict[MetricName, bool] = {
    "loss": False,
    "accuracy": True,
    "auroc": True,
    "rmse": False,
    "r2": True,
}

METRICS_BY_KIND: dict[TaskKind, tuple[MetricName, ...]] = {
    "binary": ("loss", "accuracy", "auroc"),
    "multiclass": ("loss", "accuracy", "auroc"),
    "regression": ("loss", "rmse", "r2"),
}


def secondary_metric(kind: TaskKind, primary: MetricName) -> MetricName:
    """The metric shown beside the primary one: a ranking metric next to the loss for
    classification (they can disagree), R² next to the loss for regression."""
    if kind == "regression":
        return "r2" if primary != "r2" else "loss"
    return "auroc" if primary != "auroc" else "loss"


@dataclass(frozen=True)
class TargetScale:
    """Per-probe standardisation of a regression target (identity otherwise)."""

    mean: torch.Tensor  # [P]
    std: torch.Tensor  # [P]


def main_loss_elements(
    outputs: torch.Tensor, labels: torch.Tensor, kind: TaskKind, scale: TargetScale
) -> torch.Tensor:
    """Per-row loss [P, n]; labels must be finite (callers mask missing rows)."""
    if kind == "binary":
        return F.binary_cross_entropy_with_logits(outputs[..., 0], labels, reduction="none")
    if kind == "multiclass":
        log_p = torch.log_softmax(outputs, dim=-1)
        return -log_p.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
    target = (labels - scale.mean[:, None]) / scale.std[:, None]
    return (outputs[..., 0] - target) ** 2


def compute_metric(
    name: MetricName,
    outputs: torch.Tensor,
    labels: torch.Tensor,
    kind: TaskKind,
    scale: TargetScale,
) -> torch.Tensor:
    """One metric per probe, NaN where it is undefined (e.g. AUROC with one class)."""
    if name not in METRICS_BY_KIND[kind]:
        raise ValueError(f"metric {name!r} does not apply to a {kind} task")
    if name == "loss":
        return main_loss_elements(outputs, labels, kind, scale).mean(dim=1)
    if name == "accuracy":
        if kind == "binary":
            predicted = (outputs[..., 0] > 0).to(labels.dtype)
        else:
            predicted = outputs.argmax(dim=-1).to(labels.dtype)
        return (predicted == labels).to(outputs.dtype).mean(dim=1)
    if name == "auroc":
        if kind == "binary":
            return _binary_auroc(outputs[..., 0], labels > 0.5)
        per_class = torch.stack(
            [
                _binary_auroc(outputs[..., k] - torch.logsumexp(outputs, dim=-1), labels == k)
                for k in range(outputs.shape[-1])
            ]
        )  # [K, P]
        return per_class.nanmean(dim=0)
    predicted = outputs[..., 0] * scale.std[:, None] + scale.mean[:, None]
    sse = ((predicted - labels) ** 2).sum(dim=1)
    if name == "rmse":
        return torch.sqrt(sse / labels.shape[1])
    sst = ((labels - labels.mean(dim=1, keepdim=True)) ** 2).sum(dim=1)
    return 1 - sse / sst


def _binary_auroc(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Mann–Whitney AUROC with average ranks for ties; scores and positive are [P, n]."""
    scores = scores.double()
    ordered = scores.sort(dim=1).values
    left = torch.searchsorted(ordered, scores.contiguous(), right=False)
    right = torch.searchsorted(ordered, scores.contiguous(), right=True)
    ranks = (left + right + 1).double() / 2
    n_pos = positive.sum(dim=1).double()
    n_neg = positive.shape[1] - n_pos
    rank_sum = (ranks * positive).sum(dim=1)
    auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return torch.where((n_pos > 0) & (n_neg > 0), auc, torch.nan).float()
