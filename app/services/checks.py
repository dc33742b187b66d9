"""Everything a job is refused for at submission, so a bad job never reaches a worker:
the spec against the data sets' stored column profiles and the server's limits, the
estimated cost, and the data itself, prepared by the engine as the worker will."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

import engine
from app.api.schemas import ColumnProfile
from app.data.roles import default_inputs
from app.data.storage import Storage
from app.db.models import Dataset
from app.db.repositories import datasets as dataset_repo
from app.errors import ProblemError
from app.jobs.fractions import share_contexts, share_problems
from app.jobs.spec import JobSpec
from app.jobs.translate import build_context, engine_budget, planned_epochs
from app.services import datasets as datasets_service
from app.services.cost import Profiles, check_cost, columns_of, estimate
from app.settings import Settings


class SpecProblems:
    """Collects every problem of a job spec, so the user fixes them in one go."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append({"field": field, "message": message})

    def add_engine(self, exc: engine.EngineError, field: str | None = None) -> None:
        """The engine's own message (and fix) for what it refused."""
        self.add(field or exc.field or "budget", exc.message + (f" {exc.hint}" if exc.hint else ""))

    def raise_if_any(self) -> None:
        if self.errors:
            first = self.errors[0]
            raise ProblemError(
                422,
                "Invalid job spec",
                f"{first['field']}: {first['message']}"
                + (f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""),
                type_="invalid-job-spec",
                errors=self.errors,
            )


def _check_label(
    problems: SpecProblems,
    field: str,
    column: ColumnProfile,
    kind: engine.TaskKind | None,
    rows: int,
) -> None:
    """The engine's label rules (engine.label_problems) on the stored profile: every
    problem at once, each on its field (the task's ``kind`` when that is what to change)."""
    mixed = column.mixed
    stats = engine.LabelStats(
        column=column.name,
        labelled=rows - column.missing,
        distinct=column.unique,
        numeric=column.dtype in ("number", "integer", "boolean"),
        dates=column.dtype == "datetime",
        infinite=column.infinite,
        huge=column.huge,
        mixed=(mixed.numbers, mixed.text, mixed.example) if mixed else None,
        inferred=column.kind,
    )
    for problem in engine.label_problems(stats, kind):
        problems.add(f"{field.rsplit('.', 1)[0]}.kind" if problem.kind else field, problem.message)


@dataclass(frozen=True)
class Sources:
    """A job's data sets (the main one first) and their stored column profiles."""

    main: Dataset
    others: dict[str, Dataset]
    profiles: Profiles
    inputs: list[str]
    """The job's input columns: its ``features``, else the main data set's feature-role
    columns that are not its tasks (app/data/roles.py)."""

    @property
    def all(self) -> dict[str, Dataset]:
        return {self.main.id: self.main, **self.others}


