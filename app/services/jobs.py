"""Job submission (validated against the stored data sets' columns, so a bad job never
reaches a worker), cancellation, and the views of jobs and rankings."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from itertools import pairwise
from types import SimpleNamespace
from typing import Any

from fastapi import Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import engine
from app.api.schemas import JobCreate
from app.db.models import CandidateScore, Dataset, IdempotencyKey, Job, ProbeRunRecord, utcnow
from app.db.repositories import datasets as dataset_repo
from app.db.repositories import jobs as repo
from app.errors import ProblemError, not_found
from app.services.datasets import new_id
from app.settings import Settings


class SpecProblems:
    """Collects every problem of a job spec, so the user fixes them in one go."""

    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.errors.append({"field": field, "message": message})

    def raise_if_any(self) -> None:
        if self.errors:
            first = self.errors[0]
            raise ProblemError(
                422,
                "Invalid job spec",
                f"{first['field']}: {first['message']}"
                + (f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""),
                type_="invalid-job-spec",
                errors=self.errors,
            )


def _columns(dataset: Dataset) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in dataset.profile}


def _check_label(
    problems: SpecProblems, field: str, column: dict[str, Any], kind: str | None, rows: int
) -> None:
    name = column["name"]
    labelled = rows - int(column["missing"])
    if labelled < 1:
        problems.add(field, f"Column {name!r} has no labels (every value is missing).")
        return
    if column["infinite"]:
        problems.add(
            field,
            f"Column {name!r} holds {column['infinite']} infinite value(s) (inf/-inf); "
            "clean them or leave those cells empty (missing labels are skipped).",
        )
    mixed = column.get("mixed")
    if mixed and kind not in ("binary", "multiclass"):
        problems.add(
            field,
            f"Column {name!r} mixes numbers and text ({mixed['numbers']} distinct numeric "
            f"and {mixed['text']} distinct text values, e.g. {mixed['example']!r}); clean "
            "it, or declare kind 'multiclass' to treat every value as a category.",
        )
        return
    if column["unique"] < 2:
        problems.add(field, f"Column {name!r} has a single value; a label needs at least two.")
        return
    if column["dtype"] == "datetime":
        problems.add(field, f"Column {name!r} holds dates; it cannot be a label.")
        return
    if kind == "binary" and column["unique"] != 2:
        problems.add(
            f"{field.rsplit('.', 1)[0]}.kind",
            f"Column {name!r} has {column['unique']} distinct values; binary needs exactly 2. "
            "Use multiclass or regression.",
        )
    if kind == "regression" and column["dtype"] not in ("number", "integer", "boolean"):
        problems.add(
            f"{field.rsplit('.', 1)[0]}.kind",
            f"Column {name!r} holds text; regression needs numbers. Use binary or multiclass.",
        )
    effective = kind or column["kind"]
    if effective == "regression" and column.get("huge"):
        problems.add(
            field,
            f"Column {name!r} holds {column['huge']} value(s) beyond ±1e30, too large to "
            "train on; rescale the column.",
        )
    if effective in ("binary", "multiclass") and column["unique"] > engine.tasks.MAX_CLASSES:
        hint = (
            "declare kind regression if it is a number"
            if column["dtype"] in ("number", "integer")
            else "a column of identifiers or free text cannot be a label"
        )
        problems.add(
            field,
            f"Column {name!r} has {column['unique']:,} distinct values, more than the "
            f"{engine.tasks.MAX_CLASSES} classes a label may have; {hint}.",
        )


def validate(
    session: Session, settings: Settings, owner: str, spec: JobCreate
) -> tuple[Dataset, dict[str, Dataset]]:
    """Check the spec against the data sets' stored column profiles and the limits."""
    problems = SpecProblems()
    main_ds = dataset_repo.get(session, owner, spec.dataset_id)
    if main_ds is None:
        problems.add("dataset_id", f"No data set {spec.dataset_id!r}; upload one first.")
        problems.raise_if_any()
    assert main_ds is not None
    columns = _columns(main_ds)
    other_ids = sorted({c.dataset_id for c in spec.candidates if c.dataset_id} - {main_ds.id})
    others = dataset_repo.get_many(session, owner, other_ids)

    if spec.main_task.dataset_id not in (None, main_ds.id):
        problems.add("main_task.dataset_id", "The main task comes from `dataset_id`; remove it.")
    main_col = columns.get(spec.main_task.column)
    if main_col is None:
        problems.add(
            "main_task.column",
            f"Column {spec.main_task.column!r} is not in data set {main_ds.name!r}.",
        )
    else:
        _check_label(problems, "main_task.column", main_col, spec.main_task.kind, main_ds.rows)
        labelled = main_ds.rows - int(main_col["missing"])
        if labelled < engine.splits.MIN_LABELLED_ROWS:
            problems.add(
                "main_task.column",
                f"Column {main_col['name']!r} has {labelled} labelled rows; at least "
                f"{engine.splits.MIN_LABELLED_ROWS} are needed.",
            )
        kind = spec.main_task.kind or main_col["kind"]
        if kind and spec.metric not in engine.METRICS_BY_KIND[kind]:
            problems.add(
                "metric",
                f"Metric {spec.metric!r} does not apply to a {kind} main task; use one of "
                f"{', '.join(engine.METRICS_BY_KIND[kind])}.",
            )

    if len(spec.candidates) > settings.max_candidates:
        problems.add(
            "candidates",
            f"{len(spec.candidates)} candidates exceed the limit of {settings.max_candidates} "
            "(setting AUXSEL_MAX_CANDIDATES).",
        )
    label_columns = {spec.main_task.column}
    names = {spec.main_task.name or spec.main_task.column: "main_task"}
    for i, cand in enumerate(spec.candidates):
        field = f"candidates[{i}]"
        source = main_ds if cand.dataset_id in (None, main_ds.id) else others.get(cand.dataset_id)
        if source is None:
            problems.add(f"{field}.dataset_id", f"No data set {cand.dataset_id!r}.")
            continue
        if source is main_ds:
            label_columns.add(cand.column)
            if cand.column == spec.main_task.column:
                problems.add(f"{field}.column", "A candidate cannot be the main task itself.")
                continue
        col = _columns(source).get(cand.column)
        if col is None:
            problems.add(f"{field}.column", f"Column {cand.column!r} is not in {source.name!r}.")
            continue
        _check_label(problems, f"{field}.column", col, cand.kind, source.rows)
        name = cand.name or cand.column
        if name in names:
            problems.add(f"{field}.name", f"Name {name!r} is used twice; give it a `name`.")
        names[name] = field

    if spec.features is not None:
        if not spec.features:
            problems.add("features", "Give at least one feature column, or leave it out.")
        seen_features: set[str] = set()
        for j, feature in enumerate(spec.features):
            if feature in seen_features:
                problems.add(f"features[{j}]", f"{feature!r} is listed twice.")
                continue
            seen_features.add(feature)
            if feature in label_columns:
                problems.add(f"features[{j}]", f"{feature!r} is a label; it cannot be a feature.")
            elif feature not in columns:
                problems.add(f"features[{j}]", f"Column {feature!r} is not in {main_ds.name!r}.")
        features = [f for f in spec.features if f in columns and f not in label_columns]
    else:
        features = [c for c in columns if c not in label_columns]
        if not features:
            problems.add("features", "Every column is a label; no feature columns are left.")
    for other_id, other in others.items():
        lacking = [f for f in features if f not in _columns(other)]
        if lacking:
            problems.add(
                "candidates",
                f"Data set {other.name!r} ({other_id}) lacks feature column(s) "
                f"{', '.join(map(repr, lacking[:5]))}; a candidate from another data set "
                "needs the main data set's feature columns (or set `features`).",
            )

    _check_budget(problems, settings, spec)
    problems.raise_if_any()
    return main_ds, others


