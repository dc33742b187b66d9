"""Uploading the same bytes again returns the data set already stored (200, same id),
not a copy; different bytes, or another owner, get a new data set (201)."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from app.db.models import Dataset
from app.main import create_app
from app.security.auth import create_key
from app.services import datasets as service
from app.settings import Settings
from tests.conftest import HANG_S, family_csv


def _rows(client: TestClient) -> int:
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(Dataset)) or 0)


def _files(client: TestClient) -> list[str]:
    return list(client.app.state.storage.keys())  # type: ignore[attr-defined]


def test_the_same_bytes_again_return_the_stored_data_set(client: TestClient):
    content = family_csv(n_rows=80)
    first = client.post("/api/v1/datasets", files={"file": ("a.csv", content)})
    assert first.status_code == 201, first.text
    again = client.post("/api/v1/datasets", files={"file": ("renamed.csv", content)})
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers["Location"].endswith(f"/api/v1/datasets/{first.json()['id']}")
    assert _rows(client) == 1
    assert len(_files(client)) == 1
    assert len(client.get("/api/v1/datasets").json()["items"]) == 1

    other = client.post("/api/v1/datasets", files={"file": ("a.csv", family_csv(n_rows=81))})
    assert other.status_code == 201, other.text
    assert other.json()["id"] != first.json()["id"]
    assert _rows(client) == 2
    assert len(_files(client)) == 2


def test_a_deleted_data_set_is_uploaded_anew(client: TestClient):
    content = family_csv(n_rows=80)
    first = client.post("/api/v1/datasets", files={"file": ("a.csv", content)}).json()
    assert client.delete(f"/api/v1/datasets/{first['id']}").status_code == 204
    again = client.post("/api/v1/datasets", files={"file": ("a.csv", content)})
    assert again.status_code == 201
    assert again.json()["id"] != first["id"]
    assert len(_files(client)) == 1


def test_the_openapi_document_says_200_is_the_existing_copy(client: TestClient):
    responses = client.get("/openapi.json").json()["paths"]["/api/v1/datasets"]["post"]["responses"]
    assert "existing data set" in responses["200"]["description"]
    assert "201" in responses


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_each_owner_gets_their_own_data_set(settings: Settings):
    settings.auth = "on"
    content = family_csv(n_rows=80)
    with TestClient(create_app(settings)) as client:
        sessions = client.app.state.sessions  # type: ignore[attr-defined]
        alice, bob = (
            {"Authorization": f"Bearer {create_key(sessions, owner).key}"}
            for owner in ("alice", "bob")
        )
        files = {"file": ("a.csv", content)}
        mine = client.post("/api/v1/datasets", files=files, headers=alice)
        theirs = client.post("/api/v1/datasets", files=files, headers=bob)
        assert (mine.status_code, theirs.status_code) == (201, 201)
        assert mine.json()["id"] != theirs.json()["id"]
        again = client.post("/api/v1/datasets", files=files, headers=bob)
        assert (again.status_code, again.json()["id"]) == (200, theirs.json()["id"])
        assert _rows(client) == 2
        assert len(_files(client)) == 1  # the file is content-addressed, stored once
        # Alice deleting hers leaves Bob's file in place.
        assert client.delete(f"/api/v1/datasets/{mine.json()['id']}", headers=alice).status_code
        assert client.get(f"/api/v1/datasets/{theirs.json()['id']}", headers=bob).status_code == 200
        assert len(_files(client)) == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_identical_uploads_at_once_store_one_data_set(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    """PostgreSQL reads what is committed at each statement: the second of two identical
    uploads must wait for the first to commit before it looks for a copy. The first is
    held inside its write transaction (checked, inserted, not committed) until the
    second is seen waiting on the lock (pg_locks), then let go."""
    holding, release = threading.Event(), threading.Event()
    original = service.create

    def create(*args: Any) -> Any:
        dataset = original(*args)
        if not holding.is_set():
            holding.set()
            assert release.wait(HANG_S)
        return dataset

    monkeypatch.setattr(service, "create", create)
    answers: dict[str, httpx.Response] = {}
    content = family_csv(n_rows=90)

    def upload(label: str) -> None:
        answers[label] = client.post("/api/v1/datasets", files={"file": ("a.csv", content)})

    first = threading.Thread(target=upload, args=("first",))
    first.start()
    assert holding.wait(HANG_S)
    second = threading.Thread(target=upload, args=("second",))
    second.start()
    waiting = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    deadline = time.monotonic() + HANG_S
    while True:
        with client.app.state.sessions() as session:  # type: ignore[attr-defined]
            if session.scalar(waiting):
                break
        assert time.monotonic() < deadline, "the second upload never waited"
        time.sleep(0.05)
    release.set()
    first.join(HANG_S)
    second.join(HANG_S)
    assert answers["first"].status_code == 201, answers["first"].text
    assert answers["second"].status_code == 200, answers["second"].text
    assert answers["second"].json()["id"] == answers["first"].json()["id"]
    assert _rows(client) == 1