def validate(
    session: Session, settings: Settings, owner: str, spec: JobSpec
) -> tuple[Sources, engine.Budget]:
    """Check the spec against the data sets' stored column profiles and the limits;
    the job's engine budget (built here, once per submission)."""
    problems = SpecProblems()
    main_ds = dataset_repo.get(session, owner, spec.dataset_id)
    if main_ds is None:
        problems.add("dataset_id", f"No data set {spec.dataset_id!r}; upload one first.")
        problems.raise_if_any()
    assert main_ds is not None
    others = dataset_repo.get_many(session, owner, sorted(spec.dataset_ids() - {main_ds.id}))
    profiles = {ds.id: columns_of(ds) for ds in (main_ds, *others.values())}
    columns = profiles[main_ds.id]

    if spec.main_task.dataset_id not in (None, main_ds.id):
        problems.add("main_task.dataset_id", "The main task comes from `dataset_id`; remove it.")
    main_col = columns.get(spec.main_task.column)
    if main_col is None:
        problems.add(
            "main_task.column",
            f"Column {spec.main_task.column!r} is not in data set {main_ds.name!r}.",
        )
    else:
        _check_label(problems, "main_task.column", main_col, spec.main_task.kind, main_ds.rows)
        kind = spec.main_task.kind or main_col.kind
        if kind in engine.TASK_KINDS and spec.metric not in engine.METRICS_BY_KIND[kind]:
            problems.add(
                "metric",
                f"Metric {spec.metric!r} does not apply to a {kind} main task; use one of "
                f"{', '.join(engine.METRICS_BY_KIND[kind])}.",
            )

    if len(spec.candidates) > settings.max_candidates:
        problems.add(
            "candidates",
            f"{len(spec.candidates)} candidates exceed the limit of {settings.max_candidates} "
            "(setting AUXSEL_MAX_CANDIDATES).",
        )
    label_columns = {spec.main_task.column}
    names = {spec.main_task.label: "main_task"}
    for i, cand in enumerate(spec.candidates):
        field = f"candidates[{i}]"
        source = main_ds if cand.dataset_id in (None, main_ds.id) else others.get(cand.dataset_id)
        if source is None:
            problems.add(f"{field}.dataset_id", f"No data set {cand.dataset_id!r}.")
            continue
        if source is main_ds:
            label_columns.add(cand.column)
            if cand.column == spec.main_task.column:
                problems.add(f"{field}.column", "A candidate cannot be the main task itself.")
                continue
        col = profiles[source.id].get(cand.column)
        if col is None:
            problems.add(f"{field}.column", f"Column {cand.column!r} is not in {source.name!r}.")
            continue
        _check_label(problems, f"{field}.column", col, cand.kind, source.rows)
        name = cand.label
        if name in names:
            problems.add(f"{field}.name", f"Name {name!r} is used twice; give it a `name`.")
        names[name] = field

    roles = datasets_service.roles(main_ds)
    if spec.features is not None:
        if not spec.features:
            problems.add("features", "Give at least one feature column, or leave it out.")
        seen_features: set[str] = set()
        for j, feature in enumerate(spec.features):
            if feature in seen_features:
                problems.add(f"features[{j}]", f"{feature!r} is listed twice.")
                continue
            seen_features.add(feature)
            if feature in label_columns:
                problems.add(f"features[{j}]", f"{feature!r} is a label; it cannot be a feature.")
            elif feature not in columns:
                problems.add(f"features[{j}]", f"Column {feature!r} is not in {main_ds.name!r}.")
            elif roles[feature]["role"] == "label":
                problems.add(
                    f"features[{j}]",
                    f"Column {feature!r} has the role label in data set {main_ds.name!r} "
                    f"({roles[feature]['reason']}): a label is never an input. Drop it from "
                    "`features`, or, if it is not a label, change its role to feature "
                    f"(PATCH /api/v1/datasets/{main_ds.id}/columns).",
                )
        features = [f for f in spec.features if f in columns and f not in label_columns]
    else:
        features = default_inputs(list(columns), roles, label_columns)
        if not features:
            others_shown = "; ".join(
                f"{name!r} is {role['role']} ({role['reason']})"
                for name, role in list(roles.items())
                if name not in label_columns
            )
            problems.add(
                "features",
                f"No column of data set {main_ds.name!r} has the role feature (besides this "
                f"job's tasks), so the job has no inputs{': ' if others_shown else ''}"
                f"{others_shown[:600]}. Give feature columns the role feature (PATCH "
                f"/api/v1/datasets/{main_ds.id}/columns), or name them in `features`.",
            )
    for other_id, other in others.items():
        lacking = [f for f in features if f not in profiles[other_id]]
        if lacking:
            problems.add(
                "candidates",
                f"Data set {other.name!r} ({other_id}) lacks feature column(s) "
                f"{', '.join(map(repr, lacking[:5]))}; a candidate from another data set "
                "needs the main data set's feature columns (or set `features`).",
            )

    budget = _check_budget(problems, settings, spec)
    problems.raise_if_any()
    assert budget is not None
    return Sources(main_ds, others, profiles, features), budget


