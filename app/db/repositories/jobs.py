"""SQL for jobs as the API reads and submits them: the status poll's one read, pages,
idempotency keys, quotas, counts, stored probe runs and rankings. The worker's side
(claims, leases, fenced writes) is app/db/repositories/claims.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

from sqlalchemy import Dialect, Engine, String, bindparam, cast, func, inspect, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.api.pagination import Cursor, newest_first
from app.db.models import CandidateScore, Dataset, IdempotencyKey, Job, ProbeRunRecord
from app.jobs.status import JobStatus


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
    processors: tuple[Callable[[object], object] | None, ...]


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
    params: list[str] | dict[str, str] = (
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


def _like(text: str) -> str:
    """``text`` as a LIKE pattern's literal part (escaped with ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def page(
    session: Session,
    owner: str,
    status: str | None,
    cursor: Cursor | None,
    size: int,
    *,
    tag: str | None = None,
    q: str | None = None,
) -> list[Job]:
    """A page of ``owner``'s jobs, newest first: in ``status``, carrying ``tag``
    (exactly), and whose name, a tag, the main task (its name or column) or the name of
    its data set contains ``q`` (ignoring case)."""
    query = select(Job).where(Job.owner == owner)
    if status is not None:
        query = query.where(Job.status == status)
    # Tags are a JSON list stored as json.dumps writes it on both databases (PostgreSQL's
    # json type keeps the text as sent): a tag is in it exactly when its JSON string,
    # quotes included, is in that text.
    tags_text = cast(Job.tags, String)
    if tag is not None:
        query = query.where(tags_text.like(f"%{_like(json.dumps(tag))}%", escape="\\"))
    if q is not None:
        pattern = f"%{_like(q)}%"
        query = query.where(
            or_(
                Job.name.ilike(pattern, escape="\\"),
                tags_text.ilike(f"%{_like(json.dumps(q)[1:-1])}%", escape="\\"),
                Job.spec[("main_task", "column")].as_string().ilike(pattern, escape="\\"),
                Job.spec[("main_task", "name")].as_string().ilike(pattern, escape="\\"),
                Job.dataset_id.in_(
                    select(Dataset.id).where(
                        Dataset.owner == owner, Dataset.name.ilike(pattern, escape="\\")
                    )
                ),
            )
        )
    return list(session.scalars(newest_first(query, Job, cursor, size)))


def top_candidates(session: Session, job_ids: list[str]) -> dict[str, CandidateScore]:
    """The rank-1 row of each of these jobs' stored rankings (succeeded jobs have one):
    one indexed query over candidate_scores for the page, not every job's ranking."""
    if not job_ids:
        return {}
    rows = session.scalars(
        select(CandidateScore).where(CandidateScore.job_id.in_(job_ids), CandidateScore.rank == 1)
    )
    return {row.job_id: row for row in rows}


def find_idempotent(session: Session, owner: str, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
    )


def count_by_status(session: Session) -> dict[str, int]:
    """How many jobs are in each status (statuses without jobs are left out)."""
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {str(status): int(n) for status, n in rows}


def running_heartbeats(session: Session) -> list[tuple[str | None, datetime | None]]:
    """Worker id and last heartbeat of every running job."""
    rows = session.execute(
        select(Job.worker_id, Job.heartbeat_at).where(Job.status == JobStatus.RUNNING)
    )
    return [(worker, beat) for worker, beat in rows]


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


def stored_runs(session: Session, job_id: str) -> list[ProbeRunRecord]:
    return list(
        session.scalars(
            select(ProbeRunRecord)
            .where(ProbeRunRecord.job_id == job_id)
            .order_by(ProbeRunRecord.id)
        )
    )


def scores(session: Session, job_id: str) -> list[CandidateScore]:
    return list(
        session.scalars(
            select(CandidateScore)
            .where(CandidateScore.job_id == job_id)
            .order_by(CandidateScore.rank)
        )
    )
