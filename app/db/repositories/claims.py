"""The worker's side of the jobs table: the claim protocol (fair across owners, one
claim at a time), the lease and its heartbeat, and the fenced writes. Every worker
write names the job's attempt number: a worker whose lease was taken over matches no
row and learns it has lost the job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypedDict, Unpack

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from app.db.models import CandidateScore, Job, ProbeRunRecord, utcnow
from app.jobs.status import JobStatus


@dataclass(frozen=True)
class Claim:
    """A job a worker now holds: its id and the fencing attempt number."""

    job_id: str
    attempt: int


CLAIM_LOCK = 0x61757873656C  # "auxsel": the advisory lock that orders claims on PostgreSQL
# A claim transaction left idle this long (its worker paused or hung mid-claim) is ended
# by the server, releasing CLAIM_LOCK: one stalled worker cannot stop every other claim.
CLAIM_IDLE_TIMEOUT_MS = 10_000


def claim(
    session: Session, worker_id: str, lease_s: float, max_running_per_owner: int = 0
) -> Claim | None:
    """Atomically take the next queued job, fairly across owners (round-robin): a job
    of the owner with the fewest running jobs; among those, of the owner whose last job
    started longest ago (or never); then the oldest job. Jobs without an owner (keys
    off) share one owner. An owner already running ``max_running_per_owner`` jobs
    (0 = no limit) is skipped until one of them ends.

    PostgreSQL: claims take a transaction-scoped advisory lock, so each one counts the
    running jobs every earlier claim committed (else two concurrent claims could both
    see an owner below its limit), and the job row is taken FOR UPDATE SKIP LOCKED. A
    claim transaction idle for CLAIM_IDLE_TIMEOUT_MS is ended by the server (its worker
    then sees a transient error and claims again later), so a worker paused while
    holding the lock does not hold up the others.
    SQLite: the caller holds the write lock (BEGIN IMMEDIATE)."""
    now = utcnow()
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(
            select(
                func.set_config(
                    "idle_in_transaction_session_timeout", str(CLAIM_IDLE_TIMEOUT_MS), True
                )
            )
        )
        session.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
    mine = aliased(Job)  # the owner's jobs (ix_jobs_owner_status, ix_jobs_owner_started_at)
    running = (
        select(func.count())
        .where(mine.owner == Job.owner, mine.status == JobStatus.RUNNING)
        .scalar_subquery()
    )
    last_start = select(func.max(mine.started_at)).where(mine.owner == Job.owner).scalar_subquery()
    candidate = (
        select(Job.id)
        .where(Job.status == JobStatus.QUEUED)
        .order_by(running, last_start.asc().nulls_first(), Job.created_at, Job.id)
        .limit(1)
        .correlate(None)  # its own scan of jobs, not the UPDATE's row
    )
    if max_running_per_owner > 0:
        candidate = candidate.where(running < max_running_per_owner)
    if postgres:
        candidate = candidate.with_for_update(skip_locked=True, of=Job)
    row = session.execute(
        update(Job)
        .where(Job.id == candidate.scalar_subquery(), Job.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.RUNNING,
            attempt=Job.attempt + 1,
            worker_id=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_s),
            heartbeat_at=now,
            started_at=func.coalesce(Job.started_at, now),
        )
        .returning(Job.id, Job.attempt)
        .execution_options(synchronize_session=False)
    ).first()
    return Claim(row[0], row[1]) if row else None


def renew(
    session: Session, claim: Claim, lease_s: float, progress: int | None = None
) -> bool | None:
    """Extend the lease (and store progress). Returns cancel_requested, or None when the
    job is no longer this worker's (lease lost or job finished)."""
    now = utcnow()
    values: dict[str, object] = {
        "lease_expires_at": now + timedelta(seconds=lease_s),
        "heartbeat_at": now,
    }
    if progress is not None:
        values["progress_done"] = progress
    row = session.execute(
        update(Job)
        .where(
            Job.id == claim.job_id, Job.attempt == claim.attempt, Job.status == JobStatus.RUNNING
        )
        .values(**values)
        .returning(Job.cancel_requested)
        .execution_options(synchronize_session=False)
    ).first()
    return None if row is None else bool(row[0])


def set_total(session: Session, claim: Claim, total: int, done: int) -> bool:
    result = session.execute(
        update(Job)
        .where(
            Job.id == claim.job_id, Job.attempt == claim.attempt, Job.status == JobStatus.RUNNING
        )
        .values(progress_total=total, progress_done=done)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def store_runs(
    session: Session, claim: Claim, runs: Sequence[Mapping[str, object]], lease_s: float
) -> bool:
    """Insert finished probe runs, fenced: nothing is written unless the claim still
    holds (which also renews the lease). A run stored before (same job and key) is left
    as it is, so storing twice is harmless."""
    if renew(session, claim, lease_s) is None:
        return False
    # Locking the job row (the renew above) orders this insert after any takeover.
    rows = [{**run, "job_id": claim.job_id, "attempt": claim.attempt} for run in runs]
    if not rows:
        return True
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            pg_insert(ProbeRunRecord)
            .values(rows)
            .on_conflict_do_nothing(constraint="uq_probe_runs_job_key")
        )
    else:
        session.execute(sqlite_insert(ProbeRunRecord).values(rows).on_conflict_do_nothing())
    return True


