"""Fair claiming across owners and the per-owner running quota, on both databases: the
claim order is asserted by calling the claim function in sequence (no timing)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy.exc import DBAPIError

from app.db.models import Job, utcnow
from app.db.repositories import claims
from app.db.repositories import jobs as repo
from app.db.retry import is_transient
from app.db.session import write_transaction


def _queue(sessions, jobs: list[tuple[str, str]]) -> None:
    """Queue (job id, owner) pairs, oldest first (one second apart)."""
    start = utcnow() - timedelta(hours=1)
    with write_transaction(sessions) as session:
        for i, (job_id, owner) in enumerate(jobs):
            session.add(
                Job(
                    id=job_id,
                    owner=owner,
                    name=job_id,
                    spec={},
                    created_at=start + timedelta(seconds=i),
                )
            )


def _claim(sessions, limit: int = 0) -> str | None:
    with write_transaction(sessions) as session:
        claim = claims.claim(session, "w", 60, limit)
    return claim.job_id if claim else None


def _finish(sessions, job_id: str) -> None:
    with write_transaction(sessions) as session:
        job = session.get(Job, job_id)
        job.status, job.finished_at = "succeeded", utcnow()


def test_owner_b_is_served_before_owner_a_backlog(sessions):
    """Owner A queues five jobs, then owner B one: B's job is the second claimed, not
    the sixth, whether A's first job is still running or has finished."""
    _queue(sessions, [(f"a{i}", "alice") for i in range(5)] + [("b0", "bob")])
    assert _claim(sessions) == "a0"
    assert _claim(sessions) == "b0"  # bob runs nothing; alice runs a0
    assert [_claim(sessions) for _ in range(5)] == ["a1", "a2", "a3", "a4", None]

    _queue(sessions, [(f"c{i}", "carol") for i in range(3)] + [("b1", "bob")])
    # Carol runs nothing: she is first; then bob (one running, like carol now, but
    # his last job started before hers).
    assert _claim(sessions) == "c0"
    assert _claim(sessions) == "b1"


def test_round_robin_when_jobs_finish_between_claims(sessions):
    """One worker (each job finishes before the next claim): owners take turns, the one
    served longest ago first; jobs without an owner ('' with keys off) are one owner."""
    _queue(
        sessions,
        [("a0", "alice"), ("a1", "alice"), ("a2", "alice"), ("l0", ""), ("l1", ""), ("b0", "bob")],
    )
    order = []
    while (job_id := _claim(sessions)) is not None:
        order.append(job_id)
        _finish(sessions, job_id)
    assert order == ["a0", "l0", "b0", "a1", "l1", "a2"]


def test_running_quota_skips_an_owner_at_its_limit(sessions):
    _queue(sessions, [("a0", "alice"), ("a1", "alice"), ("a2", "alice"), ("b0", "bob")])
    assert _claim(sessions, limit=2) == "a0"
    assert _claim(sessions, limit=2) == "b0"
    assert _claim(sessions, limit=2) == "a1"
    assert _claim(sessions, limit=2) is None  # alice runs 2, bob has nothing queued
    _finish(sessions, "a0")
    assert _claim(sessions, limit=2) == "a2"
    with sessions() as session:
        assert repo.count_owned(session, "alice", "running") == 2


def test_concurrent_claims_never_exceed_the_running_quota(sessions):
    """Eight workers claim at once: the quota holds, and no job is claimed twice."""
    _queue(sessions, [(f"a{i}", "alice") for i in range(10)] + [("b0", "bob")])
    claimed: list[str | None] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        job_id = _claim(sessions, limit=3)
        with lock:
            claimed.append(job_id)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    got = [j for j in claimed if j is not None]
    assert len(got) == len(set(got)) == 4
    assert sorted(got) == ["a0", "a1", "a2", "b0"]
    with sessions() as session:
        assert repo.count_owned(session, "alice", "running") == 3


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_claim_stalled_inside_its_transaction_does_not_block_the_queue(sessions):
    """A worker paused (or hung) mid-claim holds the claim lock in an idle transaction:
    the server ends that transaction after CLAIM_IDLE_TIMEOUT_MS, the other workers'
    claims go on, and the stalled worker's late commit fails and claims nothing."""
    _queue(sessions, [("a0", "alice"), ("a1", "alice")])
    stalled = sessions()
    stalled.begin()
    first = claims.claim(stalled, "paused", 60)  # the lock is held; the transaction idles
    assert first is not None
    assert first.job_id == "a0"
    assert _claim(sessions) == "a0"  # waited for the server to end the stalled claim
    with pytest.raises(DBAPIError) as ended:
        stalled.commit()
    assert is_transient(ended.value)  # the worker loop waits and claims again
    stalled.close()
    with sessions() as session:
        job = session.get(Job, "a0")
        assert job.worker_id == "w"
        assert job.attempt == 1
