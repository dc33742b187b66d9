"""A plain sequential implementation of one probe: ordinary ``nn.Linear`` layers, one
model after another — the loop a user would write by hand. The batched engine is
checked against it (tests) and timed against it (benchmarks). Under soft sharing
(:mod:`engine.soft`) a pairing keeps a second ``nn.Linear`` trunk for its candidate and
adds the coupling penalty, computed here from singular values (:func:`soft_penalty`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from engine.budget import Budget
from engine.metrics import (
    HIGHER_IS_BETTER,
    METRICS_BY_KIND,
    MetricName,
    TargetScale,
    compute_metric,
    main_loss_elements,
)
from engine.probe import linear_init
from engine.probe_spec import ProbeSpec
from engine.readout import ProbeRun
from engine.seeding import derive_seed
from engine.soft import SMOOTHING
from engine.training_data import TrainingData


def _linear(fan_in: int, fan_out: int, seed: int, purpose: str, *parts: int) -> nn.Linear:
    layer = nn.Linear(fan_in, fan_out)
    weight, bias = linear_init(fan_in, fan_out, seed, purpose, *parts)
    with torch.no_grad():
        layer.weight.copy_(weight.T)
        layer.bias.copy_(bias)
    return layer


def train_sequential(
    data: TrainingData,
    specs: Sequence[ProbeSpec],
    budget: Budget,
    *,
    seed: int,
    metric: MetricName,
) -> list[ProbeRun]:
    """Train each probe on its own, with the same initialisation, minibatch order,
    optimiser and early stopping as the batched engine."""
    return [_train_one(data, spec, budget, seed, metric) for spec in specs]


def _train_one(
    data: TrainingData, spec: ProbeSpec, budget: Budget, seed: int, metric: MetricName
) -> ProbeRun:
    problem = data.problem
    main = problem.main
    r = spec.replicate
    sizes = [problem.features.n_features, *budget.hidden]

    def trunk_layers() -> nn.ModuleList:
        return nn.ModuleList(
            _linear(sizes[layer], sizes[layer + 1], seed, "trunk", r, layer)
            for layer in range(len(budget.hidden))
        ).to(data.device)

    layers = trunk_layers()
    # Soft sharing: the candidate keeps its own trunk, from the same draws as the main
    # one, coupled to it by the penalty (engine.soft); hard sharing: one trunk.
    soft = budget.sharing != "hard" and bool(spec.aux)
    aux_layers = trunk_layers() if soft else layers
    # Dropout after every hidden layer, its masks drawn from (seed, replicate, layer) as
    # the batched engine draws them (nn.Dropout's global stream could not be paired);
    # under soft sharing both trunks see the same masks.
    dropout_streams = [
        torch.Generator(device=data.device).manual_seed(derive_seed(seed, "dropout", r, layer))
        for layer in range(len(budget.hidden))
    ]

    def draw_masks(rows: int) -> list[torch.Tensor] | None:
        if budget.dropout <= 0:
            return None
        scale = 1 / (1 - budget.dropout)
        return [
            (torch.rand(rows, width, generator=stream, device=data.device) >= budget.dropout)
            * scale
            for width, stream in zip(budget.hidden, dropout_streams, strict=True)
        ]

    def trunk(
        x: torch.Tensor, masks: list[torch.Tensor] | None = None, of: nn.ModuleList = layers
    ) -> torch.Tensor:
        for layer_index, layer in enumerate(of):
            x = torch.relu(layer(x))
            if masks is not None:
                x = x * masks[layer_index]
        return x

    main_head = _linear(sizes[-1], main.n_outputs, seed, "main", r).to(data.device)
    aux_heads = [
        _linear(sizes[-1], problem.candidates[c].n_outputs, seed, "aux", r, c).to(data.device)
        for c in spec.aux
    ]
    parameters = [*layers.parameters(), *main_head.parameters()]
    if soft:
        parameters += list(aux_layers.parameters())
    for head in aux_heads:
        parameters += list(head.parameters())
    optimizer: torch.optim.Optimizer
    if budget.weight_decay > 0:
        optimizer = torch.optim.AdamW(parameters, lr=budget.lr, weight_decay=budget.weight_decay)
    else:
        optimizer = torch.optim.Adam(parameters, lr=budget.lr)
    several = len(spec.aux) > 1 and budget.subset_weighting == "mean"
    weight = budget.lam / len(spec.aux) if several else budget.lam

    rep = torch.tensor([r], device=data.device)
    main_scale = TargetScale(data.y_mean[rep, 0], data.y_std[rep, 0])
    generator = torch.Generator().manual_seed(derive_seed(seed, "batches", r))
    pool = data.pool[r]
    val_x = data.inputs(data.val[r][None], rep)[0]
    test_x = data.inputs(data.test[r][None], rep)[0]
    val_y = data.labels[data.val[r], 0][None]
    test_y = data.labels[data.test[r], 0][None]

    higher = HIGHER_IS_BETTER[metric]
    best = -math.inf if higher else math.inf
    best_epoch, since_best = -1, 0
    best_test: torch.Tensor | None = None
    fit: dict[str, float] = {}
    # The rows whose main label trains: the training side of the train-validation gap.
    train_rows = pool[torch.isfinite(data.main_train[r, pool])]
    train_x = data.inputs(train_rows[None], rep)[0]
    train_y = data.main_train[r, train_rows][None]
    curve: list[float] = []
    train_main: list[float] = []  # training losses per epoch: mean over its minibatches
    train_aux: list[float] = []
    for epoch in range(budget.epochs):
        order = pool[torch.randperm(pool.shape[0], generator=generator).to(data.device)]
        sums, steps = [0.0, 0.0], 0
        for start in range(0, order.shape[0], budget.batch_size):
            rows = order[start : start + budget.batch_size]
            x = data.inputs(rows[None], rep)[0]
            masks = draw_masks(rows.shape[0])
            h = trunk(x, masks)
            h_aux = trunk(x, masks, aux_layers) if soft else h
            y = data.main_train[r, rows]
            known = torch.isfinite(y)
            loss = torch.zeros((), device=data.device)
            if known.any():
                out = main_head(h[known])[None]
                loss = main_loss_elements(out, y[known][None], main.kind, main_scale).mean()
            sums[0] += float(loss.detach())
            for c, head in zip(spec.aux, aux_heads, strict=True):
                aux_loss = _aux_loss(data, c, r, head(h_aux), rows)
                sums[1] += float(aux_loss.detach())
                loss = loss + weight * aux_loss
            steps += 1
            if soft and budget.coupling > 0:
                loss = loss + budget.coupling * soft_penalty(layers, aux_layers, budget.sharing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        train_main.append(sums[0] / steps)
        train_aux.append(sums[1] / steps)
        with torch.no_grad():
            val_out = main_head(trunk(val_x))[None]
            score = float(compute_metric(metric, val_out, val_y, main.kind, main_scale)[0])
            curve.append(score)
            if math.isfinite(score) and (score > best if higher else score < best):
                best, best_epoch, since_best = score, epoch, 0
                best_test = main_head(trunk(test_x))[None]
                train_out = main_head(trunk(train_x))[None]
                fit = {
                    "train_loss": float(
                        main_loss_elements(train_out, train_y, main.kind, main_scale).mean()
                    ),
                    "val_loss": float(
                        compute_metric("loss", val_out, val_y, main.kind, main_scale)[0]
                    ),
                }
            else:
                since_best += 1
        if budget.patience and since_best >= budget.patience:
            break
    assert best_test is not None
    metrics: dict[str, float] = {
        name: float(compute_metric(name, best_test, test_y, main.kind, main_scale)[0])
        for name in METRICS_BY_KIND[main.kind]
    }
    return ProbeRun(
        spec,
        metrics,
        tuple(curve),
        best_epoch,
        len(curve),
        fit=fit,
        train_curve=tuple(train_main),
        aux_curve=tuple(train_aux) if spec.aux else (),
    )


def _aux_loss(
    data: TrainingData, candidate: int, r: int, out: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    task = data.problem.candidates[candidate]
    y = data.labels[rows, candidate + 1]
    known = torch.isfinite(y)
    if not known.any():
        return torch.zeros((), device=out.device)
    out, y = out[known], y[known]
    if task.kind == "regression":
        target = (y - data.y_mean[r, candidate + 1]) / data.y_std[r, candidate + 1]
        return ((out[:, 0] - target) ** 2).mean()
    if task.kind == "binary":
        return nn.functional.binary_cross_entropy_with_logits(out[:, 0], y)
    return nn.functional.cross_entropy(out, y.long())


def soft_penalty(main: nn.ModuleList, aux: nn.ModuleList, sharing: str) -> torch.Tensor:
    """The coupling penalty of two trunks, one layer at a time: each layer's weights and
    bias flattened per task; ``soft_l2`` sums their squared distance, ``soft_trace`` the
    (smoothed, see :data:`engine.soft.SMOOTHING`) trace norm of the two stacked, from
    their singular values (in float64: the rank-deficient start needs the precision)."""
    total = torch.zeros((), dtype=torch.float64, device=next(main.parameters()).device)
    for m_layer, a_layer in zip(main, aux, strict=True):
        assert isinstance(m_layer, nn.Linear)
        assert isinstance(a_layer, nn.Linear)
        m = torch.cat([m_layer.weight.flatten(), m_layer.bias])
        a = torch.cat([a_layer.weight.flatten(), a_layer.bias])
        if sharing == "soft_l2":
            total = total + (m - a).double().square().sum()
        else:
            sigma = torch.linalg.svdvals(torch.stack([m, a]).double())
            total = total + torch.sqrt(sigma.square() + SMOOTHING).sum()
    return total
