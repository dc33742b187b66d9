"""Soft parameter sharing through the API: a job that asks for it trains soft probes and
its ranking says so; one the engine cannot run soft is refused at submission."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import engine
from app.jobs.worker import Worker
from tests.conftest import job_spec


def test_a_soft_sharing_job_runs_and_its_ranking_names_the_sharing(
    client: TestClient, worker: Worker, dataset: dict[str, object]
) -> None:
    spec = job_spec(str(dataset["id"]))
    spec["budget"] = {**spec["budget"], "sharing": "soft_l2", "coupling": 0.5}  # type: ignore[dict-item]
    submitted = client.post("/api/v1/jobs", json=spec)
    assert submitted.status_code == 202, submitted.text
    assert submitted.json()["spec"]["budget"]["sharing"] == "soft_l2"
    assert worker.run_one()

    ranking = client.get(f"/api/v1/jobs/{submitted.json()['id']}/ranking")
    assert ranking.status_code == 200, ranking.text
    body = ranking.json()
    assert body["recipe_text"].endswith("soft parameter sharing (L2 distance, coupling 0.5)")
    assert len(body["candidates"]) == 3
    assert all(c["gain"] is not None for c in body["candidates"])

    hard = client.post("/api/v1/jobs", json=job_spec(str(dataset["id"])))
    assert worker.run_one()
    hard_text = client.get(f"/api/v1/jobs/{hard.json()['id']}/ranking").json()["recipe_text"]
    assert hard_text.endswith("hard parameter sharing")


@pytest.mark.parametrize(
    ("method", "budget", "why"),
    [
        ("screen+probe", {"sharing": "soft_trace"}, "its proxies need a shared trunk"),
        ("probe", {"sharing": "soft_l2", "subset_search": True}, "a soft probe pairs one"),
        ("probe", {"sharing": "soft"}, "not a sharing"),
    ],
)
def test_soft_sharing_is_refused_where_the_engine_cannot_train_it(
    client: TestClient, dataset: dict[str, object], method: str, budget: dict[str, object], why: str
) -> None:
    before = client.get("/api/v1/jobs").json()["items"]
    spec = job_spec(str(dataset["id"]), method=method)
    spec["budget"] = {**spec["budget"], **budget}  # type: ignore[dict-item]
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 422, (why, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == ["budget.sharing"], why
    if budget["sharing"] == "soft":
        assert all(name in response.text for name in engine.SHARINGS)  # the choices
    assert client.get("/api/v1/jobs").json()["items"] == before  # nothing was stored