def _check_budget(problems: SpecProblems, settings: Settings, spec: JobCreate) -> None:
    b = spec.budget
    if b.seeds > settings.max_seeds:
        problems.add("budget.seeds", f"At most {settings.max_seeds} (AUXSEL_MAX_SEEDS).")
    if b.seeds < 2:
        problems.add("budget.seeds", "At least 2 replicates are needed for an interval.")
    if b.epochs > settings.max_epochs:
        problems.add("budget.epochs", f"At most {settings.max_epochs} (AUXSEL_MAX_EPOCHS).")
    if len(b.hidden) > settings.max_hidden_layers:
        problems.add(
            "budget.hidden",
            f"At most {settings.max_hidden_layers} layers (AUXSEL_MAX_HIDDEN_LAYERS).",
        )
    for k, width in enumerate(b.hidden):
        if not 1 <= width <= settings.max_hidden_width:
            problems.add(
                f"budget.hidden[{k}]",
                f"Widths run from 1 to {settings.max_hidden_width} (AUXSEL_MAX_HIDDEN_WIDTH).",
            )
    try:
        budget = engine_budget(b.model_dump(), settings)
        engine.check_method(spec.method, budget)
    except engine.SpecError as exc:
        problems.add(exc.field or "budget", exc.message + (f" {exc.hint}" if exc.hint else ""))
        return
    cost = planned_cost(spec, budget)
    if cost > settings.max_probe_epochs:
        problems.add(
            "budget",
            f"The job plans {cost:,} probe-epochs (seeds x epochs x probes, plus screening "
            f"and subset search), over the limit of {settings.max_probe_epochs:,} "
            "(AUXSEL_MAX_PROBE_EPOCHS); lower seeds or epochs, or split the candidates over "
            "several jobs.",
        )


