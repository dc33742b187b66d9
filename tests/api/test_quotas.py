"""Quotas and cost limits against a real server with API keys on: an owner over the
queued-job quota gets a 429 with the numbers and nothing is stored; the largest spec
the per-field limits allow is refused by its cost estimate; an ordinary job passes
comfortably and shows its estimate."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from app.db.models import Job
from app.db.session import make_engine, make_sessionmaker
from app.demo import DEMO_BUDGET, DEMO_RECIPE, demo_family
from app.security.auth import create_key
from tests.conftest import family_csv, job_spec, make_settings, start_server


@pytest.fixture
def server(tmp_path, db_url):
    """`auxsel serve` (auth on, no worker, so jobs stay queued) with a queued-job quota
    of 3; yields (url, settings, {owner: key})."""
    settings = make_settings(tmp_path / "data", db_url)
    proc, url = start_server(
        settings,
        tmp_path / "server.log",
        worker=False,
        AUXSEL_AUTH="on",
        AUXSEL_MAX_QUEUED_JOBS_PER_OWNER="3",
    )
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    keys = {owner: create_key(sessions, owner).key for owner in ("alice", "bob")}
    try:
        yield url, sessions, keys
    finally:
        proc.stop()
        engine.dispose()


def _client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _upload(client: httpx.Client, content: bytes, name: str = "d.csv") -> str:
    response = client.post("/api/v1/datasets", files={"file": (name, content)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _jobs(sessions, owner: str) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).where(Job.owner == owner)) or 0)


def test_queued_quota_refuses_with_the_numbers_and_stores_nothing(server):
    url, sessions, keys = server
    with _client(url, keys["alice"]) as alice, _client(url, keys["bob"]) as bob:
        dataset = _upload(alice, family_csv())
        ids = []
        for _ in range(3):
            response = alice.post("/api/v1/jobs", json=job_spec(dataset))
            assert response.status_code == 202, response.text
            ids.append(response.json()["id"])

        refused = alice.post("/api/v1/jobs", json=job_spec(dataset))
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["retry-after"]) > 0
        body = refused.json()
        assert body["type"].endswith("/queued-job-quota")
        assert body["quota"] == {
            "setting": "AUXSEL_MAX_QUEUED_JOBS_PER_OWNER",
            "limit": 3,
            "queued": 3,
            "running": 0,
        }
        assert "3 jobs queued" in body["detail"]
        assert "AUXSEL_MAX_QUEUED_JOBS_PER_OWNER" in body["detail"]
        assert _jobs(sessions, "alice") == 3  # the refused job was not stored

        # The quota is per owner: bob still submits.
        response = bob.post("/api/v1/jobs", json=job_spec(_upload(bob, family_csv())))
        assert response.status_code == 202, response.text

        # Canceling a queued job frees a place.
        assert alice.post(f"/api/v1/jobs/{ids[0]}/cancel").status_code in (200, 202)
        assert alice.post("/api/v1/jobs", json=job_spec(dataset)).status_code == 202
        assert alice.post("/api/v1/jobs", json=job_spec(dataset)).status_code == 429


def _wide_table(rows: int, candidates: int, features: int = 5) -> bytes:
    rng = np.random.default_rng(0)
    columns = {"y": rng.normal(size=rows).round(3)}
    columns.update({f"c{i}": rng.normal(size=rows).round(3) for i in range(candidates)})
    columns.update({f"x{i}": rng.normal(size=rows).round(3) for i in range(features)})
    buffer = io.BytesIO()
    pd.DataFrame(columns).to_parquet(buffer)
    return buffer.getvalue()


def test_largest_legal_spec_is_refused_with_its_estimate(server):
    """50 seeds x 1,000 epochs x 40 probes, 8 x 4,096 hidden, batch 65,536: within every
    per-field limit (and exactly at AUXSEL_MAX_PROBE_EPOCHS), but ~1e17+ FLOPs and a
    probe far over the memory limit: 422 with the numbers and the field to lower."""
    url, sessions, keys = server
    with _client(url, keys["alice"]) as alice:
        dataset = _upload(alice, _wide_table(20_000, 39), "wide.parquet")
        spec = {
            "dataset_id": dataset,
            "main_task": {"column": "y"},
            "candidates": [{"column": f"c{i}"} for i in range(39)],
            "budget": {
                "seeds": 50,
                "epochs": 1000,
                "hidden": [4096] * 8,
                "batch_size": 65536,
            },
        }
        response = alice.post("/api/v1/jobs", json=spec)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["type"].endswith("/job-cost-limit")
        estimate, limits = body["estimate"], body["limits"]
        assert estimate["probe_epochs"] == 50 * 1000 * 40
        assert estimate["flops"] > 1e19 > limits["flops"] == 1e17
        assert estimate["memory_mb"] > limits["memory_mb"] == 8192
        fields = {e["field"]: e["message"] for e in body["errors"]}
        assert "AUXSEL_MAX_JOB_FLOPS" in fields["budget.hidden"]  # 8 x 4,096 vs 32 wide
        assert "AUXSEL_MAX_JOB_MEMORY_MB" in fields["budget.batch_size"]
        assert f"{estimate['flops']:.2g}" in body["detail"]
        assert _jobs(sessions, "alice") == 0


def test_demo_job_passes_comfortably_and_shows_its_estimate(server):
    """`auxsel demo`'s job (3,000 rows, 32 features, 8 candidates, 5-20 seeds x 30 epochs)."""
    url, _, keys = server
    family = demo_family(0)
    with _client(url, keys["bob"]) as bob:
        dataset = _upload(bob, family.frame.to_csv(index=False).encode())
        spec = {
            "dataset_id": dataset,
            "main_task": {"column": family.main},
            "candidates": [{"column": c} for c in family.candidates],
            "recipe": DEMO_RECIPE,
            "budget": DEMO_BUDGET,
        }
        response = bob.post("/api/v1/jobs", json=spec)
        assert response.status_code == 202, response.text
        estimate = bob.get(response.headers["location"]).json()["estimate"]
    # The most it can take: every racing round (5 replicates, then 5 more at a time up
    # to 20) of 30 epochs.
    assert estimate["probe_epochs"] == 20 * (1 + len(family.candidates)) * 30
    assert 0 < estimate["flops"] < 1e17 / 10_000  # four orders of magnitude to spare
    assert 0 < estimate["memory_mb"] < 8192 / 8
    assert set(estimate) == {
        "flops",
        "memory_mb",
        "probe_epochs",
        "probe_memory_mb",
        "data_memory_mb",
    }
