"""Request and response bodies of the HTTP API (the contract clients rely on)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

import engine

_BUDGET = engine.Budget()

TaskKindField = Literal["binary", "multiclass", "regression"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "canceled"]
Method = Literal["probe", "screen", "screen+probe"]
MetricField = Literal["loss", "accuracy", "auroc", "rmse", "r2"]


class Strict(BaseModel):
    # Unknown fields are errors (a typo must not be silently ignored), and JSON types
    # are not coerced ("3" is not an int, true is not an int).
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """No NUL in any name, column or id (PostgreSQL cannot store one in text)."""
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, str) and "\x00" in item:
                where = f" (item {i})" if isinstance(value, list) else ""
                raise ValueError(f"Holds a NUL character{where}; remove control characters.")
        return value


class TaskIn(Strict):
    column: str = Field(min_length=1, max_length=255, description="Label column.")
    kind: TaskKindField | None = Field(
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


class BudgetIn(Strict):
    seeds: int = Field(default=_BUDGET.seeds, ge=1, description="Replicates (own split each).")
    epochs: int = Field(default=_BUDGET.epochs, ge=1)
    hidden: list[int] = Field(default_factory=lambda: list(_BUDGET.hidden), min_length=1)
    lam: float = Field(default=_BUDGET.lam, ge=0, le=1000, description="Auxiliary loss weight.")
    batch_size: int = Field(default=_BUDGET.batch_size, ge=1, le=65536)
    lr: float = Field(default=_BUDGET.lr, gt=0, le=10)
    patience: int = Field(default=_BUDGET.patience, ge=0, description="0 = no early stop.")
    main_train_fraction: float = Field(default=_BUDGET.main_train_fraction, gt=0, le=1)
    screen_epochs: int | None = Field(
        default=_BUDGET.screen_epochs,
        ge=1,
        description="Screening run epochs (default min(epochs, 10)).",
    )
    confirm_top: int = Field(
        default=_BUDGET.confirm_top,
        ge=1,
        description="screen+probe: best-screened candidates probed.",
    )
    confirm_random: int = Field(
        default=_BUDGET.confirm_random, ge=0, description="screen+probe: random others probed."
    )
    subset_search: bool = Field(default=_BUDGET.subset_search, description="Greedy subset search.")
    subset_budget: int = Field(
        default=_BUDGET.subset_budget, ge=1, le=100, description="Subsets the search may train."
    )


JOB_EXAMPLE: dict[str, Any] = {
    "name": "churn aux study",
    "dataset_id": "ds_0195f3c2a1b2c3d4e5f6",
    "main_task": {"column": "churned", "kind": "binary"},
    "candidates": [
        {"column": "upgraded"},
        {"column": "tickets", "kind": "regression"},
    ],
    "features": None,
    "method": "probe",
    "seed": 0,
    "budget": {"seeds": 5, "epochs": 30, "hidden": [32], "lam": 1.0, "batch_size": 128},
}


class JobCreate(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [JOB_EXAMPLE]})

    name: str | None = Field(default=None, max_length=255)
    dataset_id: str = Field(min_length=1, max_length=40)
    main_task: TaskIn
    candidates: list[TaskIn] = Field(min_length=1)
    features: list[str] | None = Field(
        default=None, description="Feature columns; default: every column that is not a label."
    )
    method: Method = "probe"
    metric: MetricField = Field(default="loss", description="Primary metric of the main task.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    budget: BudgetIn = Field(default_factory=BudgetIn)


class ColumnProfile(BaseModel):
    name: str
    dtype: str
    missing: int
    unique: int
    infinite: int
    huge: int = Field(default=0, description="Finite values beyond ±1e30.")
    mixed: dict[str, Any] | None = Field(
        default=None,
        description="Text columns whose distinct values mix numbers and text: counts of "
        "each and an example of the rarer type.",
    )
    kind: str | None = Field(description="Task kind if the column were a label; null if unusable.")
    examples: list[Any]


class DatasetSummary(BaseModel):
    id: str
    name: str
    filename: str
    format: str
    rows: int
    columns: int
    size_bytes: int
    sha256: str
    created_at: datetime


class DatasetOut(DatasetSummary):
    profile: list[ColumnProfile]


class DatasetList(BaseModel):
    items: list[DatasetSummary] = Field(
        description="Summaries: GET /api/v1/datasets/{id} has a data set's column profile."
    )
    next_page_token: str | None


class Progress(BaseModel):
    done: int
    total: int
    fraction: float


class JobError(BaseModel):
    reason: str
    detail: str | None


class JobEstimate(BaseModel):
    """The job's estimated cost at submission (engine.estimate_cost; order of magnitude)."""

    flops: float = Field(description="Floating-point operations of every planned probe-epoch.")
    memory_mb: float = Field(description="Peak memory: training data plus the largest chunk.")
    probe_epochs: int
    probe_memory_mb: float = Field(description="One probe's training memory.")
    data_memory_mb: float


class JobOut(BaseModel):
    id: str
    name: str
    dataset_id: str | None
    status: JobStatus
    progress: Progress
    attempts: int
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    error: JobError | None
    spec: dict[str, Any]
    estimate: JobEstimate | None = Field(
        default=None, description="Estimated cost (null for jobs submitted before estimates)."
    )
    links: dict[str, str]


class JobList(BaseModel):
    items: list[JobOut]
    next_page_token: str | None


class MetricGainOut(BaseModel):
    metric: str
    gain: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    verdict: str


class CandidateOut(BaseModel):
    """A candidate's measured gain. ``verdict`` is helpful / harmful / inconclusive, or
    not_probed when only its proxy scores were computed (methods with screening)."""

    rank: int
    name: str
    column: str
    kind: str
    dataset_id: str | None
    gain: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    rel_gain: float | None
    p_value: float | None
    q_value: float | None
    verdict: str
    seeds: int
    secondary: MetricGainOut | None
    disagreement: bool
    proxies: dict[str, float | None]
    metrics: dict[str, float | None]
    per_seed: list[float | None]
    errors: list[str]


class BaselineOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    seeds: int


class RankingOut(BaseModel):
    job_id: str
    method: str
    metric: str
    interval: str
    main_task: dict[str, Any]
    baseline: BaselineOut
    candidates: list[CandidateOut]
    subset: dict[str, Any] | None
    agreement: dict[str, Any] | None
    dropped_features: dict[str, str]


class ProbeRunOut(BaseModel):
    key: str
    replicate: int
    candidates: list[str]
    metrics: dict[str, float | None]
    curve: list[float | None]
    best_epoch: int
    epochs: int
    error: str | None


class ProbeRunList(BaseModel):
    job_id: str
    metric: str
    items: list[ProbeRunOut]


class Health(BaseModel):
    status: str
    database: str | None = None
