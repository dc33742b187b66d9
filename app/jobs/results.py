"""Engine results as database rows, and those rows as the API's views: the probe-run
row, the candidate row and the job's result summary are each shaped here, once."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import TypedDict, TypeVar

from pydantic import TypeAdapter
from sqlalchemy import inspect

import engine
from app.db.models import CandidateScore, Job, ProbeRunRecord
from app.errors import ProblemError
from app.jobs.fractions import fraction_details, fraction_sentence, share_of
from app.jobs.next_steps import next_steps
from app.jobs.spec import JobSpec
from app.jobs.status import JobStatus
from app.jobs.views import (
    BaselineOut,
    CandidateOut,
    CoverageOut,
    EvidenceOut,
    FractionGainOut,
    FractionHintOut,
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
    "coverage": lambda: None,
    "fractions": list,
    "hint": lambda: None,
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
COVERAGE = TypeAdapter(CoverageOut)
FRACTIONS = TypeAdapter(list[FractionGainOut])
HINT = TypeAdapter(FractionHintOut)
SHARES = TypeAdapter(list[float])
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
    train_curves: dict[str, list[float | None]] | None
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


def screen_row(result: engine.ScreenResult, prefix: str = "") -> RunRow:
    return {
        "probe_key": prefix + SCREEN_KEY,
        "replicate": -1,
        "aux": [],
        "metrics": engine.json_safe(result.to_dict()),
        "curve": [],
        "train_curves": None,
        "best_epoch": -1,
        "epochs": result.epochs,
        "error": None,
    }


FIT = "fit."
"""Prefix of a probe run's ``fit`` losses among its stored ``metrics`` (no new column)."""


def run_row(run: engine.ProbeRun, prefix: str = "") -> RunRow:
    """A probe run as stored; ``prefix`` names its share (app/jobs/fractions.py)."""
    fit = {FIT + k: _json_float(v) for k, v in run.fit.items()}
    return {
        "probe_key": prefix + run.spec.key,
        "replicate": run.spec.replicate,
        "aux": list(run.spec.aux),
        "metrics": {**{k: _json_float(v) for k, v in run.metrics.items()}, **fit},
        "curve": [_json_float(v) for v in run.curve],
        "train_curves": {
            "main": [_json_float(v) for v in run.train_curve],
            "aux": [_json_float(v) for v in run.aux_curve],
        },
        "best_epoch": run.best_epoch,
        "epochs": run.epochs,
        "error": run.error,
    }


def probe_run(record: ProbeRunRecord) -> engine.ProbeRun:
    """A stored probe run back as the engine's (None = NaN), to resume a job."""
    return engine.ProbeRun(
        spec=engine.ProbeSpec(record.replicate, tuple(record.aux)),
        metrics={k: _number(v) for k, v in record.metrics.items() if not k.startswith(FIT)},
        curve=tuple(_number(v) for v in record.curve),
        best_epoch=record.best_epoch,
        epochs=record.epochs,
        error=record.error,
        fit={k[len(FIT) :]: _number(v) for k, v in record.metrics.items() if k.startswith(FIT)},
        train_curve=tuple(_number(v) for v in _train_curve(record, "main")),
        aux_curve=tuple(_number(v) for v in _train_curve(record, "aux")),
    )


def _train_curve(record: ProbeRunRecord, part: str) -> list[float | None]:
    """A stored run's training loss curve (``main`` or ``aux``); empty if not recorded."""
    return list((record.train_curves or {}).get(part) or [])


def _details(values: Mapping[str, object]) -> dict[str, object]:
    return {key: values.get(key) or empty() for key, empty in DETAILS.items()}


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


def coverage_details(coverage: Sequence[engine.LabelCoverage]) -> dict[str, dict[str, object]]:
    """Each candidate's label coverage as its row keeps it (``details["coverage"]``),
    by candidate name."""
    return {
        c.name: engine.json_safe({k: v for k, v in asdict(c).items() if k != "name"})
        for c in coverage
    }


def advice_rows(
    advice: engine.Advice, spec: JobSpec, coverage: Sequence[engine.LabelCoverage] = ()
) -> tuple[dict[str, object], list[dict[str, object]]]:
    """The job's result summary and its candidate_scores rows (each with its label
    ``coverage``, engine.label_coverage, when given)."""
    covered = coverage_details(coverage)
    shares = fraction_details(advice)
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
    if advice.fractions:
        result["main_train_fractions"] = [f.main_train_fraction for f in advice.fractions]
    scores: list[dict[str, object]] = [
        {
            **{key: c.get(key) for key in SCORE_COLUMNS},
            "dataset_id": c["source"] or spec.dataset_id,
            "details": _details(
                {**c, "coverage": covered.get(c["name"]), **shares.get(c["name"], {})}
            ),
        }
        for c in body["candidates"]
    ]
    return result, scores


