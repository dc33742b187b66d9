"""SQL for jobs, probe runs and rankings, including the worker's claim, lease and
fenced writes. Every worker write names the job's attempt number: a worker whose lease
was taken over matches no row and learns it has lost the job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Dialect, Engine, and_, bindparam, func, insert, inspect, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased

from app.api.pagination import Cursor, newest_first
from app.db.models import CandidateScore, IdempotencyKey, Job, ProbeRunRecord, utcnow
from app.jobs.status import JobStatus


@dataclass(frozen=True)
class Claim:
    """A job a worker now holds: its id and the fencing attempt number."""

    job_id: str
    attempt: int


def get(session: Session, owner: str, job_id: str) -> Job | None:
    return session.scalar(select(Job).where(Job.id == job_id, Job.owner == owner))


# What the status poll reads of a job: every column but the (large) result. A column
# added to Job later is read (and can be shown by job_view) without touching this.
STATUS_FIELDS = tuple(attr.key for attr in inspect(Job).column_attrs if attr.key != "result")
_STATUS_QUERY = select(*(getattr(Job, name) for name in STATUS_FIELDS)).where(
    Job.id == bindparam("job_id"), Job.owner == bindparam("owner")
)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None
    processors: tuple[Callable[[Any], Any] | None, ...]


_COMPILED: dict[str, _Compiled] = {}


def _compiled(dialect: Dialect) -> _Compiled:
    compiled = _COMPILED.get(dialect.name)
    if compiled is None:
        statement = _STATUS_QUERY.compile(dialect=dialect)
        positional = tuple(statement.positiontup or ()) if statement.positional else None
        processors = tuple(
            getattr(Job, name).type.dialect_impl(dialect).result_processor(dialect, None)
            for name in STATUS_FIELDS
        )
        compiled = _COMPILED[dialect.name] = _Compiled(statement.string, positional, processors)
    return compiled


def status_row(engine: Engine, owner: str, job_id: str) -> SimpleNamespace | None:
    """The status poll's one read: a primary-key lookup of the job's status columns.

    It is the hot path of every client's loop, so it skips SQLAlchemy's per-statement
    machinery (building the statement, its cache key, events, the result proxy): the
    query is compiled once per dialect (bound parameters, the same SQL the ORM would
    send) and run on a pooled DBAPI connection outside any transaction, its columns
    converted by their own SQLAlchemy types."""
    compiled = _compiled(engine.dialect)
    values = {"job_id": job_id, "owner": owner}
    params: Any = (
        [values[name] for name in compiled.positional]
        if compiled.positional is not None
        else values
    )
    dialect = engine.dialect
    connection = engine.raw_connection()  # a failure to connect is SQLAlchemy's error
    # One statement needs no transaction: in autocommit PostgreSQL reads it in one
    # round trip (no BEGIN, no ROLLBACK); SQLite's connections already run that way.
    autocommit = dialect.name == "postgresql"
    try:
        if autocommit:
            connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
        cursor = connection.cursor()
        try:
            cursor.execute(compiled.sql, params)
            row = cursor.fetchone()
        finally:
            cursor.close()
            if autocommit:
                connection.dbapi_connection.autocommit = False  # type: ignore[union-attr]
    except dialect.loaded_dbapi.Error as exc:
        # What SQLAlchemy would raise (the API answers a lost database with 503), and
        # a connection that died is dropped from the pool.
        lost = dialect.is_disconnect(exc, connection.dbapi_connection, None)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            compiled.sql,
            params,
            exc,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        ) from exc
    finally:
        connection.close()  # back to the pool, which rolls back (ends any read)
    if row is None:
        return None
    converted = zip(STATUS_FIELDS, compiled.processors, row, strict=True)
    return SimpleNamespace(**{k: v if proc is None else proc(v) for k, proc, v in converted})


def get_any(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def page(
    session: Session, owner: str, status: str | None, cursor: Cursor | None, size: int
) -> list[Job]:
    query = select(Job).where(Job.owner == owner)
    if status is not None:
        query = query.where(Job.status == status)
    return list(session.scalars(newest_first(query, Job, cursor, size)))


def find_idempotent(session: Session, owner: str, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
    )


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status: int(n) for status, n in rows}


# --- worker side -------------------------------------------------------------------


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


def count_owned(session: Session, owner: str, status: str) -> int:
    """How many of ``owner``'s jobs are in ``status``."""
    query = select(func.count()).where(Job.owner == owner, Job.status == status)
    return int(session.scalar(query) or 0)


def lock_owner(session: Session, owner: str) -> None:
    """On PostgreSQL, serialise one owner's submissions until the transaction ends, so
    two concurrent submissions cannot both pass the queued-job quota (SQLite's write
    transaction already does)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"owner:{owner}"))))


def renew(
    session: Session, claim: Claim, lease_s: float, progress: int | None = None
) -> bool | None:
    """Extend the lease (and store progress). Returns cancel_requested, or None when the
    job is no longer this worker's (lease lost or job finished)."""
    now = utcnow()
    values: dict[str, Any] = {
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
    session: Session, claim: Claim, runs: Sequence[dict[str, Any]], lease_s: float
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


def stored_runs(session: Session, job_id: str) -> list[ProbeRunRecord]:
    return list(
        session.scalars(
            select(ProbeRunRecord)
            .where(ProbeRunRecord.job_id == job_id)
            .order_by(ProbeRunRecord.id)
        )
    )


def finish(
    session: Session,
    claim: Claim,
    *,
    status: str,
    result: dict[str, Any] | None = None,
    scores: Sequence[dict[str, Any]] = (),
    error_reason: str | None = None,
    error_detail: str | None = None,
) -> bool:
    """End a job this worker holds (succeeded / failed / canceled), fenced."""
    now = utcnow()
    updated = session.execute(
        update(Job)
        .where(
            Job.id == claim.job_id, Job.attempt == claim.attempt, Job.status == JobStatus.RUNNING
        )
        .values(
            status=status,
            result=result,
            error_reason=error_reason,
            error_detail=error_detail,
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


def scores(session: Session, job_id: str) -> list[CandidateScore]:
    return list(
        session.scalars(
            select(CandidateScore)
            .where(CandidateScore.job_id == job_id)
            .order_by(CandidateScore.rank)
        )
    )


def queue_depth(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(Job.status == JobStatus.QUEUED)) or 0)


def _rowcount(result: Any) -> int:
    """Rows an UPDATE matched (CursorResult.rowcount, which SQLAlchemy types loosely)."""
    return int(result.rowcount)
