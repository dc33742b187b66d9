"""Workers as real processes: no double claims, crash recovery by lease expiry with
resume from stored probe runs, cancellation, graceful shutdown, and restarts."""

from __future__ import annotations

import signal

import pytest

from app.settings import Settings
from engine import pairwise_plan
from tests.conftest import HANG_S, make_settings, start_server, start_worker
from tests.worker.conftest import LONG, jobs, runs, submit, wait_for


def _ranking(api, job_id):
    body = api.get(f"/api/v1/jobs/{job_id}/ranking").json()
    return [(c["name"], c["gain"], c["ci_low"], c["ci_high"]) for c in body["candidates"]]


def test_two_workers_run_twenty_jobs_exactly_once(tmp_path, pg_url):
    settings = make_settings(tmp_path / "data", pg_url)
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(settings)) as api:
        ids = submit(api, 20)
        workers = [start_worker(settings, tmp_path / f"w{i}.log") for i in range(2)]
        try:
            wait_for(lambda: all(j.status == "succeeded" for j in jobs(api).values()), HANG_S)
        finally:
            logs = [w.output() for w in workers]
            for w in workers:
                assert w.stop() == 0
        final = jobs(api)
        assert all(final[i].attempt == 1 for i in ids)
        claims = [line for log in logs for line in log.splitlines() if "claimed job_" in line]
        claimed = [line.split("claimed ")[1].split(" ")[0] for line in claims]
        assert sorted(claimed) == sorted(ids)  # every job claimed once, by one worker
        assert all(log.count("claimed job_") > 0 for log in logs)  # both took work
        for job_id in ids:
            stored = runs(api, job_id)
            assert len(stored) == len({r.probe_key for r in stored}) == 2 * 4
            assert {r.attempt for r in stored} == {1}


def test_sigkill_mid_job_is_reclaimed_and_resumed(tmp_path, api, settings: Settings):
    chunked = {"AUXSEL_CHUNK_PROBES": "2"}
    # Long chunks: the remaining eight runs take far longer than the test's reaction
    # to the fourth, so the kill lands mid-job on a fast machine too.
    job_id, reference_id = submit(api, 2, budget={**LONG, "epochs": 60})
    api.post(f"/api/v1/jobs/{reference_id}/cancel")  # keep it for later

    first = start_worker(settings, tmp_path / "w1.log", **chunked)
    try:
        wait_for(lambda: len(runs(api, job_id)) >= 4, HANG_S, 0.02)
    finally:
        first.signal(signal.SIGKILL)
        first.stop()
    killed_with = {r.probe_key for r in runs(api, job_id)}
    assert jobs(api)[job_id].status == "running"  # nobody released it
    assert 4 <= len(killed_with) < 12

    second = start_worker(settings, tmp_path / "w2.log", **chunked)
    try:
        wait_for(lambda: jobs(api)[job_id].status == "succeeded", HANG_S)
    finally:
        log = second.output()
        second.stop()
    job = jobs(api)[job_id]
    assert job.attempt == 2
    assert job.lost_count == 1
    stored = runs(api, job_id)
    keys = [r.probe_key for r in stored]
    assert len(keys) == len(set(keys))  # no duplicates
    assert set(keys) == {s.key for s in pairwise_plan(3, 3)}  # no gaps
    # What the first worker stored was kept, not trained again.
    assert {r.probe_key for r in stored if r.attempt == 1} == killed_with
    assert f"12 probes ({len(killed_with)} stored)" in log

    # The same spec, uninterrupted, gives the same ranking.
    with api.app.state.sessions() as session:
        from app.db.models import Job

        reference = session.get(Job, reference_id)
        reference.status, reference.cancel_requested, reference.finished_at = "queued", False, None
        session.commit()
    third = start_worker(settings, tmp_path / "w3.log", **chunked)
    try:
        wait_for(lambda: jobs(api)[reference_id].status == "succeeded", HANG_S)
    finally:
        third.stop()
    assert _ranking(api, job_id) == _ranking(api, reference_id)


def test_cancel_running_job(tmp_path, api, settings):
    (job_id,) = submit(api, 1, budget={**LONG, "epochs": 400})
    worker = start_worker(settings, tmp_path / "w.log")
    try:
        wait_for(lambda: jobs(api)[job_id].progress_done > 0, HANG_S)
        response = api.post(f"/api/v1/jobs/{job_id}/cancel")
        assert response.status_code == 202
        assert response.json()["cancel_requested"] is True
        wait_for(lambda: jobs(api)[job_id].status == "canceled", HANG_S)
        assert worker.popen.poll() is None  # the worker lives on
    finally:
        assert worker.stop() == 0
    job = jobs(api)[job_id]
    assert job.progress_done < job.progress_total
    assert api.get(f"/api/v1/jobs/{job_id}/ranking").status_code == 409


def test_sigterm_releases_the_job_for_another_worker(tmp_path, api, settings):
    (job_id,) = submit(api, 1, budget={**LONG, "epochs": 400})
    worker = start_worker(settings, tmp_path / "w.log")
    wait_for(lambda: jobs(api)[job_id].progress_done > 0, HANG_S)
    assert worker.stop() == 0  # SIGTERM: exits cleanly
    job = jobs(api)[job_id]
    assert job.status == "queued"
    assert job.lost_count == 0
    assert job.worker_id is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_api_restart_keeps_queued_jobs(tmp_path, settings):
    server, url = start_server(settings, tmp_path / "s1.log", worker=False)
    import httpx

    from tests.conftest import family_csv, job_spec

    try:
        ds = httpx.post(f"{url}/api/v1/datasets", files={"file": ("d.csv", family_csv())}).json()
        ids = [
            httpx.post(f"{url}/api/v1/jobs", json=job_spec(ds["id"])).json()["id"] for _ in range(3)
        ]
    finally:
        _stop_server(server)
    server, url = start_server(settings, tmp_path / "s2.log", worker=True)
    try:
        for job_id in ids:
            assert httpx.get(f"{url}/api/v1/jobs/{job_id}").json()["status"] in (
                "queued",
                "running",
                "succeeded",
            )
        wait_for(
            lambda: all(
                httpx.get(f"{url}/api/v1/jobs/{i}").json()["status"] == "succeeded" for i in ids
            ),
            HANG_S,
            0.5,
        )
    finally:
        _stop_server(server)


def _stop_server(server):
    # uvicorn shuts down cleanly on SIGTERM, then re-raises the signal to exit with it.
    assert server.stop() in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.output()