PROVISIONAL = "provisional"
"""Key of a job's ``result`` that marks it as the provisional ranking of a job that has
not succeeded (it then also holds the candidate rows under ``scores``)."""


def provisional_result(
    advice: engine.Advice, spec: JobSpec, coverage: Sequence[engine.LabelCoverage] = ()
) -> dict[str, object]:
    """The ``result`` a running job stores after each chunk: the ranking of the runs
    stored so far, scored as the final one (:func:`advice_rows`), marked provisional
    and carrying its candidate rows (candidate_scores holds only final rankings)."""
    result, scores = advice_rows(advice, spec, coverage)
    safe: dict[str, object] = engine.json_safe(
        {**result, PROVISIONAL: True, "replicates": advice.baseline.seeds, "scores": scores}
    )
    return safe


def is_provisional(job: Job) -> bool:
    return bool((job.result or {}).get(PROVISIONAL)) and job.status != JobStatus.SUCCEEDED


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
    fractions = FRACTIONS.validate_python(details["fractions"])
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
        coverage=_optional(COVERAGE, details["coverage"]),
        evidence_disagrees=FLAG.validate_python(details["evidence_disagrees"]),
        fractions=fractions,
        helpful_at=[f.main_train_fraction for f in fractions if f.verdict == "helpful"],
        fraction_summary=fraction_sentence([f.model_dump() for f in fractions]),
        hint=_optional(HINT, details["hint"]),
    )


def ranking_view(job: Job, scores: list[CandidateScore]) -> RankingOut:
    """The final ranking of a succeeded job; before it (running, canceled, failed) the
    provisional ranking of the runs it stored, marked as such; 409 when there is none
    (no replicate finished yet)."""
    result = job.result
    provisional = is_provisional(job)
    if result is None or not (job.status == JobStatus.SUCCEEDED or provisional):
        raise ProblemError(
            409,
            "Ranking not ready",
            f"The job is {job.status}; the ranking exists once it has succeeded, and a "
            "provisional one once its first replicate has finished.",
            type_="ranking-not-ready",
        )
    if provisional:
        rows = TypeAdapter(list[dict[str, object]]).validate_python(result.get("scores") or [])
        scores = [CandidateScore(**row) for row in rows]
    answers = answers_for(job)
    baseline = BaselineOut.model_validate(result.get("baseline"))
    view = RankingOut(
        job_id=job.id,
        provisional=provisional,
        replicates=COUNT.validate_python(result.get("replicates", baseline.seeds)),
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
        baseline=baseline,
        candidates=[_candidate(s) for s in scores],
        subset=_optional(TABLE, result.get("subset")),
        agreement=_optional(TABLE, result.get("agreement")),
        dropped_features=NAMES.validate_python(result.get("dropped_features") or {}),
        main_train_fractions=SHARES.validate_python(result.get("main_train_fractions") or []),
    )
    view.next_steps = next_steps(view, JobSpec.model_validate(job.spec), job.status)
    return view


def runs_view(job: Job, runs: list[ProbeRunRecord]) -> ProbeRunList:
    spec = JobSpec.model_validate(job.spec)
    names = [c.label for c in spec.candidates]
    return ProbeRunList(
        job_id=job.id,
        metric=spec.metric,
        items=[
            ProbeRunOut(
                key=r.probe_key,
                main_train_fraction=share_of(r.probe_key),
                replicate=r.replicate,
                candidates=[names[i] for i in r.aux],
                metrics={k: _finite(v) for k, v in r.metrics.items() if not k.startswith(FIT)},
                fit={k[len(FIT) :]: _finite(v) for k, v in r.metrics.items() if k.startswith(FIT)},
                curve=[_finite(v) for v in r.curve],
                train_loss=[_finite(v) for v in _train_curve(r, "main")],
                aux_loss=[_finite(v) for v in _train_curve(r, "aux")],
                best_epoch=r.best_epoch,
                epochs=r.epochs,
                error=r.error,
            )
            for r in runs
            if r.replicate >= 0  # the screening run holds proxy scores, not a probe
        ],
    )
