"""/api/v1/jobs: submit (202 + Location), list, status, cancel, ranking, probe runs, and
the comparison of two jobs' rankings."""

from __future__ import annotations

from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response

from app.api import poll
from app.api.deps import (
    OwnerDep,
    PollOwnerDep,
    SessionDep,
    SettingsDep,
    StorageDep,
    limit_submissions,
)
from app.api.pagination import Page, clamp_page_size, decode_cursor, page_body
from app.api.schemas import (
    JOB_EXAMPLE,
    JobComparison,
    JobList,
    JobMetaIn,
    JobOut,
    JobStatus,
    JobSubmission,
    ProbeRunList,
    RankingOut,
)
from app.data.export import csv_bytes
from app.db.repositories import jobs as repo
from app.errors import not_found
from app.jobs import ranking_csv, results
from app.jobs.meta import MAX_TAG_LENGTH
from app.services import jobs as service

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

PROBLEM: dict[str, object] = {"content": {"application/problem+json": {}}}


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    dependencies=[Depends(limit_submissions)],
    responses={
        409: {"description": "Duplicate request in progress", **PROBLEM},
        422: {"description": "Invalid job spec, or over the cost limits", **PROBLEM},
        429: {
            "description": "Rate limit (AUXSEL_RATE_SUBMIT_PER_MIN) or queued-job quota "
            "(AUXSEL_MAX_QUEUED_JOBS_PER_OWNER); see Retry-After",
            **PROBLEM,
        },
    },
)
def create_job(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    owner: OwnerDep,
    spec: Annotated[JobSubmission, Body(openapi_examples={"churn": {"value": JOB_EXAMPLE}})],
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JobOut:
    """Submit a job. It is validated against the data set's columns and its data
    prepared as the worker will, now; then queued, and answered with 202 Accepted and a
    Location to poll. `tags` and `note` are the job's metadata, kept beside its spec
    (and editable later with PATCH), not in it."""
    sessions = request.app.state.sessions
    checked = service.precheck(sessions, storage, settings, owner, spec, idempotency_key)
    job, created = service.create(session, storage, settings, owner, spec, idempotency_key, checked)
    view = service.job_view(job, request)
    response.headers["Location"] = view.links["self"]
    response.headers.update(poll.unfinished_headers(job, settings))
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return view


@router.get("", response_model=JobList)
def list_jobs(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    owner: OwnerDep,
    status: JobStatus | None = None,
    tag: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_TAG_LENGTH, description="Jobs with this tag."),
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=255,
            description=(
                "Jobs whose name, a tag, main task or data set name contains this text "
                "(ignoring case)."
            ),
        ),
    ] = None,
    page_size: Annotated[int | None, Query(ge=1, le=1000)] = None,
    page_token: str | None = None,
) -> Page[JobOut]:
    """Jobs, newest first; filter by status, tag and text; cursor pagination. Each
    succeeded job carries its `top_candidate`."""
    size = clamp_page_size(page_size, settings.page_size_default, settings.page_size_max)
    rows = repo.page(session, owner, status, decode_cursor(page_token), size, tag=tag, q=q)
    tops = service.top_candidates(session, rows[:size])
    return page_body(
        request, response, rows, size, lambda j: service.job_view(j, request, top=tops.get(j.id))
    )


@router.get(
    "/compare",
    response_model=JobComparison,
    responses={
        404: {"description": "Either job not found", **PROBLEM},
        409: {"description": "Either job not succeeded (yet)", **PROBLEM},
        422: {"description": "`a` or `b` missing", **PROBLEM},
    },
)
def compare_jobs(
    session: SessionDep,
    owner: OwnerDep,
    a: Annotated[str, Query(min_length=1, max_length=40, description="The first job's id.")],
    b: Annotated[str, Query(min_length=1, max_length=40, description="The second job's id.")],
) -> JobComparison:
    """Two succeeded jobs' rankings side by side, aligned by candidate name: each
    candidate's rank, gain, interval and verdict in both, what changed from a to b, and
    the candidates only one of them ranked."""
    return service.compare(session, owner, a, b)


@router.get(
    "/{job_id}",
    response_model=JobOut,
    responses={
        304: {"description": "Not Modified: `If-None-Match` names the current ETag (no body)"},
        404: PROBLEM,
    },
)
async def get_job(
    job_id: str,
    request: Request,
    settings: SettingsDep,
    owner: PollOwnerDep,
    if_none_match: Annotated[str | None, Header(max_length=poll.MAX_IF_NONE_MATCH)] = None,
) -> Response:
    """Status and progress; `Retry-After` while the job is unfinished. Every answer has
    an `ETag`: poll with `If-None-Match: <etag>` to get 304 Not Modified, without a
    body, until the job changes."""
    # Usually answered before routing by app/api/poll.py's fast path; here when it
    # passes (a key to verify, an unknown id, a database error).
    job = await poll.read_status(request, owner, job_id)
    if job is None:
        raise not_found("Job", job_id)
    return poll.status_answer(job, request, settings, if_none_match)


@router.patch(
    "/{job_id}",
    response_model=JobOut,
    responses={
        404: PROBLEM,
        422: {"description": "Too many or too long tags, or too long a note", **PROBLEM},
    },
)
def update_job(
    job_id: str, request: Request, session: SessionDep, owner: OwnerDep, meta: JobMetaIn
) -> JobOut:
    """Set the job's tags and/or note (its metadata; the spec, what trains, never
    changes). A field left out is kept; `[]` and `""` clear them."""
    return service.job_view(service.update_meta(session, owner, job_id, meta), request)


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    response_model=JobOut,
    responses={404: PROBLEM, 409: {"description": "Job already ended", **PROBLEM}},
)
def cancel_job(job_id: str, request: Request, session: SessionDep, owner: OwnerDep) -> JobOut:
    """Cancel a queued job at once, or a running one at its next training step."""
    return service.job_view(service.cancel(session, owner, job_id), request)


@router.get(
    "/{job_id}/ranking",
    response_model=RankingOut,
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with ?format=csv"},
        404: PROBLEM,
        409: {"description": "No ranking yet: no replicate has finished", **PROBLEM},
    },
)
def get_ranking(
    job_id: str,
    session: SessionDep,
    owner: OwnerDep,
    format: Literal["json", "csv"] = "json",
) -> RankingOut | Response:
    """Baseline, then candidates ranked by gain with interval, p/q-values, verdict.
    Before the job succeeds: the provisional ranking of the runs stored so far
    (``provisional: true``)."""
    job = service.require(session, owner, job_id)
    view = results.ranking_view(job, repo.scores(session, job.id))
    if format == "csv":
        frame = pd.DataFrame(ranking_csv.ranking_rows(view))
        filename = f"{job.id}-{'provisional-' if view.provisional else ''}ranking.csv"
        return Response(
            csv_bytes(frame),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return view


@router.get("/{job_id}/runs", response_model=ProbeRunList, responses={404: PROBLEM})
def get_runs(job_id: str, session: SessionDep, owner: OwnerDep) -> ProbeRunList:
    """Every stored probe run: metrics at the best epoch and the validation curve."""
    job = service.require(session, owner, job_id)
    return results.runs_view(job, repo.stored_runs(session, job.id))
