"""The loop that trains probes chunk by chunk under the budget's memory cap, on the device
a job names; shared by ``LocalRunner`` and the service's local executor."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from engine.budget import Budget
from engine.errors import SpecError
from engine.metrics import MetricName
from engine.plan import chunk_plan
from engine.probe_spec import ProbeSpec
from engine.problem import Problem
from engine.readout import ProbeRun
from engine.splits import Splits
from engine.training import FinishedFn, ProgressFn, train_probes
from engine.training_data import TrainingData


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise SpecError(f"Unknown device {device!r}.", field="device") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SpecError(
            "CUDA was asked for but is not available.",
            field="device",
            hint="Use device='cpu' or 'auto'.",
        )
    return resolved


def run_probes(
    problem: Problem,
    splits: Splits,
    specs: Sequence[ProbeSpec],
    budget: Budget,
    *,
    seed: int,
    metric: MetricName,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    data: TrainingData | None = None,
) -> tuple[list[ProbeRun], int]:
    """Train ``specs`` chunk by chunk under the budget's memory cap.

    Returns the runs in the order of ``specs`` and the number of chunks used.
    """
    data = data or TrainingData(problem, splits, resolve_device(device))
    chunks = chunk_plan(specs, problem, budget)
    runs: list[ProbeRun] = []
    for _chunk, chunk_runs in train_chunks(
        data, chunks, budget, seed=seed, metric=metric, progress=progress
    ):
        runs.extend(chunk_runs)
    return runs, len(chunks)


def train_chunks(
    data: TrainingData,
    chunks: Sequence[Sequence[ProbeSpec]],
    budget: Budget,
    *,
    seed: int,
    metric: MetricName,
    progress: ProgressFn | None = None,
    finished: FinishedFn | None = None,
) -> Iterator[tuple[Sequence[ProbeSpec], list[ProbeRun]]]:
    """Train ``chunks`` one after another, yielding each chunk with its runs as soon as
    it finishes. ``progress`` gets (probe-epochs done, total) over all the chunks; when
    it raises to stop, the runs of the current chunk's finished probes go to
    ``finished`` first (engine.train_probes)."""
    total = sum(len(c) for c in chunks) * budget.epochs
    offset = 0
    for chunk in chunks:

        def chunk_progress(done: int, _total: int, offset: int = offset) -> None:
            if progress is not None:
                progress(offset + done, total)

        runs = train_probes(
            data,
            chunk,
            budget,
            seed=seed,
            metric=metric,
            progress=chunk_progress,
            finished=finished,
        )
        yield chunk, runs
        offset += len(chunk) * budget.epochs
