"""Job submission (every check in app/services/checks.py first, so a bad job never
reaches a worker), the queued-job quota, idempotent replays, cancellation, and the
job view (rankings and probe runs: app/jobs/results.py)."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
from typing import TypeVar, cast

from fastapi import Request
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.data.storage import Storage
from app.db.models import IdempotencyKey, Job, utcnow
from app.db.repositories import datasets as dataset_repo
from app.db.repositories import jobs as repo
from app.db.session import session_scope
from app.errors import ProblemError, found
from app.jobs import results
from app.jobs.compare import compare_view
from app.jobs.meta import META_FIELDS, JobMetaIn, JobSubmission
from app.jobs.spec import JobSpec
from app.jobs.status import FINISHED, JobStatus
from app.jobs.views import (
    JobComparison,
    JobError,
    JobEstimate,
    JobOut,
    Progress,
    TopCandidate,
)
from app.services.checks import Checked, check
from app.services.datasets import new_id
from app.settings import Settings

M = TypeVar("M", bound=BaseModel)

QUOTA_RETRY_AFTER_S = 30
"""Retry-After of a queued-job quota refusal: about how soon a queued job may start."""


def check_queue_quota(session: Session, settings: Settings, owner: str) -> None:
    """429 when the owner already has AUXSEL_MAX_QUEUED_JOBS_PER_OWNER jobs queued."""
    limit = settings.max_queued_jobs_per_owner
    if limit <= 0:
        return
    repo.lock_owner(session, owner)
    queued = repo.count_owned(session, owner, JobStatus.QUEUED)
    if queued < limit:
        return
    running = repo.count_owned(session, owner, JobStatus.RUNNING)
    raise ProblemError(
        429,
        "Queued-job quota reached",
        f"You have {queued} jobs queued, the most one owner may have waiting at once "
        f"({limit}, setting AUXSEL_MAX_QUEUED_JOBS_PER_OWNER); {running} of your jobs are "
        "running. Submit again once some have started (Retry-After), or cancel queued "
        "jobs you no longer need; the server's operator can raise the setting.",
        type_="queued-job-quota",
        headers={"Retry-After": str(QUOTA_RETRY_AFTER_S)},
        extensions={
            "quota": {
                "setting": "AUXSEL_MAX_QUEUED_JOBS_PER_OWNER",
                "limit": limit,
                "queued": queued,
                "running": running,
            }
        },
    )


def request_hash(spec: JobSpec) -> str:
    return hashlib.sha256(
        json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()


def precheck(
    sessions: sessionmaker[Session],
    storage: Storage,
    settings: Settings,
    owner: str,
    spec: JobSpec,
    idempotency_key: str | None = None,
) -> Checked | None:
    """``check`` in a read-only transaction of its own, before the write transaction of
    ``create``: preparing the data takes a while, and nothing may hold SQLite's write
    lock meanwhile. None for a replayed Idempotency-Key (``create`` answers it)."""
    with session_scope(sessions) as session:
        if idempotency_key is not None and repo.find_idempotent(session, owner, idempotency_key):
            return None
        return check(session, storage, settings, owner, spec)


def create(
    session: Session,
    storage: Storage,
    settings: Settings,
    owner: str,
    spec: JobSpec,
    idempotency_key: str | None = None,
    checked: Checked | None = None,
) -> tuple[Job, bool]:
    """Create a queued job from a spec ``precheck`` passed (else it is checked here).
    With an Idempotency-Key, the same key and body replays the first job (returns it
    with ``False``); a different body is a 422."""
    if idempotency_key is not None:
        existing = repo.find_idempotent(session, owner, idempotency_key)
        if existing is not None:
            return _replay(session, existing, spec), False
    check_queue_quota(session, settings, owner)
    if checked is None or dataset_repo.get(session, owner, spec.dataset_id) is None:
        checked = check(session, storage, settings, owner, spec)  # (gone since: a 422)
    name = spec.name or f"{spec.main_task.label}: {len(spec.candidates)} candidates"
    job = Job(
        id=new_id("job"),
        owner=owner,
        name=name,
        dataset_id=spec.dataset_id,
        # The spec alone (what trains); a submission's tags and note are the job's.
        spec=spec.model_dump(mode="json", exclude=set(META_FIELDS)),
        tags=list(dict.fromkeys(spec.tags)) if isinstance(spec, JobSubmission) else [],
        note=spec.note if isinstance(spec, JobSubmission) else "",
        status=JobStatus.QUEUED,
        progress_total=checked.cost.probe_epochs,
        estimate=checked.cost.to_dict(),
        inputs=checked.inputs,
        created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    if idempotency_key is not None:
        key = IdempotencyKey(
            owner=owner, key=idempotency_key, request_hash=request_hash(spec), job_id=job.id
        )
        session.add(key)
        try:
            session.flush()
        except IntegrityError as exc:
            # A concurrent request with this key is being committed right now.
            raise ProblemError(
                409,
                "Duplicate request in progress",
                "A request with this Idempotency-Key is being processed; retry shortly.",
                type_="idempotency-conflict",
            ) from exc
    return job, True


def _replay(session: Session, existing: IdempotencyKey, spec: JobSpec) -> Job:
    if existing.request_hash != request_hash(spec):
        raise ProblemError(
            422,
            "Idempotency-Key reused",
            "This Idempotency-Key was used with a different request body; use a new key.",
            type_="idempotency-mismatch",
            errors=[{"field": "Idempotency-Key", "message": "Use a new key for a new request."}],
        )
    job = repo.get_any(session, existing.job_id)
    assert job is not None
    return job


def require(session: Session, owner: str, job_id: str) -> Job:
    return found(repo.get(session, owner, job_id), "Job", job_id)


def cancel(session: Session, owner: str, job_id: str) -> Job:
    job = require(session, owner, job_id)
    if job.status in FINISHED:
        raise ProblemError(
            409,
            "Job already ended",
            f"The job is {job.status}; it cannot be canceled.",
            type_="job-finished",
        )
    job.cancel_requested = True
    if job.status == JobStatus.QUEUED:
        job.status = JobStatus.CANCELED
        job.finished_at = utcnow()
    session.flush()
    return job


def top_candidates(session: Session, jobs: list[Job]) -> dict[str, TopCandidate]:
    """The rank-1 candidate of each succeeded job among ``jobs`` (one query)."""
    ids = [j.id for j in jobs if j.status == JobStatus.SUCCEEDED]
    return {
        job_id: TopCandidate(name=row.name, verdict=row.verdict, gain=row.gain)
        for job_id, row in repo.top_candidates(session, ids).items()
    }


def compare(session: Session, owner: str, a: str, b: str) -> JobComparison:
    """Two succeeded jobs' rankings side by side (GET /api/v1/jobs/compare and the
    dashboard's compare page): 404 for a job not found, 409 for one without a final
    ranking, its detail naming the side."""
    jobs = [require(session, owner, job_id) for job_id in (a, b)]  # 404s first
    views = []
    for side, job in zip(("a", "b"), jobs, strict=True):
        try:
            views.append(results.ranking_view(job, repo.scores(session, job.id)))
        except ProblemError as exc:
            exc.detail = f"Job {side} ({job.id}): {exc.detail}"
            raise
    return compare_view(views[0], jobs[0].name, views[1], jobs[1].name)


def update_meta(session: Session, owner: str, job_id: str, meta: JobMetaIn) -> Job:
    """Set a job's tags and/or note (a field left out is kept); any status."""
    job = require(session, owner, job_id)
    if meta.tags is not None:
        job.tags = list(dict.fromkeys(meta.tags))  # duplicates dropped, order kept
    if meta.note is not None:
        job.note = meta.note
    session.flush()
    return job


