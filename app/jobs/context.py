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
