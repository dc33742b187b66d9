"""Engine results as database rows, and those rows as the API's views: the probe-run
row, the candidate row and the job's result summary are each shaped here, once."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TypedDict, TypeVar

from pydantic import TypeAdapter
from sqlalchemy import inspect

import engine
from app.db.models import CandidateScore, Job, ProbeRunRecord
from app.errors import ProblemError
from app.jobs.spec import JobSpec
from app.jobs.status import JobStatus
from app.jobs.views import (
    BaselineOut,
    CandidateComparison,
    CandidateOut,
    CandidateSide,
    ComparedJob,
    EvidenceOut,
    JobComparison,
    MainTaskOut,
    MetricGainOut,
    ProbeRunList,
    ProbeRunOut,
    RankingOut,
)

T = TypeVar("T")

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

# Stored JSON (a job's result, a candidate's details) read back into the views' types,
# checked as the response model checks them.
TEXT = TypeAdapter(str)
NUMBER = TypeAdapter(float)
COUNT = TypeAdapter(int)
FLAG = TypeAdapter(bool)
NUMBERS = TypeAdapter(dict[str, float | None])
SERIES = TypeAdapter(list[float | None])
TEXTS = TypeAdapter(list[str])
TABLE = TypeAdapter(dict[str, object])
NAMES = TypeAdapter(dict[str, str])
RECIPE: TypeAdapter[engine.RecipeName] = TypeAdapter(engine.RecipeName)


def _optional(adapter: TypeAdapter[T], value: object) -> T | None:
    return None if value is None else adapter.validate_python(value)


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


def _evidence(evidence: object) -> EvidenceOut | None:
    """A candidate's label evidence as stored (the engine's field names) in the
    ranking's names; None for a job from before label evidence."""
    if not evidence or not isinstance(evidence, Mapping):
        return None
    return EvidenceOut(
        labelled=COUNT.validate_python(evidence.get("labelled")),
        overlap=COUNT.validate_python(evidence.get("overlap")),
        label_correlation=_optional(NUMBER, evidence.get("correlation")),
        mutual_info=_optional(NUMBER, evidence.get("mutual_info")),
    )


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


def _candidate(score: CandidateScore) -> CandidateOut:
    details = _details(score.details)
    proxies = details["proxies"]
    secondary = details["secondary"]
    return CandidateOut(
        rank=score.rank,
        name=score.name,
        column=score.column,
        kind=score.kind,
        dataset_id=score.dataset_id,
        gain=score.gain,
        se=score.se,
        ci_low=score.ci_low,
        ci_high=score.ci_high,
        rel_gain=score.rel_gain,
        p_value=score.p_value,
        q_value=score.q_value,
        verdict=score.verdict,
        seeds=score.seeds,
        secondary=MetricGainOut.model_validate(secondary) if secondary is not None else None,
        disagreement=FLAG.validate_python(details["disagreement"]),
        proxies=NUMBERS.validate_python(proxies) if isinstance(proxies, Mapping) else {},
        metrics=NUMBERS.validate_python(details["metrics"]),
        per_seed=SERIES.validate_python(details["per_seed"]),
        errors=TEXTS.validate_python(details["errors"]),
        evidence=_evidence(details["evidence"]),
        evidence_disagrees=FLAG.validate_python(details["evidence_disagrees"]),
    )


def ranking_view(job: Job, scores: list[CandidateScore]) -> RankingOut:
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
    return RankingOut(
        job_id=job.id,
        method=TEXT.validate_python(result.get("method")),
        metric=TEXT.validate_python(result.get("metric")),
        recipe=RECIPE.validate_python(answers["recipe"]),
        recipe_text=answers["recipe_text"],
        estimand=answers["estimand"],
        interval=TEXT.validate_python(result.get("interval")),
        # A job from before racing trained one round of 95% intervals.
        confidence=NUMBER.validate_python(result.get("confidence", 0.95)),
        rounds=COUNT.validate_python(result.get("rounds", 1)),
        main_task=MainTaskOut.model_validate(result.get("main_task")),
        baseline=BaselineOut.model_validate(result.get("baseline")),
        candidates=[_candidate(s) for s in scores],
        subset=_optional(TABLE, result.get("subset")),
        agreement=_optional(TABLE, result.get("agreement")),
        dropped_features=NAMES.validate_python(result.get("dropped_features") or {}),
    )


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


