"""A problem and its splits as tensors on one device, with each replicate's feature and
target statistics from its own training rows: what every chunk of probes reads."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from engine.problem import Problem
from engine.splits import Splits

# Auxiliary task kinds as numbers, so the loss picks each slot's branch on the device.
_KIND_CODE = {"regression": 0, "binary": 1, "multiclass": 2}


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