def engine_budget(body: dict[str, Any], settings: Settings) -> engine.Budget:
    """The engine's budget for a job's stored ``budget`` (plus server-side settings)."""
    return engine.Budget.from_kwargs(**body, memory_mb=settings.memory_mb)


def planned_cost(spec: JobCreate, budget: engine.Budget) -> int:
    """The most probe-epochs the job can take (its progress total)."""
    return engine.planned_epochs(spec.method, budget, len(spec.candidates))


QUOTA_RETRY_AFTER_S = 30
"""Retry-After of a queued-job quota refusal: about how soon a queued job may start."""


def check_queue_quota(session: Session, settings: Settings, owner: str) -> None:
    """429 when the owner already has AUXSEL_MAX_QUEUED_JOBS_PER_OWNER jobs queued."""
    limit = settings.max_queued_jobs_per_owner
    if limit <= 0:
        return
    repo.lock_owner(session, owner)
    queued = repo.count_owned(session, owner, "queued")
    if queued < limit:
        return
    running = repo.count_owned(session, owner, "running")
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


def _encoded_width(column: dict[str, Any]) -> int:
    """Columns a feature becomes (engine.features): a number (+ a missing indicator),
    or one indicator per kept category of a text column; dates are dropped."""
    dtype = column["dtype"]
    if dtype == "datetime":
        return 0
    if dtype in ("number", "integer", "boolean"):
        return 1 + (1 if column["missing"] else 0)
    categories = int(column["unique"]) + (1 if column["missing"] else 0)
    return min(categories, engine.FeatureConfig().max_categories)


def _outputs(column: dict[str, Any] | None, kind: str | None) -> int:
    """Width of a task's head: its classes when multiclass, else 1."""
    if column is None:
        return 1
    return int(column["unique"]) if (kind or column["kind"]) == "multiclass" else 1


def job_shape(spec: JobCreate, main_ds: Dataset, others: dict[str, Dataset]) -> engine.JobShape:
    """The sizes the cost of a (validated) job depends on, from the stored profiles."""
    columns = _columns(main_ds)

    def source(task_dataset: str | None) -> Dataset:
        return main_ds if task_dataset in (None, main_ds.id) else others[str(task_dataset)]

    labels = {spec.main_task.column} | {
        c.column for c in spec.candidates if source(c.dataset_id) is main_ds
    }
    names = [c for c in columns if c not in labels] if spec.features is None else spec.features
    width = sum(_encoded_width(columns[n]) for n in set(names) if n in columns)
    aux = [_outputs(_columns(source(c.dataset_id)).get(c.column), c.kind) for c in spec.candidates]
    return engine.JobShape(
        rows=main_ds.rows + sum(ds.rows for ds in others.values()),
        n_features=max(1, width),
        n_candidates=len(spec.candidates),
        main_outputs=_outputs(columns.get(spec.main_task.column), spec.main_task.kind),
        aux_outputs=max(aux, default=1),
    )


def estimate(
    spec: JobCreate, main_ds: Dataset, others: dict[str, Dataset], settings: Settings
) -> engine.CostEstimate:
    """The job's estimated FLOPs and peak memory (engine.estimate_cost)."""
    budget = engine_budget(spec.budget.model_dump(), settings)
    return engine.estimate_cost(spec.method, budget, job_shape(spec, main_ds, others))


