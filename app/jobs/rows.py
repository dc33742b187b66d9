"""Engine results as probe_runs / candidate_scores rows and back: what the worker stores
for each finished probe, the screening run and the job's result."""

from __future__ import annotations

import math
from typing import Any

import engine
from app.db.models import ProbeRunRecord

SCREEN_KEY = "screen"
"""The probe_runs key of a job's screening run; its ``metrics`` hold the proxy scores."""


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
    return engine.ProbeRun(
        spec=engine.ProbeSpec(record.replicate, tuple(record.aux)),
        metrics={k: math.nan if v is None else float(v) for k, v in record.metrics.items()},
        curve=tuple(math.nan if v is None else float(v) for v in record.curve),
        best_epoch=record.best_epoch,
        epochs=record.epochs,
        error=record.error,
    )


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def advice_rows(
    advice: engine.Advice, spec: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The job's result summary and its candidate_scores rows."""
    body = advice.to_dict()
    main_id = spec["dataset_id"]
    result = {
        "method": advice.method,
        "metric": advice.metric,
        "interval": advice.interval,
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
            "rank": c["rank"],
            "name": c["name"],
            "column": c["column"],
            "kind": c["kind"],
            "dataset_id": c["source"] or main_id,
            "gain": c["gain"],
            "se": c["se"],
            "ci_low": c["ci_low"],
            "ci_high": c["ci_high"],
            "rel_gain": c["rel_gain"],
            "p_value": c["p_value"],
            "q_value": c["q_value"],
            "verdict": c["verdict"],
            "seeds": c["seeds"],
            "details": {
                "secondary": c["secondary"],
                "disagreement": c["disagreement"],
                "proxies": c.get("proxies") or {},
                "metrics": c["metrics"],
                "per_seed": c["per_seed"],
                "errors": c["errors"],
            },
        }
        for c in body["candidates"]
    ]
    return result, scores