def set_provisional(session: Session, claim: Claim, result: Mapping[str, object]) -> bool:
    """Store the provisional ranking of a running job in its ``result`` (fenced; a
    final ranking replaces it when the job succeeds, see app/jobs/results.py)."""
    updated = session.execute(
        update(Job)
        .where(
            Job.id == claim.job_id, Job.attempt == claim.attempt, Job.status == JobStatus.RUNNING
        )
        .values(result=dict(result))
        .execution_options(synchronize_session=False)
    )
    return _rowcount(updated) == 1


class Ending(TypedDict, total=False):
    """How a job ends besides its status: a result and its scores, or an error."""

    result: Mapping[str, object] | None
    scores: Sequence[Mapping[str, object]]
    error_reason: str | None
    error_detail: str | None


def finish(session: Session, claim: Claim, *, status: str, **ending: Unpack[Ending]) -> bool:
    """End a job this worker holds (succeeded / failed / canceled), fenced. Without a
    ``result`` the job keeps the one it has: the provisional ranking of the runs it
    stored, which a canceled or failed job still shows."""
    now = utcnow()
    scores = ending.get("scores", ())
    kept = {"result": ending["result"]} if "result" in ending else {}
    updated = session.execute(
        update(Job)
        .where(
            Job.id == claim.job_id, Job.attempt == claim.attempt, Job.status == JobStatus.RUNNING
        )
        .values(
            status=status,
            **kept,
            error_reason=ending.get("error_reason"),
            error_detail=ending.get("error_detail"),
            finished_at=now,
            lease_expires_at=None,
            worker_id=None,
            progress_done=Job.progress_total
            if status == JobStatus.SUCCEEDED
            else Job.progress_done,
        )
        .execution_options(synchronize_session=False)
    )
    if _rowcount(updated) != 1:
        return False
    if scores:
        session.execute(insert(CandidateScore), [{**s, "job_id": claim.job_id} for s in scores])
    return True


def ended_as(session: Session, claim: Claim, status: str) -> bool:
    """Whether the job already ended with ``status`` at this claim's attempt (a finish
    whose COMMIT landed although its connection died before the acknowledgement)."""
    row = session.execute(select(Job.status, Job.attempt).where(Job.id == claim.job_id)).first()
    return row is not None and row[0] == status and row[1] == claim.attempt


def release(session: Session, claim: Claim) -> bool:
    """Give a running job back to the queue (graceful shutdown); its stored probe runs
    stay, so the next worker resumes."""
    result = session.execute(
        update(Job)
        .where(
            Job.id == claim.job_id, Job.attempt == claim.attempt, Job.status == JobStatus.RUNNING
        )
        .values(status=JobStatus.QUEUED, worker_id=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result) == 1


def reap(session: Session, max_attempts: int, now: datetime | None = None) -> dict[str, int]:
    """Jobs whose lease expired: back to the queue, or failed as worker_lost after
    ``max_attempts`` lost leases, or canceled if a cancel was pending."""
    now = now or utcnow()
    expired = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    canceled = _rowcount(
        session.execute(
            update(Job)
            .where(expired, Job.cancel_requested.is_(True))
            .values(
                status=JobStatus.CANCELED, finished_at=now, worker_id=None, lease_expires_at=None
            )
            .execution_options(synchronize_session=False)
        )
    )
    failed = _rowcount(
        session.execute(
            update(Job)
            .where(expired, Job.lost_count + 1 >= max_attempts)
            .values(
                status=JobStatus.FAILED,
                lost_count=Job.lost_count + 1,
                error_reason="worker_lost",
                error_detail=(
                    f"The worker running this job stopped answering {max_attempts} times "
                    "(its lease expired each time); the job was given up."
                ),
                finished_at=now,
                worker_id=None,
                lease_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
    )
    requeued = _rowcount(
        session.execute(
            update(Job)
            .where(expired)
            .values(
                status=JobStatus.QUEUED,
                lost_count=Job.lost_count + 1,
                worker_id=None,
                lease_expires_at=None,
            )
            .execution_options(synchronize_session=False)
        )
    )
    return {"canceled": canceled, "failed": failed, "requeued": requeued}


def _rowcount(result: object) -> int:
    """Rows an UPDATE matched (CursorResult.rowcount, which SQLAlchemy types loosely)."""
    return int(getattr(result, "rowcount", 0))
