"""SQL for data sets."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.api.pagination import Cursor, newest_first
from app.db.models import Dataset, Job, utcnow
from app.jobs.status import ACTIVE


def get(session: Session, owner: str, dataset_id: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.id == dataset_id, Dataset.owner == owner))


def by_content(session: Session, owner: str, sha256: str) -> Dataset | None:
    """The owner's (oldest) data set with exactly these bytes, if any."""
    query = (
        select(Dataset)
        .where(Dataset.owner == owner, Dataset.sha256 == sha256)
        .order_by(Dataset.created_at, Dataset.id)
        .limit(1)
    )
    return session.scalar(query)


def lock_content(session: Session, owner: str, sha256: str) -> None:
    """Hold uploads of the same bytes by the same owner one at a time until this
    transaction ends, so two at once cannot both find no copy and both store one.
    PostgreSQL (READ COMMITTED) needs a transaction-scoped advisory lock for it; SQLite's
    write transaction already holds every other writer. A unique index on (owner,
    sha256) would do it too, but could not be built over the duplicates stored before."""
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(f"{owner}\0{sha256}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def get_many(session: Session, owner: str, ids: Sequence[str]) -> dict[str, Dataset]:
    rows = session.scalars(select(Dataset).where(Dataset.id.in_(ids), Dataset.owner == owner))
    return {d.id: d for d in rows}


def page(session: Session, owner: str, cursor: Cursor | None, size: int) -> list[Dataset]:
    query = select(Dataset).where(Dataset.owner == owner)
    return list(session.scalars(newest_first(query, Dataset, cursor, size)))


SUMMARY = (
    Dataset.id,
    Dataset.name,
    Dataset.filename,
    Dataset.format,
    Dataset.rows,
    Dataset.size_bytes,
    Dataset.sha256,
    Dataset.created_at,
)


@dataclass(frozen=True)
class DatasetSummary:
    """A data set in a list: its SUMMARY columns and how many columns it has."""

    id: str
    name: str
    filename: str
    format: str
    rows: int
    size_bytes: int
    sha256: str
    created_at: datetime
    columns: int


def page_summaries(
    session: Session, owner: str, cursor: Cursor | None, size: int
) -> list[DatasetSummary]:
    """A page of data sets without their column profiles (which can be megabytes each):
    the number of columns is counted in SQL, the profile is never loaded."""
    columns = func.json_array_length(Dataset.profile).label("columns")
    query = select(*SUMMARY, columns).where(Dataset.owner == owner)
    return [
        DatasetSummary(*row) for row in session.execute(newest_first(query, Dataset, cursor, size))
    ]


def active_jobs(session: Session, dataset_id: str) -> int:
    """Queued or running jobs that read this data set (as main or candidate table)."""
    jobs = session.scalars(select(Job).where(Job.status.in_(sorted(ACTIVE))))
    return sum(1 for job in jobs if dataset_id in job_dataset_ids(job.spec))


KEPT_DATASET = "dataset"
"""The key of a job's result JSON that keeps its data set's name and sha256 once the
data set is deleted (jobs.dataset_id is then NULL)."""


def keep_identity(session: Session, dataset: Dataset) -> int:
    """Before ``dataset`` is deleted: copy its id, name and sha256 into the result JSON of
    every job that ran on it, so that their pages still say what they were trained on.
    Only finished jobs can be here (a data set in use is not deleted). Returns how many."""
    kept = {
        "id": dataset.id,
        "name": dataset.name,
        "sha256": dataset.sha256,
        "deleted_at": utcnow().isoformat(),
    }
    jobs = list(session.scalars(select(Job).where(Job.dataset_id == dataset.id)))
    for job in jobs:
        job.result = {**(job.result or {}), KEPT_DATASET: kept}
    return len(jobs)


def job_dataset_ids(spec: dict[str, object]) -> set[str]:
    ids = {str(spec.get("dataset_id"))}
    candidates = spec.get("candidates")
    if isinstance(candidates, list):
        ids |= {str(c["dataset_id"]) for c in candidates if c.get("dataset_id")}
    return ids


def storage_users(session: Session, storage_key: str) -> int:
    return int(session.scalar(select(func.count()).where(Dataset.storage_key == storage_key)) or 0)


def all_storage_keys(session: Session) -> set[str]:
    return set(session.scalars(select(Dataset.storage_key)))
