"""Scaling out: two ``auxsel worker`` processes sharing one PostgreSQL queue finish a
batch of jobs faster than one. Each worker trains on one torch thread
(AUXSEL_TORCH_THREADS=1), so on a 2-core machine the ideal ratio is 2.

Run alone to see the ratio:
    scripts/test.sh tests/worker/test_scaling.py -s
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import family_csv, job_spec, make_settings, start_worker
from tests.worker.conftest import jobs, wait_for

JOBS = 8
BUDGET = {"seeds": 3, "epochs": 8, "hidden": [32], "batch_size": 32, "patience": 0}


@pytest.mark.slow
def test_two_workers_finish_a_batch_faster_than_one(tmp_path, pg_url, record_property):
    settings = make_settings(tmp_path / "data", pg_url)
    with TestClient(create_app(settings)) as api:
        ds = api.post("/api/v1/datasets", files={"file": ("d.csv", family_csv())}).json()

        def run(n_jobs: int) -> float:
            started = time.monotonic()
            ids = []
            for _ in range(n_jobs):
                response = api.post("/api/v1/jobs", json=job_spec(ds["id"], budget=BUDGET))
                ids.append(response.json()["id"])
            wait_for(lambda: all(jobs(api)[i].status == "succeeded" for i in ids), 300, 0.2)
            return time.monotonic() - started

        def batch(n_workers: int) -> float:
            workers = [
                start_worker(settings, tmp_path / f"w{n_workers}-{i}.log") for i in range(n_workers)
            ]
            try:
                # Time the work, not the start-up: every worker first finishes a warm-up
                # job (its first job pays for loading the table and torch's first calls).
                for _ in range(5):
                    run(n_workers)
                    if all("succeeded" in w.output() for w in workers):
                        break
                assert all("succeeded" in w.output() for w in workers)
                elapsed = run(JOBS)
            finally:
                for w in workers:
                    assert w.stop() == 0
            # Every worker took part: one queue, shared.
            for w in workers:
                assert "claimed" in w.output()
            return elapsed

        one = batch(1)
        two = batch(2)
    ratio = one / two
    record_property("one_worker_s", round(one, 2))
    record_property("two_workers_s", round(two, 2))
    record_property("speedup", round(ratio, 2))
    print(f"\n{JOBS} jobs: 1 worker {one:.1f} s, 2 workers {two:.1f} s, speed-up {ratio:.2f}x")
    assert ratio > 1.1, f"two workers were not faster: {one:.1f} s vs {two:.1f} s"
