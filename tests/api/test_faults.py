"""Faults around uploads and training: a full or unwritable disk, an API killed in the
middle of an upload, and probes whose training diverges. Each ends in a clear answer
and leaves no half-written record behind."""

from __future__ import annotations

import errno
import os
import signal
import socket
import time

import pytest
from sqlalchemy import func, select

import engine
from app.data.storage import LocalStorage
from app.db.models import Dataset
from app.jobs.executors import LocalExecutor
from app.services.datasets import sweep_orphans
from tests.conftest import family_csv, job_spec, start_server


def _datasets(client) -> int:
    with client.app.state.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Dataset)))


def _leftovers(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


# --- storage faults ----------------------------------------------------------------


def test_disk_full_while_writing_an_upload_is_507(client, monkeypatch):
    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("app.data.storage.os.fsync", full)
    body = _problem(client.post("/api/v1/datasets", files={"file": ("d.csv", family_csv())}), 507)
    assert body["type"].endswith("/insufficient-storage")
    assert "nothing was stored" in body["detail"]
    assert _datasets(client) == 0
    assert _leftovers(client.app.state.storage.root) == []  # the partial file is gone
    monkeypatch.undo()
    ok = client.post("/api/v1/datasets", files={"file": ("d.csv", family_csv())})
    assert ok.status_code == 201  # and the service carries on once there is space


def test_read_only_storage_is_a_clear_500(client, monkeypatch):
    def read_only(_src, _dst):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("app.data.storage.os.replace", read_only)
    body = _problem(client.post("/api/v1/datasets", files={"file": ("d.csv", family_csv())}), 500)
    assert body["type"].endswith("/storage-unavailable")
    assert _datasets(client) == 0
    assert _leftovers(client.app.state.storage.root) == []


def test_unwritable_data_directory_is_a_clear_500(client, tmp_path):
    # Root ignores permission bits, so make the directory impossible to create: its
    # parent is a regular file.
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    client.app.state.storage = LocalStorage(blocker / "uploads")
    body = _problem(client.post("/api/v1/datasets", files={"file": ("d.csv", family_csv())}), 500)
    assert "nothing was stored" in body["detail"]
    assert _datasets(client) == 0


def test_janitor_removes_orphans_and_keeps_live_files(client, tmp_path):
    state = client.app.state
    storage = state.storage
    kept = client.post("/api/v1/datasets", files={"file": ("d.csv", family_csv())}).json()
    # What a crash between storing and committing leaves: a file no row references.
    orphan = storage.root / "ab" / ("ab" + "0" * 62)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x")
    # And a partial upload of a process that no longer exists.
    (storage.root / "tmp").mkdir(exist_ok=True)
    partial = storage.root / "tmp" / f"upload-999999999-1@{socket.gethostname()}"
    partial.write_bytes(b"partial")
    fresh_orphan_age = 10.0
    with state.sessions() as session:
        assert sweep_orphans(session, storage, grace_s=3600) == 1  # the dead process's
        assert orphan.exists()  # younger than the grace period: maybe another replica's
        old = time.time() - 2 * fresh_orphan_age
        os.utime(orphan, (old, old))
        assert sweep_orphans(session, storage, grace_s=fresh_orphan_age) == 1
    assert not orphan.exists()
    assert not partial.exists()
    assert storage.path(kept["sha256"][:2] + "/" + kept["sha256"]).exists()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_api_killed_mid_upload_leaves_nothing_after_restart(tmp_path, settings):
    """SIGKILL while a large upload streams in: the partial file is removed by the
    janitor when the API starts again, and no data set row exists."""
    server, url = start_server(settings, tmp_path / "s1.log", worker=False)
    port = int(url.rsplit(":", 1)[1])
    tmp_dir = settings.uploads_dir / "tmp"
    boundary = "xXxBOUNDARYxXx"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"'
        "\r\nContent-Type: text/csv\r\n\r\na,b\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(
            b"POST /api/v1/datasets HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            + f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
        )
        chunk = b"1,2\n" * 16384
        for data in (head, *[chunk] * 32):
            sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            partial = list(tmp_dir.glob("upload-*")) if tmp_dir.exists() else []
            if partial and partial[0].stat().st_size > 1 << 20:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the upload never reached storage")
        server.signal(signal.SIGKILL)  # mid-stream: the body has not ended
        server.stop()
    finally:
        sock.close()
    assert [p.name for p in tmp_dir.iterdir()], "the kill should leave a partial file"

    server, url = start_server(settings, tmp_path / "s2.log", worker=False)
    try:
        import httpx

        assert httpx.get(f"{url}/api/v1/datasets").json()["items"] == []
        assert list(tmp_dir.iterdir()) == []  # swept at start: its process is gone
        assert [p for p in settings.uploads_dir.rglob("*") if p.is_file()] == []
        assert "removed 1 orphaned upload file(s)" in server.output()
    finally:
        server.stop()


