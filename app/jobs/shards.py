"""What a Ray worker process runs for one shard. Kept apart from the service modules so
that a Ray worker imports only the engine (and torch), not the web stack."""

from __future__ import annotations

import time

import torch

import engine
from app.jobs.context import JobContext

# Per Ray worker process: the last job's tensors, reused by its next shard.
_DATA_CACHE: dict[str, engine.TrainingData] = {}


def train_shard(
    token: str, context: JobContext, specs: list[engine.ProbeSpec], threads: int
) -> tuple[list[engine.ProbeRun], float]:
    """One shard, inside a Ray worker: the same ``train_probes`` call the local executor
    makes for this chunk. Returns the runs and the seconds spent."""
    started = time.perf_counter()
    torch.set_num_threads(max(1, threads))
    data = _DATA_CACHE.get(token)
    if data is None:
        data = context.training_data()
        _DATA_CACHE.clear()
        _DATA_CACHE[token] = data
    runs = engine.train_probes(
        data, specs, context.budget, seed=context.seed, metric=context.metric
    )
    return runs, time.perf_counter() - started
