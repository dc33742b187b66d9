"""One typed job spec: the API advertises the engine's budget (defaults, bounds,
descriptions, example), stores the spec it validated, and the worker reads it back
with ``JobSpec.model_validate``; the job statuses are one vocabulary; and what the
worker would refuse for the data is refused at submission, with no job written."""

from __future__ import annotations

import io
import math
from dataclasses import fields
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

import engine
from app.db.models import Job
from app.db.repositories import claims
from app.db.repositories import jobs as repo
from app.jobs.attempt import JobRun
from app.jobs.spec import ENGINE_ONLY, JobSpec
from app.jobs.status import ACTIVE, FINISHED, JobStatus
from app.jobs.worker import Worker
from engine.tasks import encode_task
from tests.conftest import family_csv, job_spec


def _schema(client: TestClient, name: str) -> dict[str, Any]:
    document = client.get("/openapi.json").json()
    return dict(document["components"]["schemas"][name])


def _numeric(prop: dict[str, Any]) -> dict[str, Any]:
    """The numeric branch of ``int | None`` (anyOf), else the property itself."""
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    assert len(branches) == 1, prop
    return dict(branches[0])


def test_openapi_budget_is_the_engines_for_every_field(client: TestClient) -> None:
    budget = _schema(client, "BudgetIn")["properties"]
    default = engine.Budget()
    for field in fields(engine.Budget):
        name = field.name
        if name in ENGINE_ONLY:
            assert name not in budget, f"{name} is engine-only but the API takes it"
            continue
        prop = budget[name]
        value = getattr(default, name)
        # (a null default is left out of the document)
        assert prop.get("default") == (list(value) if isinstance(value, tuple) else value), name
        bounds = engine.Budget.bounds(name)
        assert prop.get("description") == (bounds.doc or None), name
        ranged = _numeric(prop)
        if bounds.min_items is not None:
            assert ranged["minItems"] == bounds.min_items, name
            ranged = ranged["items"]
        assert ranged.get("minimum") == bounds.ge, name
        assert ranged.get("exclusiveMinimum") == bounds.gt, name
        assert ranged.get("maximum") == bounds.le, name
        assert ranged.get("exclusiveMaximum") == bounds.lt, name
    assert set(budget) | ENGINE_ONLY == {f.name for f in fields(engine.Budget)}


def test_openapi_example_and_defaults_come_from_the_engine(client: TestClient) -> None:
    spec = _schema(client, "JobSpec")
    assert spec["properties"]["method"]["default"] == engine.DEFAULT_METHOD
    assert spec["properties"]["metric"]["default"] == engine.DEFAULT_METRIC
    (example,) = spec["examples"]
    assert example["method"] == engine.DEFAULT_METHOD
    assert example["metric"] == engine.DEFAULT_METRIC
    default = engine.Budget()
    for name, value in example["budget"].items():
        expected = getattr(default, name)
        assert value == (list(expected) if isinstance(expected, tuple) else expected), name
    operation = client.get("/openapi.json").json()["paths"]["/api/v1/jobs"]["post"]
    body = operation["requestBody"]["content"]["application/json"]
    assert body["examples"]["churn"]["value"] == example


def test_the_api_takes_exactly_the_engines_seed_minimum(client: TestClient, dataset) -> None:
    """The schema advertises the engine's minimum, and the API takes it: one replicate
    gives gains without intervals."""
    low = engine.Budget.bounds("seeds").ge
    assert _schema(client, "BudgetIn")["properties"]["seeds"]["minimum"] == low
    at = client.post("/api/v1/jobs", json=job_spec(dataset["id"], budget={"seeds": int(low)}))
    assert at.status_code == 202, at.text
    below = client.post("/api/v1/jobs", json=job_spec(dataset["id"], budget={"seeds": 0}))
    assert below.status_code == 422
    assert any(e["field"] == "budget.seeds" for e in below.json()["errors"])


def test_statuses_are_one_vocabulary(client: TestClient) -> None:
    assert set(JobStatus) == ACTIVE | FINISHED
    assert not ACTIVE & FINISHED
    assert {JobStatus.QUEUED, JobStatus.RUNNING} == ACTIVE
    document = client.get("/openapi.json").json()
    advertised = document["components"]["schemas"]["JobStatus"]["enum"]
    assert advertised == [s.value for s in JobStatus]
    assert repo.Job.status.default.arg == JobStatus.QUEUED


def test_a_stored_spec_is_what_the_worker_reads(
    client: TestClient, dataset, worker: Worker
) -> None:
    sent = job_spec(dataset["id"], candidates=[{"column": "rel_0_0.90", "name": "strong"}])
    response = client.post("/api/v1/jobs", json=sent)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        stored = session.get(Job, job_id)
        assert stored is not None
        spec, _runs, datasets = JobRun(worker, claims.Claim(job_id, 0))._load(session)
    assert isinstance(spec, JobSpec)
    assert spec == JobSpec.model_validate(sent)  # the API's defaults filled in, once
    assert spec.model_dump(mode="json") == stored.spec
    assert set(datasets) == {dataset["id"]}
    assert response.json()["spec"] == stored.spec


def _job_count(client: TestClient) -> int:
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def _refused(client: TestClient, spec: dict[str, Any], field: str, fix: str) -> None:
    before = _job_count(client)
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert any(e["field"] == field and fix in e["message"] for e in errors), errors
    assert _job_count(client) == before


def test_a_main_train_fraction_too_small_for_the_data_is_refused_at_submission(
    client: TestClient, dataset
) -> None:
    """400 rows: 240 train; 0.001 of them keeps none (the worker's split refuses it)."""
    fraction = 0.001
    spec = job_spec(dataset["id"], budget={"seeds": 2, "main_train_fraction": fraction})
    _refused(client, spec, "budget.main_train_fraction", "Raise main_train_fraction")
    fine = job_spec(dataset["id"], budget={"seeds": 2, "main_train_fraction": 0.05})
    assert client.post("/api/v1/jobs", json=fine).status_code == 202


def test_no_features_left_after_preparation_is_refused_at_submission(
    client: TestClient,
) -> None:
    """Every feature column is dropped by the engine (constant, or all missing)."""
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame(
        {
            "y": rng.integers(0, 2, n),
            "aux": rng.normal(size=n),
            "flat": np.ones(n),
            "empty": [math.nan] * n,
        }
    )
    upload = client.post(
        "/api/v1/datasets", files={"file": ("flat.csv", frame.to_csv(index=False).encode())}
    )
    assert upload.status_code == 201, upload.text
    spec = job_spec(upload.json()["id"], candidates=[{"column": "aux"}])
    _refused(client, spec, "features", "No usable feature columns")


def test_labels_are_judged_by_the_engines_rules_with_one_message(
    client: TestClient, dataset
) -> None:
    """The submission check (on the stored profile) and the engine (on the data) apply
    the same rules (engine.label_problems) and say the same thing."""
    spec = job_spec(dataset["id"], main_task={"column": "y", "kind": "binary"})
    _refused(client, spec, "main_task.kind", "binary needs exactly 2")
    errors = client.post("/api/v1/jobs", json=spec).json()["errors"]
    frame = pd.read_csv(io.BytesIO(family_csv()))
    with pytest.raises(engine.LabelError) as info:
        encode_task(engine.TaskSpec("y", kind="binary"), frame["y"])
    assert info.value.message in [e["message"] for e in errors]
