"""A problem and its splits as tensors on one device, with each replicate's feature and
target statistics from its own training rows: what every chunk of probes reads.

With several shares of the main training labels (``main_train_fractions``, nested
splits, :mod:`engine.fractions`) one ``TrainingData`` serves every share: the rows,
features and candidate labels are the same at every share, so it keeps the largest
share's main labels, the smallest share each row's main label trains at, and each
share's main-target statistics; a probe reads the main labels of its own share."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from engine.metrics import TargetScale
from engine.problem import Problem
from engine.splits import Splits

# Auxiliary task kinds as numbers, so the loss picks each slot's branch on the device.
_KIND_CODE = {"regression": 0, "binary": 1, "multiclass": 2}


class TrainingData:
    """A problem and its splits as tensors on one device, shared by every chunk."""

    def __init__(
        self,
        problem: Problem,
        splits: Splits,
        device: torch.device,
        *,
        shares: Sequence[tuple[float, Splits]] = (),
    ) -> None:
        """``shares``: (share, its splits) ascending, nested, ``splits`` the largest
        share's; empty for a job at one share."""
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
                y_mean[r, t], y_std[r, t] = _label_stats(y)

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
        self.shares = tuple(share for share, _ in shares)
        self.main_level: torch.Tensor | None = None
        if shares:
            level, mean, std = _share_levels(problem, splits, shares)
            self.main_level = tensor(level, torch.int8)  # [R, N]
            self.main_mean = tensor(mean)  # [S, R]
            self.main_std = tensor(std)  # [S, R]

    def share_index(self, share: float | None) -> int:
        """Position of a probe's share among this data's shares (0 without shares)."""
        if not self.shares and share is None:
            return 0
        if share not in self.shares:
            raise ValueError(f"probe share {share!r} is not one of {self.shares}")
        return self.shares.index(share)

    def main_scale(self, replicates: torch.Tensor, shares: torch.Tensor) -> TargetScale:
        """The main target's scale per probe, from its replicate [P] and share index [P]."""
        if self.main_level is None:
            return TargetScale(self.y_mean[replicates, 0], self.y_std[replicates, 0])
        return TargetScale(self.main_mean[shares, replicates], self.main_std[shares, replicates])

    def main_labels(
        self,
        replicates: torch.Tensor,
        rows: torch.Tensor,
        probe_rep: torch.Tensor,
        shares: torch.Tensor,
    ) -> torch.Tensor:
        """The main labels that train [P, n] (NaN where none does) of rows [R', n] of
        replicates [R']; probe p reads replicate ``probe_rep[p]`` at share index
        ``shares[p]``."""
        labels = self.main_train[replicates[:, None], rows][probe_rep]  # [P, n]
        if self.main_level is None:
            return labels
        level = self.main_level[replicates[:, None], rows][probe_rep]  # [P, n]
        return torch.where(level <= shares[:, None], labels, torch.nan)

    def inputs(self, rows: torch.Tensor, replicates: torch.Tensor) -> torch.Tensor:
        """Standardised, imputed features [R', n, F] of rows [R', n] per replicate."""
        x = (self.x[rows] - self.x_mean[replicates, None]) / self.x_std[replicates, None]
        return torch.nan_to_num(x, nan=0.0)


def _label_stats(y: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (1 when 0) of the finite labels in ``y``; (0, 1)
    without any."""
    y = y[np.isfinite(y)]
    if not y.size:
        return 0.0, 1.0
    return float(y.mean()), float(y.std()) if y.std() > 0 else 1.0


def _share_levels(
    problem: Problem, largest: Splits, shares: Sequence[tuple[float, Splits]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per replicate and row, the index of the smallest share whose main labels include
    the row's (len(shares) where none does), and each share's main-target mean and
    standard deviation [S, R] (as a ``TrainingData`` of that share alone has them)."""
    n_reps = largest.replicates
    level = np.full(largest.main_train.shape, len(shares), dtype=np.int8)
    mean = np.zeros((len(shares), n_reps))
    std = np.ones((len(shares), n_reps))
    labels = problem.labels[:, 0]
    if not np.array_equal(shares[-1][1].main_train, largest.main_train):
        raise ValueError("the splits must be the largest share's")
    larger = largest.main_train
    for s in reversed(range(len(shares))):  # largest first: smaller shares overwrite
        share, splits = shares[s]
        same = all(
            np.array_equal(getattr(splits, name), getattr(largest, name))
            for name in ("pool", "val", "test")
        )
        if not same or (splits.main_train & ~larger).any():
            raise ValueError(f"the splits at share {share!r} are not nested in the larger's")
        level[splits.main_train] = s
        larger = splits.main_train
        if problem.main.kind == "regression":
            main_train = np.where(splits.main_train, labels[None, :], np.nan)
            for r in range(n_reps):
                mean[s, r], std[s, r] = _label_stats(main_train[r])
    return level, mean, std
