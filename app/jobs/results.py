"""Engine results as database rows, and those rows as the API's views: the probe-run
row, the candidate row and the job's result summary are each shaped here, once."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sqlalchemy import inspect

import engine
from app.db.models import CandidateScore, Job, ProbeRunRecord
from app.errors import ProblemError
from app.jobs.spec import JobSpec
from app.jobs.status import JobStatus

SCREEN_KEY = "screen"
"""The probe_runs key of a job's screening run; its ``metrics`` hold the proxy scores."""

SCORE_COLUMNS = tuple(
    attr.key
    for attr in inspect(CandidateScore).column_attrs
    if attr.key not in ("id", "job_id", "details")
)
"""A candidate's own columns in candidate_scores (rank, name, ..., verdict, seeds)."""

DETAILS: dict[str, Callable[[], object]] = {
    "secondary": lambda: None,
    "disagreement": bool,
    "proxies": dict,
    "metrics": dict,
    "per_seed": list,
    "errors": list,
    "evidence": lambda: None,
    "evidence_disagrees": bool,
}
"""What a candidate row keeps in its ``details`` JSON, with the empty value of each."""

RESULT_VIEW = (
    "method",
    "metric",
    "recipe",
    "recipe_text",
    "estimand",
    "interval",
    "main_task",
    "baseline",
    "subset",
    "agreement",
    "dropped_features",
)
"""The keys of a job's stored result that its ranking shows."""


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _finite(value: float | None) -> float | None:
    return None if value is None else _json_float(float(value))


def screen_row(result: engine.ScreenResult) -> dict[str, Any]:
    return {
        "probe_key": SCREEN_KEY,
        "replicate": -1,
        "aux": [],
        "metrics": engine.json_safe(result.to_dict()),
        "curve": [],
        "best_epoch": -1,
        "epochs": result.epochs,
        "error": None,
    }


def run_row(run: engine.ProbeRun) -> dict[str, Any]:
    return {
        "probe_key": run.spec.key,
        "replicate": run.spec.replicate,
        "aux": list(run.spec.aux),
        "metrics": {k: _json_float(v) for k, v in run.metrics.items()},
        "curve": [_json_float(v) for v in run.curve],
        "best_epoch": run.best_epoch,
        "epochs": run.epochs,
        "error": run.error,
    }


def probe_run(record: ProbeRunRecord) -> engine.ProbeRun:
    """A stored probe run back as the engine's (None = NaN), to resume a job."""
    return engine.ProbeRun(
        spec=engine.ProbeSpec(record.replicate, tuple(record.aux)),
        metrics={k: math.nan if v is None else float(v) for k, v in record.metrics.items()},
        curve=tuple(math.nan if v is None else float(v) for v in record.curve),
        best_epoch=record.best_epoch,
        epochs=record.epochs,
        error=record.error,
    )


def _details(values: dict[str, Any]) -> dict[str, object]:
    return {key: values.get(key) or empty() for key, empty in DETAILS.items()}


EVIDENCE_KEYS = ("labelled", "overlap", "label_correlation", "mutual_info")
"""A candidate's ``evidence`` in the ranking (from its labels alone, no training)."""


def _evidence(evidence: dict[str, Any] | None) -> dict[str, Any] | None:
    """A candidate's label evidence as stored (the engine's field names) in the
    ranking's names; None for a job from before label evidence."""
    if not evidence:
        return None
    return {
        "labelled": evidence.get("labelled"),
        "overlap": evidence.get("overlap"),
        "label_correlation": evidence.get("correlation"),
        "mutual_info": evidence.get("mutual_info"),
    }


def advice_rows(
    advice: engine.Advice, spec: JobSpec
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The job's result summary and its candidate_scores rows."""
    body = advice.to_dict()
    result = {
        "method": advice.method,
        "metric": advice.metric,
        "recipe": advice.recipe,
        "recipe_text": advice.recipe_text,
        "estimand": advice.estimand,
        "interval": advice.interval,
        "confidence": advice.confidence,
        "rounds": advice.rounds,
        "main_task": {
            "name": advice.main.name,
            "column": advice.main.column,
            "kind": advice.main.kind,
        },
        "baseline": {**body["baseline"]["metrics"], "seeds": advice.baseline.seeds},
        "dropped_features": advice.dropped_features,
        "subset": body.get("subset"),
        "agreement": body.get("agreement"),
        "chunks": advice.chunks,
    }
    scores = [
        {
            **{key: c.get(key) for key in SCORE_COLUMNS},
            "dataset_id": c["source"] or spec.dataset_id,
            "details": _details(c),
        }
        for c in body["candidates"]
    ]
    return result, scores


def answers_for(job: Job) -> dict[str, str]:
    """The recipe a job's ranking answers for and what its gains estimate: as stored
    with its result, else (a job from before recipes) as its spec implies."""
    result = job.result or {}
    spec = JobSpec.model_validate(job.spec)
    return {
        "recipe": result.get("recipe") or spec.recipe,
        "recipe_text": result.get("recipe_text") or spec.recipe_text,
        "estimand": result.get("estimand") or spec.estimand,
    }


def ranking_view(job: Job, scores: list[CandidateScore]) -> dict[str, Any]:
    """The ranking of a succeeded job (409 before)."""
    if job.status != JobStatus.SUCCEEDED or job.result is None:
        raise ProblemError(
            409,
            "Ranking not ready",
            f"The job is {job.status}; the ranking exists once it has succeeded.",
            type_="ranking-not-ready",
        )
    result = job.result
    candidates = []
    for s in scores:
        details = _details(s.details)
        details["evidence"] = _evidence(details["evidence"])  # type: ignore[arg-type]
        candidates.append({**{key: getattr(s, key) for key in SCORE_COLUMNS}, **details})
    return {
        "job_id": job.id,
        **{key: result.get(key) for key in RESULT_VIEW},
        **answers_for(job),
        "candidates": candidates,
        "dropped_features": result.get("dropped_features") or {},
        # A job from before racing trained one round of 95% intervals.
        "confidence": result.get("confidence", 0.95),
        "rounds": result.get("rounds", 1),
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
    "labelled",
    "overlap",
    "label_correlation",
    "mutual_info",
    "evidence_disagrees",
]
"""The ranking's CSV columns (then one ``proxy_<name>`` column per proxy score)."""


def ranking_rows(view: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for c in view["candidates"]:
        secondary = c["secondary"] or {}
        evidence = c.get("evidence") or {}
        rows.append(
            {
                **{k: c[k] for k in RANKING_COLUMNS if k in c and k != "evidence_disagrees"},
                "secondary_metric": secondary.get("metric"),
                "secondary_gain": secondary.get("gain"),
                **{k: evidence.get(k) for k in EVIDENCE_KEYS},
                "evidence_disagrees": bool(c.get("evidence_disagrees")),
                **{f"proxy_{k}": v for k, v in c["proxies"].items()},
            }
        )
    return rows


def runs_view(job: Job, runs: list[ProbeRunRecord]) -> dict[str, Any]:
    spec = JobSpec.model_validate(job.spec)
    names = [c.label for c in spec.candidates]
    return {
        "job_id": job.id,
        "metric": spec.metric,
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