def _largest_factor(spec: JobCreate) -> str:
    """The budget field furthest above its default, relative to it: the first to lower."""
    default = engine.Budget()
    b = spec.budget

    def trunk(hidden: Sequence[int]) -> int:  # weights past the first layer, + widths
        return sum(a * c for a, c in pairwise(hidden)) + sum(hidden)

    ratios = {
        "budget.seeds": b.seeds / default.seeds,
        "budget.epochs": b.epochs / default.epochs,
        "budget.hidden": trunk(b.hidden) / trunk(default.hidden),
    }
    return max(ratios, key=lambda k: ratios[k])


def check_cost(cost: engine.CostEstimate, spec: JobCreate, settings: Settings) -> None:
    """422 when the estimate is over AUXSEL_MAX_JOB_FLOPS or AUXSEL_MAX_JOB_MEMORY_MB,
    with the numbers and the field to lower."""
    errors: list[dict[str, str]] = []
    flops_limit, memory_limit = settings.max_job_flops, settings.max_job_memory_mb
    if flops_limit > 0 and cost.flops > flops_limit:
        field = _largest_factor(spec)
        errors.append(
            {
                "field": field,
                "message": f"The job needs about {cost.flops:.2g} floating-point operations, "
                f"over the limit of {flops_limit:.2g} (AUXSEL_MAX_JOB_FLOPS): lower {field} "
                "first (the cost grows with seeds x epochs x probes x trunk size x rows), or "
                "split the candidates over several jobs.",
            }
        )
    if memory_limit > 0 and cost.memory_mb > memory_limit:
        probe_mb = cost.probe_bytes / 2**20
        if cost.data_bytes >= cost.probe_bytes:
            field, how = "features", "use fewer feature columns (`features`) or fewer rows"
        else:
            field = "budget.batch_size" if spec.budget.batch_size > 1024 else "budget.hidden"
            how = f"lower {field} (one probe alone needs {probe_mb:,.0f} MiB)"
        errors.append(
            {
                "field": field,
                "message": f"The job needs about {cost.memory_mb:,.0f} MiB at its peak (the "
                f"training data {cost.data_bytes / 2**20:,.0f} MiB and its largest chunk), "
                f"over the limit of {memory_limit:,.0f} MiB (AUXSEL_MAX_JOB_MEMORY_MB): {how}.",
            }
        )
    if not errors:
        return
    raise ProblemError(
        422,
        "Job over the cost limits",
        errors[0]["message"] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
        type_="job-cost-limit",
        errors=errors,
        extensions={
            "estimate": cost.to_dict(),
            "limits": {"flops": flops_limit, "memory_mb": memory_limit},
        },
    )


