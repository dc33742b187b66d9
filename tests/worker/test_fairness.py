"""Fair sharing with real worker processes: a second owner's job is not stuck behind
the first owner's backlog, and a job past the wall-clock limit fails as time_limit
with its stored probe runs kept. Order and final states only; no timing."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from app.db.models import Job
from app.db.session import make_engine, make_sessionmaker
from app.jobs.failures import explain
from app.security.auth import create_key
from app.settings import Settings
from tests.conftest import HANG_S, family_csv, job_spec, start_server, start_worker
from tests.worker.conftest import LONG, jobs, runs, submit, wait_for


def test_worker_claims_second_owners_job_before_first_owners_backlog(tmp_path, settings):
    proc, url = start_server(settings, tmp_path / "server.log", worker=False, AUXSEL_AUTH="on")
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    worker = None
    try:
        order: dict[str, list[str]] = {}
        for owner, n in (("alice", 4), ("bob", 1)):  # alice's backlog first, then bob
            key = create_key(sessions, owner).key
            with httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
            ) as client:
                dataset = client.post("/api/v1/datasets", files={"file": ("d.csv", family_csv())})
                assert dataset.status_code == 201, dataset.text
                for _ in range(n):
                    response = client.post("/api/v1/jobs", json=job_spec(dataset.json()["id"]))
                    assert response.status_code == 202, response.text
                    order.setdefault(owner, []).append(response.json()["id"])

        worker = start_worker(settings, tmp_path / "worker.log")

        def states() -> dict[str, Job]:
            with sessions() as session:
                return {j.id: j for j in session.scalars(select(Job))}

        wait_for(lambda: all(j.status == "succeeded" for j in states().values()), HANG_S)
        claimed = [
            line.split("claimed ")[1].split(" ")[0]
            for line in worker.output().splitlines()
            if "claimed job_" in line
        ]
        alice, bob = order["alice"], order["bob"]
        # One worker: alice's oldest job, then bob's (served never), then alice's rest.
        assert claimed == [alice[0], bob[0], *alice[1:]]
        by_start = sorted(states().values(), key=lambda j: j.started_at)
        assert [j.id for j in by_start] == claimed
    finally:
        if worker is not None:
            assert worker.stop() == 0
        proc.stop()
        engine.dispose()


def test_job_past_time_limit_fails_and_keeps_its_runs(tmp_path, api, settings: Settings):
    """A job is interrupted after some chunks (SIGTERM gives it back with its runs);
    the next worker's wall-clock limit is tiny, so it stops the job at its first
    checkpoint: failed, reason time_limit, the stored runs still there."""
    chunked = {"AUXSEL_CHUNK_PROBES": "1"}
    (job_id,) = submit(api, 1, budget=LONG)
    first = start_worker(settings, tmp_path / "w1.log", **chunked)
    try:
        wait_for(lambda: len(runs(api, job_id)) >= 2, HANG_S, 0.02)
    finally:
        assert first.stop() == 0
    wait_for(lambda: jobs(api)[job_id].status == "queued", HANG_S)
    kept = {r.probe_key for r in runs(api, job_id)}
    assert 2 <= len(kept) < 12

    second = start_worker(
        settings, tmp_path / "w2.log", AUXSEL_JOB_TIME_LIMIT_S="0.000001", **chunked
    )
    try:
        wait_for(lambda: jobs(api)[job_id].status == "failed", HANG_S)
    finally:
        assert second.stop() == 0
    job = jobs(api)[job_id]
    assert job.error_reason == "time_limit"
    assert "AUXSEL_JOB_TIME_LIMIT_S" in (job.error_detail or "")
    assert {r.probe_key for r in runs(api, job_id)} == kept  # nothing lost, nothing new

    body = api.get(f"/api/v1/jobs/{job_id}").json()
    assert body["status"] == "failed"
    assert body["error"]["reason"] == "time_limit"
    assert "ran longer than this server allows" in explain(body["error"])  # dashboard, CLI
    listed = api.get(f"/api/v1/jobs/{job_id}/runs").json()["items"]
    assert {r["key"] for r in listed} == kept
