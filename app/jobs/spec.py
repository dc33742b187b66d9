"""The typed job spec: what the API validates, the database stores (``model_dump`` into
``jobs.spec``) and the worker reads back (``JobSpec.model_validate``). Its defaults,
bounds and descriptions come from the engine (:class:`engine.Budget`'s fields,
``engine.DEFAULT_METHOD``, ``engine.DEFAULT_METRIC``, ``engine.RECIPES``); nothing here
retypes them.

A job trains one recipe (``recipe``, see :mod:`engine.recipes`); its budget's recipe
knobs (``engine.RECIPE_KNOBS``) default to null, the recipe's value, and an explicit
one overrides it. A spec stored before recipes (no ``recipe``, its knobs explicit)
gives the same budget as then, and names the recipe its knobs are closest to
(``implied_recipe``). Jobs stored before ``race_spending`` raced under Bonferroni over
looks: migration 0008 wrote that into their budgets, so they resume as they ran."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

import engine
from app.jobs.fractions import check_shares

_DEFAULT = engine.Budget()

ENGINE_ONLY = frozenset(
    {
        "memory_mb",  # the server's: AUXSEL_MEMORY_MB
        "val_fraction",
        "test_fraction",
        "proxy_every",
        "proxy_rows",
        "screen_proxy",
        "subset_weighting",
        "subset_width",
    }
)
"""Budget options a job cannot set: the server's memory cap, research knobs that jobs
run at the engine's defaults."""


class Strict(BaseModel):
    # Unknown fields are errors (a typo must not be silently ignored), and JSON types
    # are not coerced ("3" is not an int, true is not an int).
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        """No NUL in any name, column or id (PostgreSQL cannot store one in text)."""
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, str) and "\x00" in item:
                where = f" (item {i})" if isinstance(value, list) else ""
                raise ValueError(f"Holds a NUL character{where}; remove control characters.")
        return value


RECIPE_NOTE = "Left out: the recipe's value."
"""The end of a recipe knob's description (its default is null, the recipe's value)."""


def budget_field(name: str) -> Any:
    """A pydantic field with the engine's default, bounds and description of budget
    option ``name`` (typed as ``pydantic.Field`` returns it, to fit any field). A
    recipe knob defaults to None, the job's recipe's value."""
    bounds = engine.Budget.bounds(name)
    knob = name in engine.RECIPE_KNOBS
    default = getattr(_DEFAULT, name)
    doc = " ".join(part for part in (bounds.doc, RECIPE_NOTE if knob else "") if part)
    if isinstance(default, tuple):  # a list option: the bounds are each item's

        def item_bounds(schema: JsonDict) -> None:
            branches = schema.get("anyOf", [schema])  # list | None: the list branch
            assert isinstance(branches, list)
            array = next(b for b in branches if isinstance(b, dict) and "items" in b)
            items = array["items"]
            assert isinstance(items, dict)
            items.update(
                {
                    key: value
                    for key, value in (
                        ("minimum", bounds.ge),
                        ("exclusiveMinimum", bounds.gt),
                        ("maximum", bounds.le),
                        ("exclusiveMaximum", bounds.lt),
                    )
                    if value is not None
                }
            )

        return Field(
            # (pydantic copies a mutable default per instance)
            default=None if knob else list(default),
            min_length=bounds.min_items,
            description=doc or None,
            json_schema_extra=item_bounds,
        )
    return Field(
        default=None if knob else default,
        description=doc or None,
        ge=bounds.ge,
        gt=bounds.gt,
        le=bounds.le,
        lt=bounds.lt,
    )


class TaskIn(Strict):
    column: str = Field(min_length=1, max_length=255, description="Label column.")
    kind: engine.TaskKind | None = Field(
        default=None, description="Inferred from the column when left out."
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=255, description="Display name (default: column)."
    )
    dataset_id: str | None = Field(
        default=None,
        max_length=40,
        description="Candidates only: another data set with the same feature columns.",
    )

    @property
    def label(self) -> str:
        return self.name or self.column


def _task_shorthand(value: object) -> object:
    """A bare column name stands for ``{"column": name}``."""
    return {"column": value} if isinstance(value, str) else value


TaskOrColumn = Annotated[
    TaskIn,
    BeforeValidator(
        _task_shorthand,
        json_schema_input_type=TaskIn | Annotated[str, Field(min_length=1, max_length=255)],
    ),
]
"""A task, or just its label column's name (shorthand for ``{"column": name}``)."""


class BudgetIn(Strict):
    """The job's :class:`engine.Budget` options (the rest are the engine's defaults).
    The recipe knobs left out (null) take the job's recipe's values. Widths, layers,
    seeds and epochs are also capped by the server's settings."""

    seeds: int = budget_field("seeds")
    epochs: int | None = budget_field("epochs")
    hidden: list[int] | None = budget_field("hidden")
    lam: float | None = budget_field("lam")
    batch_size: int | None = budget_field("batch_size")
    lr: float | None = budget_field("lr")
    patience: int | None = budget_field("patience")
    main_train_fraction: float = budget_field("main_train_fraction")
    main_train_fractions: list[float] = budget_field("main_train_fractions")
    screen_epochs: int | None = budget_field("screen_epochs")
    confirm_top: int = budget_field("confirm_top")
    confirm_random: int = budget_field("confirm_random")
    subset_search: bool = budget_field("subset_search")
    subset_budget: int = budget_field("subset_budget")
    dropout: float | None = budget_field("dropout")
    weight_decay: float | None = budget_field("weight_decay")
    max_replicates: int = budget_field("max_replicates")
    race_step: int = budget_field("race_step")
    race_spending: engine.RaceSpending = budget_field("race_spending")
    race_futility: float = budget_field("race_futility")
    fdr: engine.FdrMethod = budget_field("fdr")
    sharing: engine.Sharing | None = budget_field("sharing")
    coupling: float | None = budget_field("coupling")

    @field_validator("main_train_fractions")
    @classmethod
    def _shares(cls, value: list[float]) -> list[float]:
        """2 to MAX_SHARES shares, 1 among them, each once; kept sorted
        (app/jobs/fractions.py says why)."""
        return check_shares(value)

    def explicit(self) -> dict[str, object]:
        """The options the job sets (engine.Budget's keyword arguments): a knob left out
        is the recipe's, and so is not here."""
        return self.model_dump(exclude_none=True)


