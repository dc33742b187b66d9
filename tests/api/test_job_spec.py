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
from app.jobs.spec import ENGINE_ONLY, RECIPE_NOTE, JobSpec
from app.jobs.status import ACTIVE, FINISHED, JobStatus
from app.jobs.translate import engine_budget
from app.jobs.worker import Worker
from app.main import create_app
from app.settings import Settings
from engine.tasks import encode_task
from tests.conftest import family_csv, job_spec, make_settings


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
        bounds = engine.Budget.bounds(name)
        if name in engine.RECIPE_KNOBS:  # null: the recipe's value
            assert prop.get("default") is None, name
            assert prop["description"] == f"{bounds.doc} {RECIPE_NOTE}", name
        else:
            # (a null default is left out of the document)
            assert prop.get("default") == (list(value) if isinstance(value, tuple) else value)
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
    assert example["recipe"] == engine.DEFAULT_RECIPE
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
        spec, _runs, datasets, _inputs = JobRun(worker, claims.Claim(job_id, 0))._load(session)
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
    """Every other column is constant or all missing: their inferred role is ignore, so
    by default the job has no inputs; named in `features`, the engine drops them."""
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
    _refused(client, spec, "features", "has the role feature")
    _refused(client, {**spec, "features": ["flat", "empty"]}, "features", "No usable feature")


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


# --- the recipe (issue 13) ---------------------------------------------------------------

OLD_QUICK_BUDGET: dict[str, Any] = {
    "seeds": 5,
    "epochs": 30,
    "hidden": [32],
    "lam": 1.0,
    "batch_size": 128,
    "lr": 0.003,
    "patience": 8,
    "main_train_fraction": 1.0,
    "screen_epochs": None,
    "confirm_top": 5,
    "confirm_random": 2,
    "subset_search": False,
    "subset_budget": 6,
    "dropout": 0.0,
    "weight_decay": 0.0,
}
"""``jobs.spec["budget"]`` as stored before recipes: every knob explicit, at the defaults
of then (the short probe, now the ``quick`` recipe)."""


def _stored_before_recipes(budget: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": None,
        "dataset_id": "ds_0195f3c2a1b2c3d4e5f6",
        "main_task": {"column": "y", "kind": None, "name": None, "dataset_id": None},
        "candidates": [{"column": "a", "kind": None, "name": None, "dataset_id": None}],
        "features": None,
        "method": "probe",
        "metric": "loss",
        "seed": 0,
        "budget": budget,
    }


@pytest.mark.parametrize(
    ("budget", "implied"),
    [
        (OLD_QUICK_BUDGET, "quick"),
        ({**OLD_QUICK_BUDGET, "epochs": 40, "hidden": [64]}, "quick"),
        ({**OLD_QUICK_BUDGET, "hidden": [256, 64], "lr": 0.001, "epochs": 150}, "full"),
        # stored before dropout and weight decay were options
        (
            {k: v for k, v in OLD_QUICK_BUDGET.items() if k not in ("dropout", "weight_decay")},
            "quick",
        ),
    ],
)
def test_a_spec_stored_before_recipes_trains_the_same_budget(
    settings: Settings, budget: dict[str, Any], implied: str
) -> None:
    """Explicit knobs win: the engine budget is what it was (engine.Budget of the stored
    options), and the spec names the recipe its knobs are closest to."""
    spec = JobSpec.model_validate(_stored_before_recipes(budget))
    # ... and trained one round of its seeds (stored before racing too).
    before = engine.Budget.from_kwargs(
        **budget, max_replicates=budget["seeds"], memory_mb=settings.memory_mb
    )
    assert engine_budget(spec, settings) == before
    assert spec.recipe == implied
    assert spec.recipe_text == engine.describe_recipe(implied, before)
    # Stored again and read back, it is the same spec (now with its recipe named).
    assert JobSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_a_request_without_race_spending_gets_the_default(settings: Settings) -> None:
    """Only the jobs stored before spending schedules race under Bonferroni (migration
    0008 says so in their budgets, tests/db/test_migrations.py); a request that leaves
    ``race_spending`` out, even one naming every other budget field, gets the default."""
    full = JobSpec.model_validate(_stored_before_recipes({})).model_dump(mode="json")
    del full["budget"]["race_spending"]
    request = JobSpec.model_validate(full)
    assert request.budget.race_spending == engine.Budget().race_spending == "obf"
    assert engine_budget(request, settings).race_spending == "obf"
    explicit = JobSpec.model_validate(_stored_before_recipes({"race_spending": "bonferroni"}))
    assert engine_budget(explicit, settings).race_spending == "bonferroni"