def job_view(
    job: Job | SimpleNamespace,
    request: Request,
    *,
    validate: bool = True,
    top: TopCandidate | None = None,
) -> JobOut:
    """A job as the API shows it (from the ORM row, or the status poll's columns)."""
    # What request.url_for("get_job", ...) gives, without its search of every route
    # (8 % of a status poll): the job's published path on this request's base URL.
    base = f"{str(request.base_url).rstrip('/')}/api/v1/jobs/{job.id}"
    total = max(job.progress_total, 0)
    done = min(job.progress_done, total) if total else job.progress_done
    spec = job.spec
    if "recipe" not in spec:  # stored before recipes: the recipe its budget implies
        spec = {**spec, "recipe": JobSpec.model_validate(spec).recipe}
    if validate:
        new = JobOut
        job_spec = JobSpec.model_validate(spec)
        estimate = JobEstimate.model_validate(job.estimate) if job.estimate else None
    else:
        # The status poll (GET /jobs/{id}) is the hot path and renders this view to
        # bytes at once. Validated, its build+render took ~240 µs against ~37 µs for
        # the plain dict it replaced (JobSpec's validators alone ~110 µs); unvalidated
        # ~100 µs (model_construct is Python). Its values are the job's own columns as
        # this module stored them, so it is built with model_construct, and the spec
        # and estimate JSON pass through as stored (as the poll always showed them;
        # tests/api/test_views.py checks the bytes equal the validated view's).
        new = unvalidated(JobOut)
        job_spec = cast(JobSpec, spec)
        estimate = cast(JobEstimate | None, job.estimate)
    return new(
        id=job.id,
        name=job.name,
        dataset_id=job.dataset_id,
        status=JobStatus(job.status),
        progress=Progress(
            done=done, total=total, fraction=round(done / total, 4) if total else 0.0
        ),
        attempts=job.attempt,
        cancel_requested=job.cancel_requested,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        heartbeat_at=job.heartbeat_at,
        error=JobError(reason=job.error_reason, detail=job.error_detail)
        if job.error_reason
        else None,
        spec=job_spec,
        estimate=estimate,
        inputs=job.inputs,
        tags=list(job.tags or []),
        note=job.note or "",
        top_candidate=top,
        links={
            "self": base,
            "ranking": f"{base}/ranking",
            "cancel": f"{base}/cancel",
            "runs": f"{base}/runs",
        },
    )


def unvalidated(model: type[M]) -> type[M]:
    """``model``'s constructor without validation (``model_construct``: the same
    keyword arguments, typed as the model's own so that mypy checks them)."""
    return cast(type[M], model.model_construct)
