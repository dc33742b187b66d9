"""Metrics, structured logs and readiness, on real processes: /metrics exposes the named
series and they move when a job runs; a standalone worker serves its own series; JSON
logs carry job_id and worker_id on every line of job work; /readyz answers 503 while
the database is stopped and recovers when it is back."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from app.main import create_app
from tests.conftest import (
    HANG_S,
    ROOT,
    family_csv,
    free_port,
    job_spec,
    make_settings,
    start_server,
    start_worker,
)
from tests.worker.conftest import LONG, jobs, wait_for

PROBES = 3 * 4  # replicates x (baseline + 3 candidates)


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_metrics_move_when_a_job_runs_and_logs_are_json(tmp_path, settings):
    server, url = start_server(settings, tmp_path / "server.log", AUXSEL_LOG_FORMAT="json")
    try:
        before = scrape(httpx.get(f"{url}/metrics").text)
        ds = httpx.post(f"{url}/api/v1/datasets", files={"file": ("d.csv", family_csv())}).json()
        job = httpx.post(f"{url}/api/v1/jobs", json=job_spec(ds["id"], budget=LONG)).json()
        wait_for(
            lambda: httpx.get(f"{url}/api/v1/jobs/{job['id']}").json()["status"] == "succeeded",
            HANG_S,
            0.2,
        )
        response = httpx.get(f"{url}/metrics")
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = scrape(response.text)

    # HTTP: counts and latencies by method, route template and status.
    post = {"method": "POST", "route": "/api/v1/jobs", "status": "202"}
    assert value(after, "auxsel_http_requests_total", **post) == 1
    assert value(after, "auxsel_http_request_duration_seconds_count", **post) == 1
    polls = {"method": "GET", "route": "/api/v1/jobs/{job_id}", "status": "200"}
    assert value(after, "auxsel_http_requests_total", **polls) >= 1
    # Jobs by status and the queue, from the database at scrape time.
    assert value(before, "auxsel_jobs", status="succeeded") == 0
    assert value(after, "auxsel_jobs", status="succeeded") == 1
    assert ("auxsel_queue_depth", ()) in after
    assert value(after, "auxsel_queue_depth") == 0
    assert value(after, "auxsel_database_up") == 1
    # The worker's series (the in-process worker of `auxsel serve`).
    completed = "auxsel_probe_runs_completed_total"
    assert value(after, completed) - value(before, completed) == PROBES
    chunks = "auxsel_chunk_duration_seconds_count"
    assert value(after, chunks, executor="local") > value(before, chunks, executor="local")
    assert value(after, "auxsel_worker_heartbeats_total") > value(
        before, "auxsel_worker_heartbeats_total"
    )
    assert value(after, "auxsel_worker_last_heartbeat_timestamp_seconds") > 0
    assert value(after, "auxsel_worker_jobs_finished_total", status="succeeded") == 1

    # Every line is one JSON object; every line of the job's work names job and worker.
    lines = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= line.keys(), line
    work = [line for line in lines if line.get("job_id") == job["id"]]
    messages = " | ".join(line["message"] for line in work)
    assert "claimed" in messages, messages
    assert "succeeded" in messages, messages
    assert all(line.get("worker_id") for line in work)
    assert any(line["logger"] == "uvicorn.access" for line in lines)


def test_standalone_worker_serves_its_own_metrics(tmp_path, pg_url):
    settings = make_settings(tmp_path / "data", pg_url)
    port = free_port()
    with TestClient(create_app(settings)) as api:
        worker = start_worker(settings, tmp_path / "w.log", AUXSEL_METRICS_PORT=str(port))
        try:
            wait_for(lambda: _get(f"http://127.0.0.1:{port}/metrics") is not None, HANG_S, 0.2)
            before = scrape(_get(f"http://127.0.0.1:{port}/metrics") or "")
            api_before = scrape(api.get("/metrics").text)
            ds = api.post("/api/v1/datasets", files={"file": ("d.csv", family_csv())}).json()
            job_id = api.post("/api/v1/jobs", json=job_spec(ds["id"], budget=LONG)).json()["id"]
            wait_for(lambda: jobs(api)[job_id].status == "succeeded", HANG_S)
            after = scrape(_get(f"http://127.0.0.1:{port}/metrics") or "")
            api_side = scrape(api.get("/metrics").text)
        finally:
            assert worker.stop() == 0
    completed = "auxsel_probe_runs_completed_total"
    assert value(after, completed) - value(before, completed) == PROBES
    assert value(after, "auxsel_worker_heartbeats_total") > 0
    assert value(after, "auxsel_worker_jobs_finished_total", status="succeeded") == 1
    # The API process trained nothing; it reports the job from the database.
    assert value(api_side, completed) == value(api_before, completed)
    assert value(api_side, "auxsel_jobs", status="succeeded") == 1


def _get(url: str) -> str | None:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


# --- readiness with the database stopped ---------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _pg_ctl(data: Path, *args: str) -> None:
    bin_dir = _pg_bin()
    assert bin_dir is not None
    command = [str(bin_dir / "pg_ctl"), "-D", str(data), *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=HANG_S)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A PostgreSQL cluster of this test's own, so that stopping it disturbs nobody."""
    if _pg_bin() is None or (os.geteuid() != 0 and not shutil.which("initdb")):
        pytest.skip("PostgreSQL server binaries are not installed")
    directory = Path(f"/tmp/auxsel-pg-ready-{os.getpid()}")
    script = ROOT / "scripts" / "postgres.sh"
    url = subprocess.run(
        [str(script), "start", str(directory), str(free_port())],
        check=True,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    ).stdout.strip()
    try:
        yield url, directory / "data"
    finally:
        subprocess.run([str(script), "stop", str(directory)], check=False, timeout=HANG_S)


def test_readyz_is_503_while_the_database_is_down(tmp_path, own_postgres):
    url_db, data = own_postgres
    settings = make_settings(tmp_path / "data", url_db)
    server, url = start_server(settings, tmp_path / "server.log", worker=False)
    try:
        assert httpx.get(f"{url}/readyz").status_code == 200
        _pg_ctl(data, "-m", "fast", "-w", "stop")
        down = httpx.get(f"{url}/readyz", timeout=30)
        assert down.status_code == 503
        assert down.headers["content-type"].startswith("application/problem+json")
        assert down.json()["type"].endswith("not-ready")
        assert httpx.get(f"{url}/healthz").status_code == 200  # alive, just not ready
        metrics = httpx.get(f"{url}/metrics", timeout=30)
        assert metrics.status_code == 200
        assert value(scrape(metrics.text), "auxsel_database_up") == 0
        port = make_url(url_db).port
        _pg_ctl(
            data, "-w", "-l", str(data / "log"), "-o", f"-k /tmp -h 127.0.0.1 -p {port}", "start"
        )
        wait_for(lambda: httpx.get(f"{url}/readyz", timeout=30).status_code == 200, HANG_S, 0.5)
    finally:
        server.stop()
