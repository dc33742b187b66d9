"""Dashboard pages. They read through the same services as the API and leave live
updates, uploads and submissions to small scripts that call the API itself (with the
HttpOnly key cookie when keys are on), so there is one code path for every action."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

import engine
from app.api.deps import OptionalOwnerDep, SessionDep
from app.api.pagination import decode_cursor, next_token
from app.api.schemas import BudgetIn
from app.dashboard import views
from app.dashboard.charts import gain_chart, mean_curves, proxy_names, proxy_points
from app.dashboard.fractions import share_chart
from app.dashboard.render import query, render, settings_of, to_sign_in
from app.db.repositories import datasets as dataset_repo
from app.db.repositories import jobs as repo
from app.errors import ProblemError
from app.jobs import failures, results
from app.jobs.meta import MAX_TAG_LENGTH
from app.jobs.spec import TaskIn
from app.jobs.status import JobStatus
from app.jobs.views import RankingOut
from app.services import jobs as service

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
STATUSES = tuple(JobStatus)


@router.get("/", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    owner: OptionalOwnerDep,
    session: SessionDep,
    status: str | None = None,
    q: str | None = None,
    tag: str | None = None,
    page_token: str | None = None,
) -> Response:
    """The job list. ``q`` and ``tag`` search all the owner's jobs (the API's
    ``GET /api/v1/jobs?q=&tag=``), not only the rows of one page."""
    if owner is None:
        return to_sign_in(request)
    status = status if status in STATUSES else None
    # Past the API's limits a search cannot match anything longer: cut, not refused.
    q = q.strip()[:255] or None if q else None
    tag = tag[:MAX_TAG_LENGTH] or None if tag else None
    rows = repo.page(session, owner, status, decode_cursor(page_token), PAGE_SIZE, tag=tag, q=q)
    tops = service.top_candidates(session, rows[:PAGE_SIZE])  # one rank-1 query
    jobs = [service.job_view(j, request, top=tops.get(j.id)) for j in rows[:PAGE_SIZE]]
    names = _dataset_names(session, owner, {j.dataset_id for j in jobs})
    deleted = {
        r.id: views.dataset_ref(None, None, r.result)["name"]
        for r in rows[:PAGE_SIZE]
        if r.dataset_id not in names and r.result
    }
    older = next_token(rows, PAGE_SIZE)
    return render(
        request,
        "jobs.html",
        {
            "jobs": jobs,
            "dataset_names": names,
            "deleted_datasets": deleted,
            "status": status,
            "statuses": STATUSES,
            "q": q,
            "tag": tag,
            "older": query(**_filters(status=status, q=q, tag=tag), page_token=older)
            if older
            else None,
            # Only the first page follows the newest jobs live.
            "live": page_token is None,
            "page_size": PAGE_SIZE,
        },
    )


def _other_dataset_candidates(
    session: Session, owner: str, candidates: list[TaskIn], dataset_id: str
) -> list[dict[str, str]]:
    """The source job's candidates read from another data set: the form picks
    candidates from one data set's columns, so a copy made there leaves these out (and
    says so, naming each and its data set)."""
    others = [c for c in candidates if c.dataset_id and c.dataset_id != dataset_id]
    names = _dataset_names(session, owner, {c.dataset_id for c in others})
    return [
        {
            "name": c.label,
            "column": c.column,
            "dataset_id": str(c.dataset_id),
            "dataset": names.get(str(c.dataset_id), f"{c.dataset_id} (deleted)"),
        }
        for c in others
    ]


def _filters(**params: str | None) -> dict[str, str]:
    return {k: v for k, v in params.items() if v}


def _dataset_names(session: Session, owner: str, ids: set[str | None]) -> dict[str, str]:
    found = dataset_repo.get_many(session, owner, sorted(i for i in ids if i))
    return {i: d.name for i, d in found.items()}


@router.get("/submit", response_class=HTMLResponse)
def submit_page(
    request: Request,
    owner: OptionalOwnerDep,
    session: SessionDep,
    dataset: str | None = None,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
) -> Response:
    """The submit form; ``?from={job_id}`` fills it with that job's spec (a clone, named
    "<name> (copy)"), which the user edits before submitting."""
    if owner is None:
        return to_sign_in(request)
    settings = settings_of(request)
    clone: dict[str, object] | None = None
    clone_missing = None
    dropped: list[dict[str, str]] = []
    if from_:
        source = repo.get(session, owner, from_)
        if source is None:
            clone_missing = from_
        else:
            spec = service.job_view(source, request).spec
            clone = {
                **spec.model_dump(mode="json", exclude_none=True),
                # Only the knobs it set away from their defaults: the form shows the
                # defaults of the rest, and a default the user changes stays consistent.
                "budget": spec.budget.model_dump(mode="json", exclude_defaults=True),
                "name": f"{source.name} (copy)",
                "tags": list(source.tags or []),  # the note is the source's own
                "from": source.id,
            }
            dataset = spec.dataset_id
            dropped = _other_dataset_candidates(session, owner, spec.candidates, dataset)
    datasets = [
        {"id": d.id, "name": d.name, "rows": d.rows, "columns": d.columns}
        for d in dataset_repo.page_summaries(session, owner, None, 200)[:200]
    ]
    return render(
        request,
        "submit.html",
        {
            "datasets": datasets,
            "selected": dataset,
            "budget": BudgetIn(),
            "recipes": {
                name: {k: list(v) if isinstance(v, tuple) else v for k, v in knobs.items()}
                for name, knobs in engine.RECIPES.items()
            },
            "default_recipe": engine.DEFAULT_RECIPE,
            "clone": clone,
            "clone_missing": clone_missing,
            "clone_dropped": dropped,
            "limits": {
                "seeds": settings.max_seeds,
                "epochs": settings.max_epochs,
                "upload_mb": settings.max_upload_mb,
            },
        },
    )


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    owner: OptionalOwnerDep,
    session: SessionDep,
    a: str | None = None,
    b: str | None = None,
    job: Annotated[list[str] | None, Query(max_length=10)] = None,
) -> Response:
    """Two jobs' rankings side by side: ``?a=&b=``, or ``?job=&job=`` as the jobs
    list's checkboxes send it without script. It renders GET /api/v1/jobs/compare's
    answer (the same service), its problems (404, 409) as the page's message."""
    if owner is None:
        return to_sign_in(request)
    picked = [i for i in (a, b) if i] if a or b else list(job or [])
    if len(picked) != 2 or any(len(i) > 40 for i in picked):
        return render(
            request,
            "compare.html",
            {"comparison": None, "problem": "Select two jobs on the jobs list to compare."},
            status_code=200 if not picked else 422,
        )
    try:
        comparison = service.compare(session, owner, picked[0], picked[1])
    except ProblemError as exc:
        return render(
            request,
            "compare.html",
            {"comparison": None, "problem": exc.detail},
            status_code=exc.status,
        )
    return render(request, "compare.html", {"comparison": comparison, "problem": None})


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    request: Request, owner: OptionalOwnerDep, session: SessionDep, job_id: str
) -> Response:
    if owner is None:
        return to_sign_in(request)
    row = repo.get(session, owner, job_id)
    if row is None:
        return render(request, "missing.html", {"job_id": job_id}, status_code=404)
    job = service.job_view(row, request)
    ranking = (
        results.ranking_view(row, repo.scores(session, row.id))
        if row.result is not None
        and (row.status == JobStatus.SUCCEEDED or results.is_provisional(row))
        else None
    )
    runs = results.runs_view(row, repo.stored_runs(session, row.id))
    live = dataset_repo.get(session, owner, row.dataset_id) if row.dataset_id else None
    dataset = views.dataset_ref(
        job.spec.dataset_id,
        (live.id, live.name, live.sha256) if live else None,
        row.result,
    )
    order = [c.name for c in ranking.candidates] if ranking else None
    curves = mean_curves(runs, order)
    # Drawn on demand (a disclosure): the training losses of the main and auxiliary tasks.
    train_curves = mean_curves(runs, order, "train_loss")
    aux_curves = mean_curves(runs, order, "aux_loss")
    charts: dict[str, object] = {
        "curves": curves,
        "train_curves": train_curves,
        "aux_curves": aux_curves,
    }
    if ranking:
        charts["gains"] = gain_chart(ranking)
        charts["proxies"] = proxy_points(ranking)
        shares = share_chart(ranking)
        if shares is not None:
            charts["shares"] = shares
    return render(
        request,
        "job.html",
        {
            "job": job,
            "dataset": dataset,
            "provenance": views.provenance_rows(
                dataset,
                row.result,
                results.answers_for(row)["recipe_text"],
                job.spec.seed,
            ),
            "ranking": ranking,
            "answers": ranking or results.answers_for(row),
            "proxy_names": proxy_names(ranking) if ranking else [],
            "agreement": views.agreement_view(ranking.agreement) if ranking else None,
            "subset": views.subset_view(ranking.subset) if ranking else None,
            "baseline_metrics": _baseline_metrics(ranking),
            "charts": charts,
            "failure": failures.explain(job.error.model_dump() if job.error else None)
            if job.status == JobStatus.FAILED
            else None,
            "has_curves": any(s["mean"] for s in curves["series"]),
            "has_train_curves": any(s["mean"] for s in train_curves["series"]),
            "has_aux_curves": any(s["mean"] for s in aux_curves["series"]),
            "runs_stored": len(runs.items),
            "replicates_stored": len({r.replicate for r in runs.items}),
        },
    )


def _baseline_metrics(ranking: RankingOut | None) -> list[tuple[str, float]]:
    if ranking is None:
        return []
    return [
        (str(k), v)
        for k, v in ranking.baseline.model_dump().items()
        if k != "seeds" and isinstance(v, int | float) and not isinstance(v, bool)
    ]