# --- training that diverges ----------------------------------------------------------


class DivergingExecutor(LocalExecutor):
    """The local executor, but the probes picked by ``diverges`` come back as the
    engine reports a probe whose loss became NaN."""

    def __init__(self, diverges):
        self.diverges = diverges

    def run(self, context, chunks, on_done, progress):
        def mark(runs):
            out = []
            for run in runs:
                if self.diverges(run.spec):
                    run = engine.ProbeRun(
                        run.spec,
                        dict.fromkeys(run.metrics, float("nan")),
                        (*run.curve[:1], float("nan")),
                        -1,
                        2,
                        "training diverged (non-finite loss) in epoch 2",
                    )
                out.append(run)
            on_done(out)

        super().run(context, chunks, mark, progress)


def test_diverged_probes_are_reported_on_their_candidate(client, worker, dataset):
    # Candidate 0 diverges in replicate 0; the others train normally.
    worker.executor = DivergingExecutor(lambda s: s.aux == (0,) and s.replicate == 0)
    job = client.post("/api/v1/jobs", json=job_spec(dataset["id"])).json()
    assert worker.run_one()
    status = client.get(f"/api/v1/jobs/{job['id']}").json()
    assert status["status"] == "succeeded", status
    ranking = client.get(f"/api/v1/jobs/{job['id']}/ranking").json()
    by_name = {c["name"]: c for c in ranking["candidates"]}
    hit = by_name["rel_0_0.90"]
    assert hit["errors"] == ["replicate 0: training diverged (non-finite loss) in epoch 2"]
    assert hit["seeds"] == 1  # only the replicate that trained is paired
    assert hit["verdict"] == "inconclusive"
    assert all(c["errors"] == [] for n, c in by_name.items() if n != "rel_0_0.90")
    assert ranking["baseline"]["errors"] == []
    csv = client.get(f"/api/v1/jobs/{job['id']}/ranking", params={"format": "csv"})
    assert csv.status_code == 200


def test_a_job_whose_baselines_all_diverge_fails_with_the_reason(client, worker, dataset):
    worker.executor = DivergingExecutor(lambda s: s.is_baseline)
    job = client.post("/api/v1/jobs", json=job_spec(dataset["id"])).json()
    assert worker.run_one()
    status = client.get(f"/api/v1/jobs/{job['id']}").json()
    assert status["status"] == "failed"
    assert status["error"]["reason"] == "diverged"
    assert "training diverged" in status["error"]["detail"]
    assert "budget.lr" in status["error"]["detail"]
    # The service lives on: the next job runs normally.
    worker.executor = LocalExecutor()
    nxt = client.post("/api/v1/jobs", json=job_spec(dataset["id"])).json()
    assert worker.run_one()
    assert client.get(f"/api/v1/jobs/{nxt['id']}").json()["status"] == "succeeded"


# --- the database failing under the API ----------------------------------------------


def test_database_outage_during_a_request_is_503_with_retry_after(client, monkeypatch):
    from fastapi.testclient import TestClient
    from sqlalchemy.exc import OperationalError

    def down(*_args, **_kwargs):
        raise OperationalError("SELECT", None, Exception("connection refused"))

    monkeypatch.setattr("app.db.repositories.jobs.page", down)
    raw = TestClient(client.app, raise_server_exceptions=False)
    response = raw.get("/api/v1/jobs")
    body = _problem(response, 503)
    assert body["type"].endswith("/database-unavailable")
    assert response.headers["Retry-After"] == "2"
