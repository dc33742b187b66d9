"""Engine results as database rows, and those rows as the API's views: the probe-run
row, the candidate row and the job's result summary are each shaped here, once."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TypedDict

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


class RunRow(TypedDict):
    """A probe_runs row as the worker stores it (the job and attempt added there)."""

    probe_key: str
    replicate: int
    aux: list[int]
    metrics: dict[str, object]
    curve: list[float | None]
    best_epoch: int
    epochs: int
    error: str | None


class CandidateView(TypedDict):
    """A candidate in the ranking: its candidate_scores columns, then its details."""

    rank: int
    name: str
    column: str
    kind: str
    dataset_id: str | None
    gain: float | None
    se: float | None
    ci_low: float | None
    ci_high: float | None
    rel_gain: float | None
    p_value: float | None
    q_value: float | None
    verdict: str
    seeds: int
    secondary: object
    disagreement: object
    proxies: dict[str, object]
    metrics: object
    per_seed: object
    errors: object
    evidence: dict[str, object] | None
    evidence_disagrees: object


class RankingView(TypedDict):
    """A succeeded job's ranking (GET /jobs/{id}/ranking, RankingOut). The values kept
    from the stored result are passed through as stored."""

    job_id: str
    method: object
    metric: object
    recipe: str
    recipe_text: str
    estimand: str
    interval: object
    main_task: object
    baseline: object
    subset: object
    agreement: object
    dropped_features: object
    candidates: list[CandidateView]
    confidence: object
    rounds: object


class RunView(TypedDict):
    """One stored probe run (GET /jobs/{id}/runs)."""

    key: str
    replicate: int
    candidates: list[str]
    metrics: dict[str, float | None]
    curve: list[float | None]
    best_epoch: int
    epochs: int
    error: str | None


class RunsView(TypedDict):
    job_id: str
    metric: str
    items: list[RunView]


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _finite(value: object) -> float | None:
    return None if value is None else _json_float(_number(value))


def _number(value: object) -> float:
    """A stored number (a probe's metrics are JSON numbers, or None for NaN)."""
    if value is None:
        return math.nan
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"not a number: {value!r}")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def screen_row(result: engine.ScreenResult) -> RunRow:
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


def run_row(run: engine.ProbeRun) -> RunRow:
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
        metrics={k: _number(v) for k, v in record.metrics.items()},
        curve=tuple(_number(v) for v in record.curve),
        best_epoch=record.best_epoch,
        epochs=record.epochs,
        error=record.error,
    )


def _details(values: Mapping[str, object]) -> dict[str, object]:
    return {key: values.get(key) or empty() for key, empty in DETAILS.items()}


EVIDENCE_KEYS = ("labelled", "overlap", "label_correlation", "mutual_info")
"""A candidate's ``evidence`` in the ranking (from its labels alone, no training)."""


def _evidence(evidence: object) -> dict[str, object] | None:
    """A candidate's label evidence as stored (the engine's field names) in the
    ranking's names; None for a job from before label evidence."""
    if not evidence or not isinstance(evidence, Mapping):
        return None
    return {
        "labelled": evidence.get("labelled"),
        "overlap": evidence.get("overlap"),
        "label_correlation": evidence.get("correlation"),
        "mutual_info": evidence.get("mutual_info"),
    }


def advice_rows(
    advice: engine.Advice, spec: JobSpec
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """The job's result summary and its candidate_scores rows."""
    body = advice.to_dict()
    result: dict[str, object] = {
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
        "baseline": {
            **body["baseline"]["metrics"],
            "seeds": advice.baseline.seeds,
            # Replicates whose baseline failed are left out of every pairing; say which.
            "errors": sorted(
                f"replicate {r.spec.replicate}: {r.error}"
                for r in advice.runs
                if r.spec.is_baseline and r.error
            ),
        },
        "dropped_features": advice.dropped_features,
        "subset": body.get("subset"),
        "agreement": body.get("agreement"),
        "chunks": advice.chunks,
    }
    scores: list[dict[str, object]] = [
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
        "recipe": _text(result.get("recipe")) or spec.recipe,
        "recipe_text": _text(result.get("recipe_text")) or spec.recipe_text,
        "estimand": _text(result.get("estimand")) or spec.estimand,
    }


def _candidate(score: CandidateScore) -> CandidateView:
    details = _details(score.details)
    proxies = details["proxies"]
    return {
        "rank": score.rank,
        "name": score.name,
        "column": score.column,
        "kind": score.kind,
        "dataset_id": score.dataset_id,
        "gain": score.gain,
        "se": score.se,
        "ci_low": score.ci_low,
        "ci_high": score.ci_high,
        "rel_gain": score.rel_gain,
        "p_value": score.p_value,
        "q_value": score.q_value,
        "verdict": score.verdict,
        "seeds": score.seeds,
        "secondary": details["secondary"],
        "disagreement": details["disagreement"],
        "proxies": dict(proxies) if isinstance(proxies, Mapping) else {},
        "metrics": details["metrics"],
        "per_seed": details["per_seed"],
        "errors": details["errors"],
        "evidence": _evidence(details["evidence"]),
        "evidence_disagrees": details["evidence_disagrees"],
    }


def ranking_view(job: Job, scores: list[CandidateScore]) -> RankingView:
    """The ranking of a succeeded job (409 before)."""
    if job.status != JobStatus.SUCCEEDED or job.result is None:
        raise ProblemError(
            409,
            "Ranking not ready",
            f"The job is {job.status}; the ranking exists once it has succeeded.",
            type_="ranking-not-ready",
        )
    result = job.result
    answers = answers_for(job)
    return {
        "job_id": job.id,
        "method": result.get("method"),
        "metric": result.get("metric"),
        "recipe": answers["recipe"],
        "recipe_text": answers["recipe_text"],
        "estimand": answers["estimand"],
        "interval": result.get("interval"),
        "main_task": result.get("main_task"),
        "baseline": result.get("baseline"),
        "subset": result.get("subset"),
        "agreement": result.get("agreement"),
        "dropped_features": result.get("dropped_features") or {},
        "candidates": [_candidate(s) for s in scores],
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


def ranking_rows(view: RankingView) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for candidate in view["candidates"]:
        c: Mapping[str, object] = candidate  # read by column name
        secondary = candidate["secondary"] if isinstance(candidate["secondary"], Mapping) else {}
        evidence = candidate["evidence"] or {}
        rows.append(
            {
                **{k: c[k] for k in RANKING_COLUMNS if k in c and k != "evidence_disagrees"},
                "secondary_metric": secondary.get("metric"),
                "secondary_gain": secondary.get("gain"),
                **{k: evidence.get(k) for k in EVIDENCE_KEYS},
                "evidence_disagrees": bool(c.get("evidence_disagrees")),
                **{f"proxy_{k}": v for k, v in candidate["proxies"].items()},
            }
        )
    return rows


def runs_view(job: Job, runs: list[ProbeRunRecord]) -> RunsView:
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
