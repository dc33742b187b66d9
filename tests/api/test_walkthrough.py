"""Upload, submit, poll, rank — over HTTP, on SQLite and PostgreSQL — and the ranking is
the engine's ranking for the same spec and seed."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest

import engine
from tests.api.conftest import engine_advice
from tests.conftest import SMALL_BUDGET, TEST_RECIPE, family_csv, job_spec


def test_a_racing_job_takes_the_engines_rounds(client, worker, dataset):
    """A job that races (rounds of replicates for the open candidates) reaches the same
    rounds, replicates per candidate and gains through the service as in the engine."""
    budget = {**SMALL_BUDGET, "seeds": 2, "max_replicates": 6, "race_step": 2}
    response = client.post("/api/v1/jobs", json=job_spec(dataset["id"], budget=budget))
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["progress"]["total"] == 6 * 4 * 3  # every round it may run
    assert worker.run_one() is True
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "succeeded"
    ranking = client.get(f"/api/v1/jobs/{job['id']}/ranking").json()
    advice = engine_advice(budget)
    assert advice.rounds > 1  # this family keeps a candidate open after round 1
    assert ranking["rounds"] == advice.rounds
    # The lowest confidence of any interval: the last look's under O'Brien-Fleming
    # spending, less than Bonferroni's 1 - 0.05/3 over the same three looks.
    assert ranking["confidence"] == pytest.approx(advice.confidence)
    assert 0.95 < advice.confidence < 1 - 0.05 / 3
    assert ranking["baseline"]["seeds"] == advice.baseline.seeds
    for got, want in zip(ranking["candidates"], advice.candidates, strict=True):
        assert got["name"] == want.name
        assert got["seeds"] == want.seeds
        assert got["verdict"] == want.verdict
        assert got["gain"] == pytest.approx(want.gain, rel=1e-6, abs=1e-9)


def test_upload_profiles_the_table(client, dataset):
    assert dataset["rows"] == 400
    assert dataset["format"] == "csv"
    assert dataset["columns"] == 10
    profile = {c["name"]: c for c in dataset["profile"]}
    assert profile["y"]["kind"] == "regression"
    assert profile["x0"]["dtype"] == "number"
    assert profile["x0"]["missing"] == 0
    got = client.get(f"/api/v1/datasets/{dataset['id']}")
    assert got.status_code == 200
    assert got.json()["sha256"] == dataset["sha256"]


def test_walkthrough_matches_engine(client, worker, dataset):
    spec = job_spec(dataset["id"], name="walk")
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued"
    assert response.headers["Location"].endswith(f"/api/v1/jobs/{job['id']}")
    assert response.headers["Retry-After"] == "2"
    assert job["progress"] == {"done": 0, "total": 2 * 3 * 4, "fraction": 0.0}

    # Not ready yet: the ranking says so with a problem.
    early = client.get(f"/api/v1/jobs/{job['id']}/ranking")
    assert early.status_code == 409
    assert early.headers["content-type"].startswith("application/problem+json")

    assert worker.run_one() is True
    done = client.get(f"/api/v1/jobs/{job['id']}")
    body = done.json()
    assert body["status"] == "succeeded"
    assert body["progress"]["done"] == body["progress"]["total"] == 24
    assert body["attempts"] == 1
    assert "Retry-After" not in done.headers
    assert body["finished_at"] >= body["started_at"] >= body["created_at"]

    ranking = client.get(f"/api/v1/jobs/{job['id']}/ranking").json()
    advice = engine_advice()
    assert ranking["metric"] == "loss"
    # The ranking states the recipe it answers for, every knob, and its estimand.
    assert ranking["recipe"] == TEST_RECIPE == advice.recipe
    assert ranking["recipe_text"] == advice.recipe_text
    assert ranking["recipe_text"].startswith("quick (changed): trunk 16,")
    assert "at most 3 epochs" in ranking["recipe_text"]
    assert ranking["estimand"] == advice.estimand
    assert ranking["estimand"].startswith("expected gain in the main task's test loss")
    assert ranking["baseline"]["seeds"] == 2
    assert (ranking["confidence"], ranking["rounds"]) == (0.95, 1)  # one round: no racing
    assert ranking["baseline"]["loss"] == pytest.approx(advice.baseline.metrics["loss"], rel=1e-6)
    assert [c["name"] for c in ranking["candidates"]] == [c.name for c in advice.candidates]
    for got, want in zip(ranking["candidates"], advice.candidates, strict=True):
        assert got["gain"] == pytest.approx(want.gain, rel=1e-6, abs=1e-9)
        assert got["ci_low"] == pytest.approx(want.ci_low, rel=1e-6, abs=1e-9)
        assert got["q_value"] == pytest.approx(want.q_value, rel=1e-6)
        assert got["verdict"] == want.verdict
        assert got["secondary"]["metric"] == "r2"

    csv_response = client.get(f"/api/v1/jobs/{job['id']}/ranking", params={"format": "csv"})
    assert csv_response.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(csv_response.text))
    assert list(table["name"]) == [c["name"] for c in ranking["candidates"]]
    assert list(table["rank"]) == [1, 2, 3]

    runs = client.get(f"/api/v1/jobs/{job['id']}/runs").json()["items"]
    assert len(runs) == 2 * 4
    assert {tuple(r["candidates"]) for r in runs} == {
        (),
        ("rel_0_0.90",),
        ("rel_1_0.20",),
        ("noise_0",),
    }
    assert all(1 <= len(r["curve"]) <= 3 for r in runs)
    assert all(math.isfinite(r["metrics"]["loss"]) for r in runs)


def test_job_list_filters_and_paginates(client, dataset):
    ids = [client.post("/api/v1/jobs", json=job_spec(dataset["id"])).json()["id"] for _ in range(5)]
    client.post(f"/api/v1/jobs/{ids[0]}/cancel")
    page = client.get("/api/v1/jobs", params={"page_size": 2})
    assert page.status_code == 200
    body = page.json()
    assert [j["id"] for j in body["items"]] == ids[::-1][:2]
    assert 'rel="next"' in page.headers["Link"]
    seen = [j["id"] for j in body["items"]]
    token = body["next_page_token"]
    while token:
        body = client.get("/api/v1/jobs", params={"page_size": 2, "page_token": token}).json()
        seen += [j["id"] for j in body["items"]]
        token = body["next_page_token"]
    assert seen == ids[::-1]
    queued = client.get("/api/v1/jobs", params={"status": "queued"}).json()["items"]
    assert {j["id"] for j in queued} == set(ids[1:])
    canceled = client.get("/api/v1/jobs", params={"status": "canceled"}).json()["items"]
    assert [j["id"] for j in canceled] == [ids[0]]
    bad = client.get("/api/v1/jobs", params={"page_token": "not-a-token"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "page_token"


def test_cancel_queued_and_finished(client, worker, dataset):
    job = client.post("/api/v1/jobs", json=job_spec(dataset["id"])).json()
    canceled = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert canceled.status_code == 202
    assert canceled.json()["status"] == "canceled"
    assert worker.run_one() is False  # nothing left to claim
    again = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["type"].endswith("job-finished")


def test_idempotency_key_replays_and_rejects_other_bodies(client, dataset):
    spec = job_spec(dataset["id"])
    first = client.post("/api/v1/jobs", json=spec, headers={"Idempotency-Key": "k1"})
    second = client.post("/api/v1/jobs", json=spec, headers={"Idempotency-Key": "k1"})
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    other = client.post(
        "/api/v1/jobs", json=job_spec(dataset["id"], seed=5), headers={"Idempotency-Key": "k1"}
    )
    assert other.status_code == 422
    assert other.json()["type"].endswith("idempotency-mismatch")
    assert len(client.get("/api/v1/jobs").json()["items"]) == 1


def test_dataset_list_delete_and_in_use(client, dataset):
    second = client.post(
        "/api/v1/datasets", files={"file": ("b.csv", family_csv(seed=3))}, data={"name": "B"}
    ).json()
    assert second["name"] == "B"
    listed = client.get("/api/v1/datasets", params={"page_size": 1})
    assert listed.json()["items"][0]["id"] == second["id"]
    assert listed.json()["next_page_token"]
    job = client.post("/api/v1/jobs", json=job_spec(dataset["id"])).json()
    busy = client.delete(f"/api/v1/datasets/{dataset['id']}")
    assert busy.status_code == 409
    client.post(f"/api/v1/jobs/{job['id']}/cancel")
    storage = client.app.state.storage
    path = storage.path(f"{dataset['sha256'][:2]}/{dataset['sha256']}")
    assert path.exists()
    assert client.delete(f"/api/v1/datasets/{dataset['id']}").status_code == 204
    assert not path.exists()
    assert client.get(f"/api/v1/datasets/{dataset['id']}").status_code == 404
    # The finished job keeps its record.
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["dataset_id"] is None


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok", "database": None}
    assert client.get("/readyz").json()["database"] == "ok"


def test_openapi_documents_the_job_spec(client):
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/api/v1/jobs"]["post"]
    examples = post["requestBody"]["content"]["application/json"]["examples"]
    assert examples["churn"]["value"]["main_task"]["column"] == "churned"
    assert "202" in post["responses"]
    upload = schema["paths"]["/api/v1/datasets"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # plumbing is shared
def test_screening_and_subset_search_over_http_match_engine(client, worker):
    # Low-data regime with two clearly related candidates, so the subset search runs.
    family = engine.make_task_family(
        n_rows=1500, n_features=24, relatedness=(0.95, 0.9), n_noise=1, seed=0
    )
    content = family.frame.to_csv(index=False).encode()
    dataset = client.post("/api/v1/datasets", files={"file": ("f.csv", content)}).json()
    budget = {
        "seeds": 3,
        "max_replicates": 3,
        "epochs": 15,
        "hidden": [32],
        "batch_size": 64,
        "main_train_fraction": 0.05,
        "confirm_top": 2,
        "confirm_random": 1,
        "subset_search": True,
        "subset_budget": 2,
        "screen_epochs": 2,
    }
    spec = job_spec(
        dataset["id"],
        method="screen+probe",
        budget=budget,
        candidates=[{"column": c} for c in family.candidates],
    )
    job = client.post("/api/v1/jobs", json=spec).json()
    planned = job["progress"]["total"]
    assert planned == 3 * 2 + 3 * 4 * 15 + 2 * 3 * 15  # screening + probes + subset budget
    assert worker.run_one() is True
    state = client.get(f"/api/v1/jobs/{job['id']}").json()
    assert state["status"] == "succeeded", state["error"]
    ranking = client.get(f"/api/v1/jobs/{job['id']}/ranking").json()

    advice = engine.advise(
        family.frame,
        "y",
        list(family.candidates),
        seed=0,
        method="screen+probe",
        recipe=TEST_RECIPE,
        **{**budget, "hidden": tuple(budget["hidden"])},
    )
    assert ranking["method"] == "screen+probe"
    assert [c["name"] for c in ranking["candidates"]] == [c.name for c in advice.candidates]
    verdicts = [c["verdict"] for c in ranking["candidates"]]
    assert verdicts.count("not_probed") == 0  # 2 top + 1 random = every candidate
    assert verdicts[:2] == ["helpful", "helpful"]
    for got, want in zip(ranking["candidates"], advice.candidates, strict=True):
        assert set(got["proxies"]) == {"lookahead", "grad_cosine"}
        assert got["proxies"]["lookahead"] == pytest.approx(want.proxies["lookahead"], rel=1e-6)
        assert got["verdict"] == want.verdict
    expected = advice.to_dict()
    assert ranking["agreement"]["n"] == 3
    assert ranking["agreement"]["spearman"] == pytest.approx(expected["agreement"]["spearman"])
    subset = ranking["subset"]
    assert subset["members"] == expected["subset"]["members"]
    assert subset["stop_reason"] == expected["subset"]["stop_reason"]
    assert [step.get("members") for step in subset["path"]] == [
        step.get("members") for step in expected["subset"]["path"]
    ]
    if expected["subset"]["gain"] is None:  # no candidate was helpful: nothing to extend
        assert subset["gain"] is None
    else:
        assert subset["gain"] == pytest.approx(expected["subset"]["gain"], rel=1e-6)
    # The screening run is stored for resumption but is not a probe run.
    runs = client.get(f"/api/v1/jobs/{job['id']}/runs").json()["items"]
    assert all(r["key"] != "screen" for r in runs)
    pairs = [r for r in runs if len(r["candidates"]) == 2]
    assert len(pairs) == 3  # the subset tried, one probe per replicate
    assert subset["members"] == ["rel_0_0.95"]


def test_screen_only_reports_proxies(client, worker, dataset):
    spec = job_spec(dataset["id"], method="screen", budget={**SMALL_BUDGET, "screen_epochs": 2})
    job = client.post("/api/v1/jobs", json=spec).json()
    assert worker.run_one() is True
    ranking = client.get(f"/api/v1/jobs/{job['id']}/ranking").json()
    assert {c["verdict"] for c in ranking["candidates"]} == {"not_probed"}
    assert all(c["gain"] is None for c in ranking["candidates"])
    scores = [c["proxies"]["lookahead"] for c in ranking["candidates"]]
    assert scores == sorted(scores, reverse=True)
    bad = client.post(
        "/api/v1/jobs",
        json=job_spec(
            dataset["id"], method="screen", budget={**SMALL_BUDGET, "subset_search": True}
        ),
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "budget.subset_search"
