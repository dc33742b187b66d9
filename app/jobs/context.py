"""What any executor needs to train the probes of one job; shared by the executors and
the Ray shard function without either importing the other."""

from __future__ import annotations

from dataclasses import dataclass

import engine


@dataclass(frozen=True)
class JobContext:
    """What any executor needs to train probes of one job (picklable)."""

    problem: engine.Problem
    splits: engine.Splits
    budget: engine.Budget
    seed: int
    metric: engine.MetricName
    device: str
    # A job at several shares of the main labels trained together (app/jobs/fractions.py):
    # (share, its splits) ascending, ``splits`` the largest share's; empty otherwise.
    shares: tuple[tuple[float, engine.Splits], ...] = ()

    def training_data(self) -> engine.TrainingData:
        """The job's data as tensors on its device (every share's main labels)."""
        return engine.TrainingData(
            self.problem, self.splits, engine.resolve_device(self.device), shares=self.shares
        )
