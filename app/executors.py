"""Executors train a job's chunks of probes. ``local`` (the default) trains them in this
process with the batched engine; every finished chunk is handed to ``on_done`` at once
so the worker can commit it before the next one starts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import engine
from engine.training import ProgressFn, TrainingData


@dataclass(frozen=True)
class JobContext:
    """What any executor needs to train probes of one job (picklable)."""

    problem: engine.Problem
    splits: engine.Splits
    budget: engine.Budget
    seed: int
    metric: engine.MetricName
    device: str


ChunkDone = Callable[[list[engine.ProbeRun]], None]


class Executor(Protocol):
    def run(
        self,
        context: JobContext,
        chunks: Sequence[Sequence[engine.ProbeSpec]],
        on_done: ChunkDone,
        progress: ProgressFn,
    ) -> None:
        """Train every chunk; call ``on_done`` with each chunk's runs as it finishes and
        ``progress(done, total)`` in probe-epochs over all chunks. Exceptions raised by
        either callback stop the work and propagate."""
        ...


class LocalExecutor:
    """Chunks one after another in this process, on the configured device."""

    def run(
        self,
        context: JobContext,
        chunks: Sequence[Sequence[engine.ProbeSpec]],
        on_done: ChunkDone,
        progress: ProgressFn,
    ) -> None:
        data = TrainingData(context.problem, context.splits, engine.resolve_device(context.device))
        total = sum(len(c) for c in chunks) * context.budget.epochs
        offset = 0
        for chunk in chunks:

            def chunk_progress(done: int, _total: int, offset: int = offset) -> None:
                progress(offset + done, total)

            runs = engine.train_probes(
                data,
                chunk,
                context.budget,
                seed=context.seed,
                metric=context.metric,
                progress=chunk_progress,
            )
            on_done(runs)
            offset += len(chunk) * context.budget.epochs


def make_executor(name: str) -> Executor:
    if name == "local":
        return LocalExecutor()
    raise ValueError(f"executor {name!r} is not available in this installation")
