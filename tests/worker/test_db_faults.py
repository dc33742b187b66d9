"""The database failing under a running worker: transient errors in the worker's
store / renew / finish paths are retried with backoff (fencing intact), and a real
PostgreSQL restart mid-job loses or duplicates no probe run."""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

import app.jobs.attempt as attempt_module
import app.jobs.worker as worker_module
from app.db.session import write_transaction
from app.jobs.worker import Worker
from engine import pairwise_plan
from tests.conftest import HANG_S, ROOT, make_settings, start_worker
from tests.worker.conftest import LONG, jobs, runs, submit, wait_for


def _disconnect() -> OperationalError:
    return OperationalError("COMMIT", None, Exception("server closed the connection"))


def test_transient_errors_are_retried_without_duplicates(api, settings, monkeypatch):
    """Every 3rd worker transaction fails: half of them before COMMIT (nothing
    written), half after it (written, but the acknowledgement was lost)."""
    settings.chunk_probes = 2
    (job_id,) = submit(api, 1, budget=LONG)
    calls = {"n": 0, "lost_before": 0, "lost_after": 0}

    @contextmanager
    def flaky(factory):
        calls["n"] += 1
        fail = calls["n"] % 3 == 0
        with write_transaction(factory) as session:
            if fail and calls["n"] % 2 == 0:
                calls["lost_before"] += 1
                raise _disconnect()
            yield session
        if fail:
            calls["lost_after"] += 1
            raise _disconnect()

    # The claim loop (worker) and the job's attempt each open their transactions.
    monkeypatch.setattr(worker_module, "write_transaction", flaky)
    monkeypatch.setattr(attempt_module, "write_transaction", flaky)
    monkeypatch.setattr("app.db.retry.time.sleep", lambda _s: None)
    state = api.app.state
    worker = Worker(settings, state.sessions, state.storage, worker_id="flaky")
    assert worker.run_one()

    job = jobs(api)[job_id]
    assert job.status == "succeeded", (job.error_reason, job.error_detail)
    assert job.attempt == 1
    assert calls["lost_before"] > 0
    assert calls["lost_after"] > 0
    keys = [r.probe_key for r in runs(api, job_id)]
    assert len(keys) == len(set(keys)) == 12
    assert set(keys) == {s.key for s in pairwise_plan(3, 3)}
    assert api.get(f"/api/v1/jobs/{job_id}/ranking").status_code == 200


def test_a_database_gone_for_good_leaves_the_job_to_its_lease(api, settings, monkeypatch):
    """When retries run out the worker writes nothing more (no internal_error); the
    lease expires and the job is re-queued with its stored runs."""
    settings.chunk_probes = 2
    (job_id,) = submit(api, 1, budget=LONG)
    stores = {"n": 0}
    real_store = attempt_module.claims.store_runs

    def store_then_outage(*args, **kwargs):
        stores["n"] += 1
        if stores["n"] > 2:
            raise _disconnect()
        return real_store(*args, **kwargs)

    monkeypatch.setattr(attempt_module.claims, "store_runs", store_then_outage)
    monkeypatch.setattr("app.db.retry.time.sleep", lambda _s: None)
    clock = iter(range(0, 10_000, 7))
    monkeypatch.setattr("app.db.retry.time.monotonic", lambda: float(next(clock)))
    state = api.app.state
    worker = Worker(settings, state.sessions, state.storage, worker_id="doomed")
    assert worker.run_one()
    job = jobs(api)[job_id]
    assert job.status == "running"
    assert job.error_reason is None
    assert len(runs(api, job_id)) == 4  # the two chunks stored before the outage


def _accepts_connections(url: str) -> bool:
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 2})
    try:
        with engine.connect():
            return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


@pytest.mark.slow
def test_postgres_restart_under_a_running_worker(tmp_path, pg_url):
    """A worker process trains a job while PostgreSQL stops for 3 s and starts again:
    its heartbeats and stores fail meanwhile and are retried, it reconnects, and the
    job completes on its first attempt with every probe run stored exactly once."""
    pg_dir = os.environ.get("AUXSEL_TEST_POSTGRES_DIR")
    if not pg_dir:
        pytest.skip("needs AUXSEL_TEST_POSTGRES_DIR (scripts/test.sh sets it)")
    from fastapi.testclient import TestClient

    from app.main import create_app

    # A lease longer than the restart, so the job keeps its first attempt.
    settings = make_settings(tmp_path / "data", pg_url, lease_s=20.0)
    with TestClient(create_app(settings)) as api:
        (job_id,) = submit(api, 1, budget={**LONG, "epochs": 40})
        worker = start_worker(settings, tmp_path / "w.log", AUXSEL_CHUNK_PROBES="2")
        try:
            wait_for(lambda: len(runs(api, job_id)) >= 2, HANG_S, 0.05)
            # Frozen mid-job, the worker cannot finish before the outage however fast the
            # machine is; it wakes up while the server is down.
            worker.signal(signal.SIGSTOP)
            before = len(runs(api, job_id))
            outage = subprocess.Popen(
                [str(ROOT / "scripts" / "postgres.sh"), "outage", pg_dir, "3"]
            )
            try:
                wait_for(lambda: not _accepts_connections(pg_url), HANG_S, 0.05)
            finally:
                worker.signal(signal.SIGCONT)
                assert outage.wait(timeout=HANG_S) == 0
            wait_for(lambda: jobs(api)[job_id].status in ("succeeded", "failed"), HANG_S, 0.5)
        finally:
            log = worker.output()
            assert worker.stop() == 0, log
        job = jobs(api)[job_id]
        assert job.status == "succeeded", (job.error_reason, job.error_detail, log)
        assert job.attempt == 1
        assert before < 12
        keys = [r.probe_key for r in runs(api, job_id)]
        assert len(keys) == len(set(keys)) == 12
        assert set(keys) == {s.key for s in pairwise_plan(3, 3)}
        assert "Traceback" not in log
        # The outage was felt (and survived): failed heartbeats and retried writes.
        assert "heartbeat failed" in log or "transient database error" in log, log