def ranking_rows(view: RankingOut) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for c in view.candidates:
        secondary = c.secondary
        evidence = c.evidence.model_dump() if c.evidence else {}
        rows.append(
            {
                **{
                    k: getattr(c, k)
                    for k in RANKING_COLUMNS
                    if k in CandidateOut.model_fields and k != "evidence_disagrees"
                },
                "secondary_metric": secondary.metric if secondary else None,
                "secondary_gain": secondary.gain if secondary else None,
                **{k: evidence.get(k) for k in EVIDENCE_KEYS},
                "evidence_disagrees": c.evidence_disagrees,
                **{f"proxy_{k}": v for k, v in c.proxies.items()},
            }
        )
    return rows


def runs_view(job: Job, runs: list[ProbeRunRecord]) -> ProbeRunList:
    spec = JobSpec.model_validate(job.spec)
    names = [c.label for c in spec.candidates]
    return ProbeRunList(
        job_id=job.id,
        metric=spec.metric,
        items=[
            ProbeRunOut(
                key=r.probe_key,
                replicate=r.replicate,
                candidates=[names[i] for i in r.aux],
                metrics={k: _finite(v) for k, v in r.metrics.items()},
                curve=[_finite(v) for v in r.curve],
                best_epoch=r.best_epoch,
                epochs=r.epochs,
                error=r.error,
            )
            for r in runs
            if r.replicate >= 0  # the screening run holds proxy scores, not a probe
        ],
    )


def _side(candidate: CandidateOut | None) -> CandidateSide | None:
    if candidate is None:
        return None
    return CandidateSide(
        rank=candidate.rank,
        gain=candidate.gain,
        ci_low=candidate.ci_low,
        ci_high=candidate.ci_high,
        verdict=candidate.verdict,
    )


def _compared(view: RankingOut, name: str) -> ComparedJob:
    return ComparedJob(
        job_id=view.job_id,
        name=name,
        metric=view.metric,
        recipe=view.recipe,
        recipe_text=view.recipe_text,
        main_task=view.main_task,
        baseline=view.baseline,
    )


def compare_view(a: RankingOut, a_name: str, b: RankingOut, b_name: str) -> JobComparison:
    """Two rankings aligned by candidate name, with what changed from a to b."""
    in_a = {c.name: c for c in a.candidates}
    in_b = {c.name: c for c in b.candidates}
    order = [c.name for c in a.candidates] + [c.name for c in b.candidates if c.name not in in_a]
    rows = []
    for name in order:
        left, right = in_a.get(name), in_b.get(name)
        rows.append(
            CandidateComparison(
                name=name,
                a=_side(left),
                b=_side(right),
                rank_change=left.rank - right.rank if left and right else None,
                gain_difference=(
                    right.gain - left.gain
                    if left and right and left.gain is not None and right.gain is not None
                    else None
                ),
                verdict_changed=left.verdict != right.verdict if left and right else None,
            )
        )
    notes = []
    if a.metric != b.metric:
        notes.append(f"The jobs rank by different metrics ({a.metric} and {b.metric}).")
    if (a.main_task.column, a.main_task.kind) != (b.main_task.column, b.main_task.kind):
        notes.append(
            f"The main tasks differ ({a.main_task.column} [{a.main_task.kind}] and "
            f"{b.main_task.column} [{b.main_task.kind}])."
        )
    if a.recipe_text != b.recipe_text:
        notes.append(f"The recipes differ ({a.recipe_text}; {b.recipe_text}).")
    return JobComparison(
        a=_compared(a, a_name),
        b=_compared(b, b_name),
        notes=notes,
        candidates=rows,
        only_in_a=[n for n in in_a if n not in in_b],
        only_in_b=[n for n in in_b if n not in in_a],
    )
