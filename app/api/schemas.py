"""Request and response bodies of the HTTP API (the contract clients rely on)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

import engine
from app.data.roles import Role

# The job spec, the metadata submitted beside it (tags, note) and the status vocabulary
# are defined once, in app/jobs/; the API re-exports them as part of its contract.
from app.jobs.meta import JobMetaIn as JobMetaIn
from app.jobs.meta import JobSubmission as JobSubmission
from app.jobs.spec import JOB_EXAMPLE as JOB_EXAMPLE
from app.jobs.spec import BudgetIn as BudgetIn
from app.jobs.spec import JobSpec as JobSpec
from app.jobs.spec import TaskIn as TaskIn
from app.jobs.status import JobStatus as JobStatus

# The job's response shapes are built in app/services and app/jobs, so they are
# defined there (app/jobs/views.py), once.
from app.jobs.views import BaselineOut as BaselineOut
from app.jobs.views import CandidateComparison as CandidateComparison
from app.jobs.views import CandidateOut as CandidateOut
from app.jobs.views import CandidateSide as CandidateSide
from app.jobs.views import ComparedJob as ComparedJob
from app.jobs.views import EvidenceOut as EvidenceOut
from app.jobs.views import JobComparison as JobComparison
from app.jobs.views import JobError as JobError
from app.jobs.views import JobEstimate as JobEstimate
from app.jobs.views import JobOut as JobOut
from app.jobs.views import MainTaskOut as MainTaskOut
from app.jobs.views import MetricGainOut as MetricGainOut
from app.jobs.views import ProbeRunList as ProbeRunList
from app.jobs.views import ProbeRunOut as ProbeRunOut
from app.jobs.views import Progress as Progress
from app.jobs.views import RankingOut as RankingOut
from app.jobs.views import TopCandidate as TopCandidate


class MixedTypes(BaseModel):
    numbers: int
    text: int
    example: str


class ColumnProfile(BaseModel):
    name: str
    dtype: str
    missing: int
    unique: int
    infinite: int
    huge: int = Field(default=0, description="Finite values beyond ±1e30.")
    mixed: MixedTypes | None = Field(
        default=None,
        description="Text columns whose distinct values mix numbers and text: counts of "
        "each and an example of the rarer type.",
    )
    kind: engine.TaskKind | None = Field(
        description="Task kind if the column were a label; null if unusable."
    )
    examples: list[JsonValue]


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


class ColumnRoleOut(BaseModel):
    """A column's role and why it has it (docs/api.md, "Column roles")."""

    role: Role = Field(
        description="feature: a model input; label: a task, never an input by default; "
        "id: identifies a row; ignore: not used."
    )
    reason: str = Field(description="Why the column has this role, in words.")
    set_by: Literal["inferred", "user"] = Field(
        description="inferred at upload (or on read, for data sets from before roles), "
        "or set by the owner (PATCH /api/v1/datasets/{id}/columns)."
    )


class DatasetOut(DatasetSummary):
    profile: list[ColumnProfile]
    roles: dict[str, ColumnRoleOut] = Field(
        description="Each column's role by name, in the table's order. A job's inputs "
        "are its feature-role columns unless it names `features`."
    )


class RolesIn(BaseModel):
    """New roles for some columns of a data set; the others keep theirs."""

    model_config = ConfigDict(extra="forbid", strict=True)

    roles: dict[str, Role] = Field(
        min_length=1,
        description="Column name to role: feature, label, id or ignore.",
        examples=[{"tox_sr_are": "label", "batch": "ignore"}],
    )


class DatasetList(BaseModel):
    items: list[DatasetSummary] = Field(
        description="Summaries: GET /api/v1/datasets/{id} has a data set's column profile."
    )
    next_page_token: str | None


class JobList(BaseModel):
    items: list[JobOut]
    next_page_token: str | None


class Health(BaseModel):
    status: str
    database: str | None = None
