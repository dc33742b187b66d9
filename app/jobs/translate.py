"""A job spec as engine objects: its budget, its tasks, and the prepared problem with
its splits. The one translation, used at submission (to refuse at once what the worker
would refuse for the data) and by the worker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import engine
from app.data.frames import load_frame
from app.data.storage import Storage
from app.db.models import Dataset
from app.jobs.context import JobContext
from app.jobs.spec import JobSpec, TaskIn
from app.settings import Settings


def engine_budget(spec: JobSpec, settings: Settings) -> engine.Budget:
    """The engine's budget for a job: its recipe's (engine.recipe_budget), with the
    spec's explicit budget options over it, plus the server-side memory cap."""
    return engine.recipe_budget(spec.recipe, **spec.budget.explicit(), memory_mb=settings.memory_mb)


def planned_epochs(spec: JobSpec, budget: engine.Budget) -> int:
    """The most probe-epochs the job can take (its progress total)."""
    return engine.planned_epochs(spec.method, budget, len(spec.candidates))


def task_spec(spec: JobSpec, task: TaskIn) -> engine.TaskSpec:
    return engine.TaskSpec(task.column, kind=task.kind, name=task.name, source=spec.source(task))


def build_context(
    spec: JobSpec,
    datasets: Mapping[str, Dataset],
    storage: Storage,
    settings: Settings,
    budget: engine.Budget | None = None,
    inputs: Sequence[str] | None = None,
) -> JobContext:
    """Load the job's tables and turn its spec into an engine problem and splits (the
    engine's label, feature and split checks run here: their errors are SpecErrors).
    ``inputs`` are the feature columns decided at submission (from the spec's
    ``features`` or the data set's column roles, stored as ``jobs.inputs``); None, for
    a job stored before roles, keeps the old rule (``features``, else every column that
    is not one of the job's tasks)."""
    if spec.dataset_id not in datasets:
        raise engine.SpecError(
            f"Data set {spec.dataset_id!r} no longer exists.", field="dataset_id"
        )
    frames = {ds_id: load_frame(storage, ds, settings) for ds_id, ds in datasets.items()}
    tables = {ds_id: frame for ds_id, frame in frames.items() if ds_id != spec.dataset_id}
    problem = engine.prepare(
        frames[spec.dataset_id],
        task_spec(spec, spec.main_task),
        [task_spec(spec, c) for c in spec.candidates],
        features=list(inputs) if inputs is not None else spec.features,
        tables=tables,
    )
    budget = budget or engine_budget(spec, settings)
    splits = engine.splits_for(problem, budget, spec.seed)
    return JobContext(problem, splits, budget, spec.seed, spec.metric, settings.device)