SETTLING_KNOBS = frozenset(
    name
    for name in engine.RECIPE_KNOBS
    if any(
        engine.RECIPES[n][name] != engine.RECIPES[engine.DEFAULT_RECIPE][name]
        for n in engine.RECIPE_NAMES
    )
)
"""The knobs on which the recipes differ: a budget that sets them all trains the same
whatever its recipe (hidden, lr, epochs, patience today)."""


def implied_recipe(budget: BudgetIn) -> engine.RecipeName | None:
    """The recipe closest to a budget that sets every knob on which recipes differ (the
    most knobs the same; the default on a tie): how a spec stored before recipes names
    what it trained. None when such a knob is left out (the recipe then matters)."""
    knobs = budget.explicit()
    if not SETTLING_KNOBS.issubset(knobs):
        return None
    try:
        trained = engine.recipe_of(engine.recipe_budget(engine.DEFAULT_RECIPE, **knobs))
    except engine.SpecError:
        return None

    def shared(name: engine.RecipeName) -> int:
        return sum(engine.RECIPES[name][k] == v for k, v in trained.items())

    return max(engine.RECIPE_NAMES, key=lambda n: (shared(n), n == engine.DEFAULT_RECIPE))


RECIPE_DESCRIPTION = (
    "The training recipe every probe trains, and so the one the ranking answers for: "
    "full (default) is a standard full-training MLP; quick is a short narrow probe, "
    "cheaper, for a first look only. A budget knob set explicitly overrides the recipe's. "
    + "; ".join(
        engine.describe_recipe(name, engine.recipe_budget(name)) for name in engine.RECIPE_NAMES
    )
    + "."
)


class JobSpec(Strict):
    """A job: the main task, the candidates, and how to measure them."""

    # One schema for requests and answers (a stored spec holds full tasks, which the
    # request schema allows too): the OpenAPI document keeps one JobSpec.
    model_config = ConfigDict(json_schema_mode_override="validation")

    name: str | None = Field(default=None, max_length=255)
    dataset_id: str = Field(min_length=1, max_length=40)
    main_task: TaskOrColumn = Field(
        description='The main task, or just its column name ("y" is {"column": "y"}).'
    )
    candidates: list[TaskOrColumn] = Field(
        min_length=1,
        description="Candidate auxiliary tasks; each a task or just its column name.",
    )
    features: list[str] | None = Field(
        default=None,
        description="Input columns; default: the data set's feature-role columns that are not "
        "this job's tasks (a label-role column named here is refused).",
    )
    method: engine.Method = engine.DEFAULT_METHOD
    metric: engine.MetricName = Field(
        default=engine.DEFAULT_METRIC, description="Primary metric of the main task."
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    recipe: engine.RecipeName = Field(default=engine.DEFAULT_RECIPE, description=RECIPE_DESCRIPTION)
    budget: BudgetIn = Field(default_factory=BudgetIn)

    @model_validator(mode="after")
    def _stored_recipe(self) -> Self:
        """A spec without ``recipe`` that sets every knob on which recipes differ (one
        stored before recipes) names the recipe its knobs are closest to; its budget is
        the same whatever the recipe."""
        if "recipe" not in self.model_fields_set:
            implied = implied_recipe(self.budget)
            if implied is not None:
                self.recipe = implied
                # Stored before racing too: it trained ``seeds`` replicates, one round.
                if "max_replicates" not in self.budget.model_fields_set:
                    self.budget.max_replicates = self.budget.seeds
        return self

    @property
    def recipe_text(self) -> str:
        """The recipe the job's ranking answers for, every knob named (the knobs of
        app.jobs.translate.engine_budget, the budget the job trains)."""
        trained = engine.recipe_budget(self.recipe, **self.budget.explicit())
        return engine.describe_recipe(self.recipe, trained)

    @property
    def estimand(self) -> str:
        """What each candidate's gain estimates, in words."""
        return engine.ESTIMAND.format(metric=self.metric)

    def dataset_ids(self) -> set[str]:
        """Every data set the job reads: the main one and the candidates' own."""
        return {self.dataset_id} | {c.dataset_id for c in self.candidates if c.dataset_id}

    def source(self, task: TaskIn) -> str | None:
        """A candidate's own table (None: the main data set's)."""
        return task.dataset_id if task.dataset_id not in (None, self.dataset_id) else None


JOB_EXAMPLE: JsonDict = JobSpec(
    name="churn aux study",
    dataset_id="ds_0195f3c2a1b2c3d4e5f6",
    main_task=TaskIn(column="churned", kind="binary"),
    candidates=[TaskIn(column="upgraded"), TaskIn(column="tickets", kind="regression")],
).model_dump(mode="json", exclude_none=True)
"""The OpenAPI example: its method, metric, seed, recipe and budget are the defaults."""
JobSpec.model_config["json_schema_extra"] = {"examples": [JOB_EXAMPLE]}
JobSpec.model_rebuild(force=True)
