from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

import engine
from app.jobs.worker import Worker
from app.main import create_app
from app.settings import Settings
from tests.conftest import SMALL_BUDGET, TEST_RECIPE, family_csv


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


def engine_advice(budget: Mapping[str, Any] = SMALL_BUDGET) -> engine.Advice:
    """The engine's own answer for :func:`tests.conftest.job_spec`'s job (family_csv,
    main y, its three candidates, seed 0) with ``budget``: what the service must match."""
    return engine.advise(
        pd.read_csv(io.BytesIO(family_csv())),
        "y",
        ["rel_0_0.90", "rel_1_0.20", "noise_0"],
        seed=0,
        recipe=TEST_RECIPE,
        **{**budget, "hidden": tuple(budget["hidden"])},
    )
