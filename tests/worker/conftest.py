from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db.models import Job, ProbeRunRecord
from app.main import create_app
from app.settings import Settings
from tests.conftest import HANG_S, family_csv, job_spec

# A job budget long enough (a few seconds of training) for a test to act while it
# trains: write heartbeats, kill a worker, fail the database.
LONG = {
    "seeds": 3,
    "max_replicates": 3,
    "epochs": 12,
    "hidden": [32],
    "batch_size": 32,
    "patience": 0,
}


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """The app in-process (to submit and read jobs); workers run as real processes."""
    with TestClient(create_app(settings)) as client:
        yield client


def submit(api: TestClient, n: int = 1, **overrides: object) -> list[str]:
    dataset = api.post("/api/v1/datasets", files={"file": ("d.csv", family_csv())}).json()
    ids = []
    for _ in range(n):
        response = api.post("/api/v1/jobs", json=job_spec(dataset["id"], **overrides))
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def wait_for(predicate: Callable[[], bool], timeout: float = HANG_S, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError("condition not reached in time")


def jobs(api: TestClient) -> dict[str, Job]:
    with api.app.state.sessions() as session:  # type: ignore[attr-defined]
        return {j.id: j for j in session.scalars(select(Job))}


def runs(api: TestClient, job_id: str) -> list[ProbeRunRecord]:
    with api.app.state.sessions() as session:  # type: ignore[attr-defined]
        query = select(ProbeRunRecord).where(ProbeRunRecord.job_id == job_id)
        return list(session.scalars(query))
