"""API keys: required when auth is on, salted-hash storage, revocation, and each owner
sees only its own data sets and jobs (another owner's ids answer 404)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db.models import ApiKey
from app.main import create_app
from app.security.auth import auth_enabled, create_key, revoke_key
from app.settings import Settings
from tests.conftest import auxsel_env, family_csv, job_spec


@pytest.fixture
def secured(settings: Settings):
    settings.auth = "on"
    with TestClient(create_app(settings)) as client:
        sessions = client.app.state.sessions
        alice = create_key(sessions, "alice")
        bob = create_key(sessions, "bob")
        yield client, alice, bob


def _as(key):
    return {"Authorization": f"Bearer {key.key}"}


def test_requests_without_a_valid_key_are_401(secured):
    client, alice, _ = secured
    for response in (
        client.get("/api/v1/jobs"),
        client.get("/api/v1/jobs", headers={"Authorization": "Bearer auxsel_nope_nope"}),
        client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {alice.key}x"}),
        client.post("/api/v1/datasets", files={"file": ("d.csv", family_csv())}),
    ):
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/healthz").status_code == 200  # probes stay open
    assert client.get("/api/v1/jobs", headers=_as(alice)).status_code == 200


def test_owners_see_only_their_own(secured):
    client, alice, bob = secured
    ds = client.post(
        "/api/v1/datasets", files={"file": ("d.csv", family_csv())}, headers=_as(alice)
    ).json()
    job = client.post("/api/v1/jobs", json=job_spec(ds["id"]), headers=_as(alice)).json()
    assert client.get(f"/api/v1/datasets/{ds['id']}", headers=_as(bob)).status_code == 404
    assert client.delete(f"/api/v1/datasets/{ds['id']}", headers=_as(bob)).status_code == 404
    roles = {"roles": {"x0": "ignore"}}
    columns = f"/api/v1/datasets/{ds['id']}/columns"
    assert client.patch(columns, json=roles, headers=_as(bob)).status_code == 404
    mine = client.get(f"/api/v1/datasets/{ds['id']}", headers=_as(alice)).json()
    assert mine["roles"]["x0"]["role"] == "feature"  # bob changed nothing
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=_as(bob)).status_code == 404
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=_as(bob)).status_code == 404
    assert client.get(f"/api/v1/jobs/{job['id']}/ranking", headers=_as(bob)).status_code == 404
    assert client.get("/api/v1/jobs", headers=_as(bob)).json()["items"] == []
    assert client.get("/api/v1/datasets", headers=_as(bob)).json()["items"] == []
    # Bob cannot run a job on Alice's data either.
    stolen = client.post("/api/v1/jobs", json=job_spec(ds["id"]), headers=_as(bob))
    assert stolen.status_code == 422
    assert stolen.json()["errors"][0]["field"] == "dataset_id"
    assert [j["id"] for j in client.get("/api/v1/jobs", headers=_as(alice)).json()["items"]] == [
        job["id"]
    ]


def test_only_a_salted_hash_is_stored_and_revocation_is_immediate(secured):
    client, alice, _ = secured
    with client.app.state.sessions() as session:
        rows = list(session.scalars(select(ApiKey)))
    secret = alice.key.split("_", 2)[2]
    for row in rows:
        assert secret not in (row.secret_hash, row.salt)
        assert len(row.secret_hash) == 64
    assert len({row.salt for row in rows}) == len(rows)
    assert revoke_key(client.app.state.sessions, alice.id)
    assert client.get("/api/v1/jobs", headers=_as(alice)).status_code == 401
    assert revoke_key(client.app.state.sessions, alice.id) is False


@pytest.mark.parametrize(
    ("host", "mode", "expected"),
    [
        ("127.0.0.1", "auto", False),
        ("localhost", "auto", False),
        ("::1", "auto", False),
        ("0.0.0.0", "auto", True),
        ("10.1.2.3", "auto", True),
        ("127.0.0.1", "on", True),
        ("0.0.0.0", "off", False),
    ],
)
def test_auth_is_on_off_loopback(host, mode, expected):
    assert auth_enabled(Settings(host=host, auth=mode)) is expected


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_keys_cli(settings):
    env = auxsel_env(settings)

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "app.cli", "keys", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    created = cli("create", "--owner", "carol")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("auxsel_")
    key_id = key.split("_")[1]
    listed = cli("list")
    assert "carol" in listed.stdout
    assert key_id in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout
    assert cli("revoke", key_id).returncode == 0
    assert cli("revoke", key_id).returncode == 1
