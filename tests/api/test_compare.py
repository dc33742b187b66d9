"""GET /api/v1/jobs/compare?a=&b=: two jobs' rankings side by side, aligned by
candidate name, with what changed; owner checks and problem answers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.jobs.worker import Worker
from app.main import create_app
from app.security.auth import create_key
from app.settings import Settings
from tests.conftest import family_csv, job_spec

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _problem(response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return dict(response.json())


@SQLITE_ONLY
def test_two_rankings_side_by_side(client: TestClient, worker: Worker, dataset):
    ds = str(dataset["id"])
    first = client.post("/api/v1/jobs", json=job_spec(ds, name="first")).json()
    # Another seed, one candidate fewer and one more.
    second_spec = job_spec(
        ds, name="second", seed=1, candidates=["rel_0_0.90", "noise_0", "rel_1_0.20_x"]
    )
    refused = client.post("/api/v1/jobs", json=second_spec)
    assert refused.status_code == 422  # no such column; then a valid one
    second_spec["candidates"] = ["rel_0_0.90", "noise_0"]
    second = client.post("/api/v1/jobs", json=second_spec).json()
    # Before either has run: the ranking is not ready.
    not_ready = _problem(
        client.get("/api/v1/jobs/compare", params={"a": first["id"], "b": second["id"]}), 409
    )
    assert str(not_ready["type"]).endswith("/ranking-not-ready")
    assert str(not_ready["detail"]).startswith(f"Job a ({first['id']}): The job is queued")
    assert worker.run_one()
    assert worker.run_one()

    response = client.get("/api/v1/jobs/compare", params={"a": first["id"], "b": second["id"]})
    assert response.status_code == 200, response.text
    body = response.json()
    ranking_a = client.get(f"/api/v1/jobs/{first['id']}/ranking").json()
    ranking_b = client.get(f"/api/v1/jobs/{second['id']}/ranking").json()
    assert body["a"]["job_id"] == first["id"]
    assert body["a"]["name"] == "first"
    assert body["b"]["name"] == "second"
    assert body["notes"] == []  # same metric, main task and recipe
    names_a = [c["name"] for c in ranking_a["candidates"]]
    names_b = [c["name"] for c in ranking_b["candidates"]]
    assert [c["name"] for c in body["candidates"]] == names_a  # b's are all in a
    assert body["only_in_a"] == ["rel_1_0.20"]
    assert body["only_in_b"] == []
    by_name_b = {c["name"]: c for c in ranking_b["candidates"]}
    for row, ca in zip(body["candidates"], ranking_a["candidates"], strict=True):
        assert row["a"] == {k: ca[k] for k in ("rank", "gain", "ci_low", "ci_high", "verdict")}
        cb = by_name_b.get(row["name"])
        if cb is None:
            assert row["b"] is None
            assert row["rank_change"] is None
            assert row["gain_difference"] is None
            assert row["verdict_changed"] is None
            continue
        assert row["b"]["rank"] == cb["rank"]
        assert row["rank_change"] == ca["rank"] - cb["rank"]
        assert row["gain_difference"] == pytest.approx(cb["gain"] - ca["gain"])
        assert row["verdict_changed"] == (ca["verdict"] != cb["verdict"])
    assert set(names_b) <= set(names_a)

    # Swapped: b's order, and a's extra candidate is now only in b.
    swapped = client.get(
        "/api/v1/jobs/compare", params={"a": second["id"], "b": first["id"]}
    ).json()
    assert [c["name"] for c in swapped["candidates"]] == [*names_b, "rel_1_0.20"]
    assert swapped["only_in_b"] == ["rel_1_0.20"]
    # A job compared with itself changes nothing.
    same = client.get("/api/v1/jobs/compare", params={"a": first["id"], "b": first["id"]}).json()
    assert all(r["rank_change"] == 0 and r["gain_difference"] == 0 for r in same["candidates"])
    assert not any(r["verdict_changed"] for r in same["candidates"])


@SQLITE_ONLY
def test_missing_and_unknown_jobs_are_problems(client: TestClient, dataset):
    job = client.post("/api/v1/jobs", json=job_spec(str(dataset["id"]))).json()
    missing = _problem(client.get("/api/v1/jobs/compare", params={"a": job["id"]}), 422)
    assert missing["errors"][0]["field"] == "b"  # type: ignore[index]
    unknown = _problem(
        client.get("/api/v1/jobs/compare", params={"a": job["id"], "b": "job_nope"}), 404
    )
    assert "job_nope" in str(unknown["detail"])


@SQLITE_ONLY
def test_another_owners_job_is_not_found(settings: Settings):
    settings.auth = "on"
    with TestClient(create_app(settings)) as client:
        sessions = client.app.state.sessions  # type: ignore[attr-defined]
        alice, bob = (
            {"Authorization": f"Bearer {create_key(sessions, o).key}"} for o in ("alice", "bob")
        )
        ds = client.post(
            "/api/v1/datasets", files={"file": ("d.csv", family_csv())}, headers=alice
        ).json()
        job = client.post("/api/v1/jobs", json=job_spec(ds["id"]), headers=alice).json()
        other = client.post(
            "/api/v1/datasets", files={"file": ("d.csv", family_csv())}, headers=bob
        ).json()
        mine = client.post("/api/v1/jobs", json=job_spec(other["id"]), headers=bob).json()
        response = client.get(
            "/api/v1/jobs/compare", params={"a": mine["id"], "b": job["id"]}, headers=bob
        )
        assert str(_problem(response, 404)["detail"]).endswith(f"{job['id']!r}.")
