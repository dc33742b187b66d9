"""The job queue's SQL on both databases: atomic claims, fencing of stale workers,
idempotent probe-run storage, and the reaper's lease rules."""

from __future__ import annotations

from datetime import timedelta

from app.db.models import Job, utcnow
from app.db.repositories import claims
from app.db.repositories import jobs as repo
from app.db.session import write_transaction


def _job(sessions, job_id="job_a", **fields):
    with write_transaction(sessions) as session:
        session.add(Job(id=job_id, owner="o", name=job_id, spec={}, created_at=utcnow(), **fields))


def _run(key):
    return {
        "probe_key": key,
        "replicate": 0,
        "aux": [],
        "metrics": {"loss": 1.0},
        "curve": [1.0],
        "best_epoch": 0,
        "epochs": 1,
        "error": None,
    }


def test_claim_takes_oldest_once(sessions):
    _job(sessions, "job_1")
    _job(sessions, "job_2")
    with write_transaction(sessions) as s:
        first = claims.claim(s, "w1", 60)
    with write_transaction(sessions) as s:
        second = claims.claim(s, "w2", 60)
    with write_transaction(sessions) as s:
        third = claims.claim(s, "w3", 60)
    assert (first.job_id, second.job_id, third) == ("job_1", "job_2", None)
    assert first.attempt == 1


def test_stale_worker_is_fenced_out(sessions):
    _job(sessions)
    with write_transaction(sessions) as s:
        old = claims.claim(s, "w1", 60)
        assert claims.store_runs(s, old, [_run("r0:base")], 60)
    # The lease expires; the reaper re-queues; another worker takes over.
    with write_transaction(sessions) as s:
        s.get(Job, "job_a").lease_expires_at = utcnow() - timedelta(seconds=1)
    with write_transaction(sessions) as s:
        assert claims.reap(s, max_attempts=3)["requeued"] == 1
    with write_transaction(sessions) as s:
        new = claims.claim(s, "w2", 60)
    assert new.attempt == 2
    with write_transaction(sessions) as s:
        assert claims.store_runs(s, old, [_run("r0:c0")], 60) is False
        assert claims.renew(s, old, 60) is None
        assert claims.finish(s, old, status="succeeded") is False
    with write_transaction(sessions) as s:
        # Storing the same run twice is harmless; the first copy stays.
        assert claims.store_runs(s, new, [_run("r0:base"), _run("r0:c1")], 60)
        assert claims.store_runs(s, new, [_run("r0:c1")], 60)
    with sessions() as s:
        stored = {r.probe_key: r.attempt for r in repo.stored_runs(s, "job_a")}
    assert stored == {"r0:base": 1, "r0:c1": 2}


def test_reaper_fails_after_max_lost_leases_and_honours_cancel(sessions):
    expired = utcnow() - timedelta(seconds=5)
    _job(sessions, "job_lost", status="running", attempt=3, lost_count=2, lease_expires_at=expired)
    _job(
        sessions,
        "job_cancel",
        status="running",
        attempt=1,
        cancel_requested=True,
        lease_expires_at=expired,
    )
    _job(sessions, "job_again", status="running", attempt=1, lease_expires_at=expired)
    _job(
        sessions,
        "job_alive",
        status="running",
        attempt=1,
        lease_expires_at=utcnow() + timedelta(seconds=60),
    )
    with write_transaction(sessions) as s:
        counts = claims.reap(s, max_attempts=3)
    assert counts == {"canceled": 1, "failed": 1, "requeued": 1}
    with sessions() as s:
        lost = s.get(Job, "job_lost")
        assert (lost.status, lost.error_reason) == ("failed", "worker_lost")
        assert s.get(Job, "job_cancel").status == "canceled"
        assert s.get(Job, "job_again").status == "queued"
        assert s.get(Job, "job_again").lost_count == 1
        assert s.get(Job, "job_alive").status == "running"


def test_renew_reports_cancel_requests(sessions):
    _job(sessions)
    with write_transaction(sessions) as s:
        claim = claims.claim(s, "w1", 60)
    with write_transaction(sessions) as s:
        assert claims.renew(s, claim, 60, progress=5) is False
        s.get(Job, "job_a").cancel_requested = True
    with write_transaction(sessions) as s:
        assert claims.renew(s, claim, 60) is True
    with sessions() as s:
        assert s.get(Job, "job_a").progress_done == 5