def test_explicit_knobs_override_the_recipe(settings: Settings) -> None:
    base = _stored_before_recipes({"epochs": 3, "hidden": [16]})
    quick = engine_budget(JobSpec.model_validate({**base, "recipe": "quick"}), settings)
    assert (quick.epochs, quick.hidden) == (3, (16,))
    assert (quick.lr, quick.patience) == (engine.RECIPES["quick"]["lr"], 8)
    full = engine_budget(JobSpec.model_validate(base), settings)  # the default recipe
    assert (full.epochs, full.hidden, full.lr) == (3, (16,), engine.RECIPES["full"]["lr"])
    # Without a recipe, knobs that leave the recipe to matter do not name one.
    assert JobSpec.model_validate({**base, "budget": {"hidden": [32]}}).recipe == "full"
    bare = engine_budget(JobSpec.model_validate({**base, "budget": {}}), settings)
    assert bare == engine.recipe_budget(engine.DEFAULT_RECIPE, memory_mb=settings.memory_mb)
    assert bare.hidden == engine.Budget().hidden


def test_openapi_lists_the_recipes(client: TestClient) -> None:
    recipe = _schema(client, "JobSpec")["properties"]["recipe"]
    assert recipe["enum"] == list(engine.RECIPE_NAMES)
    assert recipe["default"] == engine.DEFAULT_RECIPE
    for name in engine.RECIPE_NAMES:  # every recipe's knobs, from the engine
        assert engine.describe_recipe(name, engine.recipe_budget(name)) in recipe["description"]
    ranking = _schema(client, "RankingOut")["properties"]
    assert {"recipe", "recipe_text", "estimand"} <= set(ranking)


def test_the_api_takes_a_recipe_and_refuses_an_unknown_one(client: TestClient, dataset) -> None:
    quick = client.post("/api/v1/jobs", json=job_spec(dataset["id"], recipe="quick"))
    assert quick.status_code == 202, quick.text
    assert quick.json()["spec"]["recipe"] == "quick"
    default = job_spec(dataset["id"])
    del default["recipe"]
    full = client.post("/api/v1/jobs", json=default)
    assert full.status_code == 202, full.text
    assert full.json()["spec"]["recipe"] == engine.DEFAULT_RECIPE
    assert full.json()["spec"]["budget"]["lr"] is None  # the recipe's, not a copy of it

    before = _job_count(client)
    unknown = client.post("/api/v1/jobs", json=job_spec(dataset["id"], recipe="medium"))
    assert unknown.status_code == 422, unknown.text
    assert unknown.headers["content-type"].startswith("application/problem+json")
    errors = unknown.json()["errors"]
    assert [e["field"] for e in errors] == ["recipe"], errors
    assert _job_count(client) == before


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_recipe_value_over_a_server_cap_is_refused_naming_the_recipe(
    tmp_path, db_url: str
) -> None:
    """The server's caps apply to the budget the job trains, the recipe's values too."""
    settings = make_settings(tmp_path / "data", db_url, max_hidden_width=128, max_epochs=100)
    with TestClient(create_app(settings)) as client:
        upload = client.post("/api/v1/datasets", files={"file": ("f.csv", family_csv())})
        spec = job_spec(upload.json()["id"], recipe="full", budget={"seeds": 2})
        response = client.post("/api/v1/jobs", json=spec)
        assert response.status_code == 422, response.text
        errors = {e["field"]: e["message"] for e in response.json()["errors"]}
        assert "AUXSEL_MAX_HIDDEN_WIDTH" in errors["budget.hidden[0]"]
        assert "The full recipe trains 256-64" in errors["budget.hidden[0]"]
        assert "The full recipe trains 150" in errors["budget.epochs"]
        fine = job_spec(upload.json()["id"], recipe="quick", budget={"seeds": 2})
        assert client.post("/api/v1/jobs", json=fine).status_code == 202