def _check_budget(
    problems: SpecProblems, settings: Settings, spec: JobSpec
) -> engine.Budget | None:
    """The server's caps on what the job trains (its recipe's values with its explicit
    options over them; the engine's own bounds are in the schema), and the engine
    budget when it is valid."""
    # The values engine.recipe_budget resolves (the recipe's, the explicit ones over
    # them), read before the engine budget is built: a width the engine refuses is
    # reported here by its item, with the server's cap.
    explicit = spec.budget.explicit()  # the options set (not None)
    recipe = engine.RECIPES[spec.recipe]
    epochs: int = recipe["epochs"] if spec.budget.epochs is None else spec.budget.epochs
    hidden: Sequence[int] = recipe["hidden"] if spec.budget.hidden is None else spec.budget.hidden

    def source(name: str) -> str:
        """Where a capped value comes from, when the job did not set it."""
        if name in explicit:
            return ""
        return (
            f" The {spec.recipe} recipe trains {_shown(recipe[name])}; set budget.{name} "
            "or choose another recipe."
        )

    if spec.budget.seeds > settings.max_seeds:
        problems.add("budget.seeds", f"At most {settings.max_seeds} (AUXSEL_MAX_SEEDS).")
    elif spec.budget.max_replicates > settings.max_seeds:
        problems.add(
            "budget.max_replicates",
            f"At most {settings.max_seeds} (AUXSEL_MAX_SEEDS): racing trains up to this "
            "many replicates of a candidate.",
        )
    if epochs > settings.max_epochs:
        problems.add(
            "budget.epochs",
            f"At most {settings.max_epochs} (AUXSEL_MAX_EPOCHS).{source('epochs')}",
        )
    if len(hidden) > settings.max_hidden_layers:
        problems.add(
            "budget.hidden",
            f"At most {settings.max_hidden_layers} layers (AUXSEL_MAX_HIDDEN_LAYERS)."
            + source("hidden"),
        )
    width = engine.Budget.bounds("hidden")
    for k, units in enumerate(hidden):
        if not (width.admits(units) and units <= settings.max_hidden_width):
            problems.add(
                f"budget.hidden[{k}]",
                f"Widths run from {width.ge:g} to {settings.max_hidden_width} "
                f"(AUXSEL_MAX_HIDDEN_WIDTH).{source('hidden')}",
            )
    try:
        budget = engine_budget(spec, settings)
        engine.check_method(spec.method, budget)
    except engine.SpecError as exc:
        problems.add_engine(exc)
        return None
    for message in share_problems(spec.method, budget):
        problems.add("budget.main_train_fractions", message)
    cost = planned_epochs(spec, budget)
    if cost > settings.max_probe_epochs:
        problems.add(
            "budget",
            f"The job plans {cost:,} probe-epochs (seeds x epochs x probes, plus screening "
            f"and subset search), over the limit of {settings.max_probe_epochs:,} "
            "(AUXSEL_MAX_PROBE_EPOCHS); lower seeds or epochs, or split the candidates over "
            "several jobs.",
        )
    return budget


def _shown(value: object) -> str:
    """A budget value as a message shows it (widths as 256-64)."""
    if isinstance(value, tuple | list):
        return "-".join(str(v) for v in value)
    return str(value)


SPEC_FIELDS = frozenset(JobSpec.model_fields)


def _spec_field(spec: JobSpec, field: str | None) -> str | None:
    """The spec field an engine error names: its own path, or the label column's."""
    if field is None or field.split(".")[0].split("[")[0] in SPEC_FIELDS:
        return field
    if field == spec.main_task.column:
        return "main_task.column"
    found = next((i for i, c in enumerate(spec.candidates) if c.column == field), None)
    return f"candidates[{found}].column" if found is not None else field


def check_data(
    spec: JobSpec, sources: Sources, storage: Storage, settings: Settings, budget: engine.Budget
) -> None:
    """Prepare the job's data the way the worker will (app/jobs/translate.py): the
    engine's label, feature and split checks refuse now what would fail the job later."""
    try:
        context = build_context(spec, sources.all, storage, settings, budget, inputs=sources.inputs)
        share_contexts(context)  # every share's splits: too few rows at one is refused
    except engine.EngineError as exc:
        problems = SpecProblems()
        problems.add_engine(exc, _spec_field(spec, exc.field))
        problems.raise_if_any()


@dataclass(frozen=True)
class Checked:
    """A spec that passed every submission check: its budget, estimated cost and the
    input columns it will train on."""

    budget: engine.Budget
    cost: engine.CostEstimate
    inputs: list[str]


def check(
    session: Session, storage: Storage, settings: Settings, owner: str, spec: JobSpec
) -> Checked:
    """Everything a job is refused for at submission: the spec against the stored
    profiles and limits, its estimated cost, and its data as the engine prepares it."""
    sources, budget = validate(session, settings, owner, spec)
    cost = estimate(spec, budget, sources.main, sources.others, sources.profiles, sources.inputs)
    check_cost(cost, budget, settings)
    check_data(spec, sources, storage, settings, budget)
    return Checked(budget, cost, sources.inputs)