def request_hash(spec: JobCreate) -> str:
    return hashlib.sha256(
        json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()


def create(
    session: Session,
    settings: Settings,
    owner: str,
    spec: JobCreate,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Create a queued job. With an Idempotency-Key, the same key and body replays the
    first job (returns it with ``False``); a different body is a 422."""
    if idempotency_key is not None:
        existing = repo.find_idempotent(session, owner, idempotency_key)
        if existing is not None:
            return _replay(session, existing, spec), False
    check_queue_quota(session, settings, owner)
    main_ds, others = validate(session, settings, owner, spec)
    cost = estimate(spec, main_ds, others, settings)
    check_cost(cost, spec, settings)
    body = spec.model_dump(mode="json")
    name = (
        spec.name
        or f"{spec.main_task.name or spec.main_task.column}: {len(spec.candidates)} candidates"
    )
    job = Job(
        id=new_id("job"),
        owner=owner,
        name=name,
        dataset_id=main_ds.id,
        spec=body,
        status="queued",
        progress_total=cost.probe_epochs,
        estimate=cost.to_dict(),
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


def _replay(session: Session, existing: IdempotencyKey, spec: JobCreate) -> Job:
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
    job = repo.get(session, owner, job_id)
    if job is None:
        raise not_found("Job", job_id)
    return job


def cancel(session: Session, owner: str, job_id: str) -> Job:
    job = require(session, owner, job_id)
    if job.status in repo.FINISHED:
        raise ProblemError(
            409,
            "Job already ended",
            f"The job is {job.status}; it cannot be canceled.",
            type_="job-finished",
        )
    job.cancel_requested = True
    if job.status == "queued":
        job.status = "canceled"
        job.finished_at = utcnow()
    session.flush()
    return job


def job_view(job: Job | SimpleNamespace, request: Request) -> dict[str, Any]:
    """A job as the API shows it (from the ORM row, or the status poll's columns)."""
    # What request.url_for("get_job", ...) gives, without its search of every route
    # (8 % of a status poll): the job's published path on this request's base URL.
    base = f"{str(request.base_url).rstrip('/')}/api/v1/jobs/{job.id}"
    total = max(job.progress_total, 0)
    done = min(job.progress_done, total) if total else job.progress_done
    return {
        "id": job.id,
        "name": job.name,
        "dataset_id": job.dataset_id,
        "status": job.status,
        "progress": {
            "done": done,
            "total": total,
            "fraction": round(done / total, 4) if total else 0.0,
        },
        "attempts": job.attempt,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "heartbeat_at": job.heartbeat_at,
        "error": {"reason": job.error_reason, "detail": job.error_detail}
        if job.error_reason
        else None,
        "spec": job.spec,
        "estimate": job.estimate,
        "links": {
            "self": base,
            "ranking": f"{base}/ranking",
            "cancel": f"{base}/cancel",
            "runs": f"{base}/runs",
        },
    }


def ranking_view(job: Job, scores: list[CandidateScore]) -> dict[str, Any]:
    if job.status != "succeeded" or job.result is None:
        raise ProblemError(
            409,
            "Ranking not ready",
            f"The job is {job.status}; the ranking exists once it has succeeded.",
            type_="ranking-not-ready",
        )
    result = job.result
    candidates = []
    for s in scores:
        d = s.details
        candidates.append(
            {
                "rank": s.rank,
                "name": s.name,
                "column": s.column,
                "kind": s.kind,
                "dataset_id": s.dataset_id,
                "gain": s.gain,
                "se": s.se,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
                "rel_gain": s.rel_gain,
                "p_value": s.p_value,
                "q_value": s.q_value,
                "verdict": s.verdict,
                "seeds": s.seeds,
                "secondary": d.get("secondary"),
                "disagreement": bool(d.get("disagreement")),
                "proxies": d.get("proxies") or {},
                "metrics": d.get("metrics") or {},
                "per_seed": d.get("per_seed") or [],
                "errors": d.get("errors") or [],
            }
        )
    return {
        "job_id": job.id,
        "method": result["method"],
        "metric": result["metric"],
        "interval": result["interval"],
        "main_task": result["main_task"],
        "baseline": result["baseline"],
        "candidates": candidates,
        "subset": result.get("subset"),
        "agreement": result.get("agreement"),
        "dropped_features": result.get("dropped_features") or {},
    }


RANKING_COLUMNS = [
    "rank",
    "name",
    "column",
    "kind",
    "gain",
    "ci_low",
    "ci_high",
    "rel_gain",
    "p_value",
    "q_value",
    "verdict",
    "seeds",
    "secondary_metric",
    "secondary_gain",
    "disagreement",
]


def ranking_rows(view: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for c in view["candidates"]:
        secondary = c["secondary"] or {}
        rows.append(
            {
                **{k: c[k] for k in RANKING_COLUMNS if k in c},
                "secondary_metric": secondary.get("metric"),
                "secondary_gain": secondary.get("gain"),
                **{f"proxy_{k}": v for k, v in c["proxies"].items()},
            }
        )
    return rows


def runs_view(job: Job, runs: list[ProbeRunRecord]) -> dict[str, Any]:
    names = [c.get("name") or c["column"] for c in job.spec["candidates"]]
    return {
        "job_id": job.id,
        "metric": job.spec.get("metric", "loss"),
        "items": [
            {
                "key": r.probe_key,
                "replicate": r.replicate,
                "candidates": [names[i] for i in r.aux],
                "metrics": {k: _finite(v) for k, v in r.metrics.items()},
                "curve": [_finite(v) for v in r.curve],
                "best_epoch": r.best_epoch,
                "epochs": r.epochs,
                "error": r.error,
            }
            for r in runs
            if r.replicate >= 0  # the screening run holds proxy scores, not a probe
        ],
    }


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
