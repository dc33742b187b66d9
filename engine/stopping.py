"""The early-stopping rule, per probe: keep the epoch with the best validation score,
and stop a probe after ``patience`` epochs without improving (0: never) or in the
epoch its loss diverged. Each probe's state is its own, so probes sharing a batch do
not change when another stops."""

from __future__ import annotations

import copy
import math

import torch


class EarlyStopping:
    """The stopping state of ``n_probes`` probes training for at most ``epochs``."""

    def __init__(
        self, n_probes: int, epochs: int, patience: int, higher: bool, device: torch.device
    ) -> None:
        self.patience = patience
        self.higher = higher
        self.best = torch.full((n_probes,), -math.inf if higher else math.inf, device=device)
        self.best_epoch = torch.full((n_probes,), -1, dtype=torch.long, device=device)
        self.since_best = torch.zeros(n_probes, dtype=torch.long, device=device)
        self.active = torch.ones(n_probes, dtype=torch.bool, device=device)
        self.stopped_at = torch.full((n_probes,), epochs - 1, dtype=torch.long, device=device)

    def update(self, score: torch.Tensor, diverged_at: torch.Tensor, epoch: int) -> torch.Tensor:
        """Record ``epoch``'s validation ``score`` [P] (``diverged_at`` [P]: the epoch a
        probe's loss diverged, -1 if not); returns which probes improved, whose weights
        are now their best."""
        better = score > self.best if self.higher else score < self.best
        improved = better & self.active & torch.isfinite(score) & (diverged_at < 0)
        self.best = torch.where(improved, score, self.best)
        self.best_epoch = torch.where(improved, epoch, self.best_epoch)
        self.since_best = torch.where(improved, 0, self.since_best + 1)
        ended = self.active & (
            (diverged_at >= 0) | ((self.since_best >= self.patience) & (self.patience > 0))
        )
        self.stopped_at = torch.where(ended, epoch, self.stopped_at)
        self.active = self.active & ~ended
        return improved

    @property
    def done(self) -> bool:
        """Whether every probe has stopped."""
        return not bool(self.active.any())

    def select(self, keep: torch.Tensor) -> EarlyStopping:
        """The state of the probes where ``keep`` [P] holds."""
        part = copy.copy(self)
        for name in ("best", "best_epoch", "since_best", "active", "stopped_at"):
            setattr(part, name, getattr(self, name)[keep])
        return part
