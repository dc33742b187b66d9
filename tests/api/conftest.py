from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.jobs.worker import Worker
from app.main import create_app
from app.settings import Settings
from tests.conftest import family_csv


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The real app (migrations run at start) on a real database, no worker thread."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def worker(client: TestClient, settings: Settings) -> Worker:
    """A worker on the same database and storage, driven step by step by the test."""
    state = client.app.state  # type: ignore[attr-defined]
    return Worker(settings, state.sessions, state.storage, worker_id="test-worker")


@pytest.fixture
def dataset(client: TestClient) -> dict[str, object]:
    response = client.post("/api/v1/datasets", files={"file": ("family.csv", family_csv())})
    assert response.status_code == 201, response.text
    return dict(response.json())
