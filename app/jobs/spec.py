"""The typed job spec: what the API validates, the database stores (``model_dump`` into
``jobs.spec``) and the worker reads back (``JobSpec.model_validate``). Its defaults,
bounds and descriptions come from the engine (:class:`engine.Budget`'s fields,
``engine.DEFAULT_METHOD``, ``engine.DEFAULT_METRIC``); nothing here retypes them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

import engine

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
"""Budget options a job cannot set: the server's memory cap, and research knobs that
jobs run at the engine's defaults."""


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


def budget_field(name: str) -> Any:
    """A pydantic field with the engine's default, bounds and description of budget
    option ``name`` (``Any``: what ``pydantic.Field`` itself returns)."""
    bounds = engine.Budget.bounds(name)
    default = getattr(_DEFAULT, name)
    if isinstance(default, tuple):  # a list option: the bounds are each item's

        def item_bounds(schema: JsonDict) -> None:
            items = schema["items"]
            assert isinstance(items, dict)
            items.update(
                {
                    key: value
                    for key, value in (("minimum", bounds.ge), ("maximum", bounds.le))
                    if value is not None
                }
            )

        return Field(
            default=list(default),  # pydantic copies a mutable default per instance
            min_length=bounds.min_items,
            description=bounds.doc or None,
            json_schema_extra=item_bounds,
        )
    return Field(
        default=default,
        description=bounds.doc or None,
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


class BudgetIn(Strict):
    """The job's :class:`engine.Budget` options (the rest are the engine's defaults).
    Widths, layers, seeds and epochs are also capped by the server's settings."""

    seeds: int = budget_field("seeds")
    epochs: int = budget_field("epochs")
    hidden: list[int] = budget_field("hidden")
    lam: float = budget_field("lam")
    batch_size: int = budget_field("batch_size")
    lr: float = budget_field("lr")
    patience: int = budget_field("patience")
    main_train_fraction: float = budget_field("main_train_fraction")
    screen_epochs: int | None = budget_field("screen_epochs")
    confirm_top: int = budget_field("confirm_top")
    confirm_random: int = budget_field("confirm_random")
    subset_search: bool = budget_field("subset_search")
    subset_budget: int = budget_field("subset_budget")
    dropout: float = budget_field("dropout")
    weight_decay: float = budget_field("weight_decay")


class JobSpec(Strict):
    """A job: the main task, the candidates, and how to measure them."""

    name: str | None = Field(default=None, max_length=255)
    dataset_id: str = Field(min_length=1, max_length=40)
    main_task: TaskIn
    candidates: list[TaskIn] = Field(min_length=1)
    features: list[str] | None = Field(
        default=None, description="Feature columns; default: every column that is not a label."
    )
    method: engine.Method = engine.DEFAULT_METHOD
    metric: engine.MetricName = Field(
        default=engine.DEFAULT_METRIC, description="Primary metric of the main task."
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    budget: BudgetIn = Field(default_factory=BudgetIn)

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
).model_dump(mode="json")
"""The OpenAPI example: its method, metric, seed and budget are the defaults."""
JobSpec.model_config["json_schema_extra"] = {"examples": [JOB_EXAMPLE]}
JobSpec.model_rebuild(force=True)
