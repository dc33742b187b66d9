"""What each replicate's probes draw from the seed alone: their minibatch order and
their dropout masks, the same whichever chunk or run a probe trains in."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.seeding import derive_seed
from engine.training_data import TrainingData


class BatchOrder:
    """Each replicate's own minibatch order, drawn from (seed, replicate) alone, so a
    replicate's probes see the same batches whichever chunk or run they train in."""

    def __init__(self, data: TrainingData, replicates: Sequence[int], seed: int) -> None:
        device = data.device
        self.generators = [
            torch.Generator().manual_seed(derive_seed(seed, "batches", r)) for r in replicates
        ]
        self.pool = data.pool[torch.tensor(list(replicates), device=device)]  # [R', n_pool]

    def keep(self, replicates: Sequence[bool]) -> None:
        """Go on with the replicates where ``replicates`` (one per replicate) holds;
        their streams continue where they were."""
        self.generators = [g for g, k in zip(self.generators, replicates, strict=True) if k]
        self.pool = self.pool[torch.tensor(list(replicates), device=self.pool.device)]

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

    def keep(self, replicates: Sequence[bool]) -> None:
        """Go on with the replicates where ``replicates`` (one per replicate) holds;
        their streams continue where they were."""
        self.generators = [g for g, k in zip(self.generators, replicates, strict=True) if k]

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
