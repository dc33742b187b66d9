"""A job's estimated cost at submission (engine.estimate_cost on the sizes its stored
column profiles give), and the 422 when it is over the server's limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import engine
from app.api.schemas import ColumnProfile
from app.db.models import Dataset
from app.errors import ProblemError
from app.jobs.spec import JobSpec
from app.settings import Settings


def columns_of(dataset: Dataset) -> dict[str, ColumnProfile]:
    """A data set's stored column profiles, by column name."""
    profiles = (ColumnProfile.model_validate(c) for c in dataset.profile)
    return {profile.name: profile for profile in profiles}


def _encoded_width(column: ColumnProfile) -> int:
    """Columns a feature becomes (engine.features): a number (+ a missing indicator),
    or one indicator per kept category of a text column; dates are dropped."""
    dtype = column.dtype
    if dtype == "datetime":
        return 0
    if dtype in ("number", "integer", "boolean"):
        return 1 + (1 if column.missing else 0)
    categories = int(column.unique) + (1 if column.missing else 0)
    return min(categories, engine.FeatureConfig().max_categories)


def _outputs(column: ColumnProfile | None, kind: str | None) -> int:
    """Width of a task's head: its classes when multiclass, else 1."""
    if column is None:
        return 1
    return int(column.unique) if (kind or column.kind) == "multiclass" else 1


Profiles = Mapping[str, dict[str, ColumnProfile]]
"""Column profiles by data set id, then column name."""


def job_shape(
    spec: JobSpec,
    main_ds: Dataset,
    others: Mapping[str, Dataset],
    profiles: Profiles,
    inputs: Sequence[str],
) -> engine.JobShape:
    """The sizes the cost of a (validated) job depends on, from the stored profiles
    and its ``inputs`` (the feature columns it trains on)."""
    columns = profiles[main_ds.id]

    def source(task_dataset: str | None) -> Dataset:
        return main_ds if task_dataset in (None, main_ds.id) else others[str(task_dataset)]

    width = sum(_encoded_width(columns[n]) for n in set(inputs) if n in columns)
    aux = [
        _outputs(profiles[source(c.dataset_id).id].get(c.column), c.kind) for c in spec.candidates
    ]
    return engine.JobShape(
        rows=main_ds.rows + sum(ds.rows for ds in others.values()),
        n_features=max(1, width),
        n_candidates=len(spec.candidates),
        main_outputs=_outputs(columns.get(spec.main_task.column), spec.main_task.kind),
        aux_outputs=max(aux, default=1),
    )


def estimate(
    spec: JobSpec,
    budget: engine.Budget,
    main_ds: Dataset,
    others: Mapping[str, Dataset],
    profiles: Profiles,
    inputs: Sequence[str],
) -> engine.CostEstimate:
    """The job's estimated FLOPs and peak memory (engine.estimate_cost)."""
    shape = job_shape(spec, main_ds, others, profiles, inputs)
    return engine.estimate_cost(spec.method, budget, shape)


def _largest_factor(b: engine.Budget) -> str:
    """The budget field furthest above its default, relative to it: the first to lower."""
    default = engine.Budget()

    def trunk(hidden: Sequence[int]) -> int:  # weights past the first layer, + widths
        return sum(a * c for a, c in pairwise(hidden)) + sum(hidden)

    ratios = {
        "budget.seeds": b.seeds / default.seeds,
        "budget.epochs": b.epochs / default.epochs,
        "budget.hidden": trunk(b.hidden) / trunk(default.hidden),
    }
    return max(ratios, key=lambda k: ratios[k])


def check_cost(cost: engine.CostEstimate, budget: engine.Budget, settings: Settings) -> None:
    """422 when the estimate is over AUXSEL_MAX_JOB_FLOPS or AUXSEL_MAX_JOB_MEMORY_MB,
    with the numbers and the field to lower."""
    errors: list[dict[str, str]] = []
    flops_limit, memory_limit = settings.max_job_flops, settings.max_job_memory_mb
    if flops_limit > 0 and cost.flops > flops_limit:
        field = _largest_factor(budget)
        errors.append(
            {
                "field": field,
                "message": f"The job needs about {cost.flops:.2g} floating-point operations, "
                f"over the limit of {flops_limit:.2g} (AUXSEL_MAX_JOB_FLOPS): lower {field} "
                "first (the cost grows with seeds x epochs x probes x trunk size x rows), or "
                "split the candidates over several jobs.",
            }
        )
    if memory_limit > 0 and cost.memory_mb > memory_limit:
        probe_mb = cost.probe_bytes / 2**20
        if cost.data_bytes >= cost.probe_bytes:
            field, how = "features", "use fewer feature columns (`features`) or fewer rows"
        else:
            field = "budget.batch_size" if budget.batch_size > 1024 else "budget.hidden"
            how = f"lower {field} (one probe alone needs {probe_mb:,.0f} MiB)"
        errors.append(
            {
                "field": field,
                "message": f"The job needs about {cost.memory_mb:,.0f} MiB at its peak (the "
                f"training data {cost.data_bytes / 2**20:,.0f} MiB and its largest chunk), "
                f"over the limit of {memory_limit:,.0f} MiB (AUXSEL_MAX_JOB_MEMORY_MB): {how}.",
            }
        )
    if not errors:
        return
    raise ProblemError(
        422,
        "Job over the cost limits",
        errors[0]["message"] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
        type_="job-cost-limit",
        errors=errors,
        extensions={
            "estimate": cost.to_dict(),
            "limits": {"flops": flops_limit, "memory_mb": memory_limit},
        },
    )
