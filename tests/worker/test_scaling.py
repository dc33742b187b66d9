"""Scaling out: two ``auxsel worker`` processes sharing one PostgreSQL queue run its jobs
side by side, each once. Each worker trains on one torch thread
(AUXSEL_TORCH_THREADS=1), so on an idle 2-core machine the ideal ratio is 2.

What the test asserts does not depend on the machine's speed or load: both workers take
jobs from the one queue, every job runs once, and with two workers jobs run at the same
time (overlapping running intervals), which one worker never does. The speed-up itself
is measured and printed, not asserted (a loaded CI machine can erase it): to compare
like with like, both workers start (and warm up) once, and batches with one worker (the
other paused with SIGSTOP while idle) and with two alternate; the ratio is total time
with one over total time with two. Each worker runs in its own session, as a
service would: with the kernel's autogroup scheduling (on here), processes of one
session share one slice of the CPU, so two workers started in pytest's session would
split the time one gets while other sessions keep the cores busy.

Run alone to see the ratio:
    scripts/test.sh tests/worker/test_scaling.py -s
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import ROOT, Proc, auxsel_env, family_csv, job_spec, make_settings
from tests.worker.conftest import LONG, jobs, wait_for

JOBS = 8
ROUNDS = 2


class SessionProc(Proc):
    """A worker process in a session of its own (its own scheduling autogroup)."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            args,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )


def start_worker(settings: Settings, log: Path) -> Proc:
    return SessionProc([sys.executable, "-m", "app.cli", "worker"], auxsel_env(settings), log)


@pytest.mark.slow
def test_two_workers_share_the_queue_and_run_side_by_side(tmp_path, pg_url, record_property):
    settings = make_settings(tmp_path / "data", pg_url)
    with TestClient(create_app(settings)) as api:
        ds = api.post("/api/v1/datasets", files={"file": ("d.csv", family_csv())}).json()

        batches: dict[str, list[list[str]]] = {"one": [], "two": []}

        def run(n_jobs: int, batch: str | None = None) -> float:
            started = time.monotonic()
            ids = []
            for _ in range(n_jobs):
                response = api.post("/api/v1/jobs", json=job_spec(ds["id"], budget=LONG))
                ids.append(response.json()["id"])
            wait_for(lambda: all(jobs(api)[i].status == "succeeded" for i in ids), 900, 0.1)
            if batch is not None:
                batches[batch].append(ids)
            return time.monotonic() - started

        first = start_worker(settings, tmp_path / "w1.log")
        second = start_worker(settings, tmp_path / "w2.log")
        workers = (first, second)
        one: list[float] = []
        two: list[float] = []
        try:
            # Every worker first finishes a warm-up job (its first job pays for loading
            # the table and torch's first calls).
            for _ in range(5):
                run(2)
                if all("succeeded" in w.output() for w in workers):
                    break
            assert all("succeeded" in w.output() for w in workers)
            for _ in range(ROUNDS):
                second.signal(signal.SIGSTOP)  # idle now: it holds no job
                try:
                    one.append(run(JOBS, "one"))
                finally:
                    second.signal(signal.SIGCONT)
                two.append(run(JOBS, "two"))
            final = jobs(api)
        finally:
            for w in workers:
                w.signal(signal.SIGCONT)
                assert w.stop() == 0
    # One worker runs jobs one after another; two run them side by side.
    for ids in batches["one"]:
        assert _most_at_once(final[i] for i in ids) == 1
    for ids in batches["two"]:
        assert _most_at_once(final[i] for i in ids) == 2
    # Both took jobs from the one queue.
    for w in workers:
        assert w.output().count("claimed") > 1
    ratio = sum(one) / sum(two)
    record_property("one_worker_s", [round(t, 2) for t in one])
    record_property("two_workers_s", [round(t, 2) for t in two])
    record_property("speedup", round(ratio, 2))
    print(
        f"\n{JOBS} jobs x {ROUNDS} rounds: 1 worker {' '.join(f'{t:.1f}' for t in one)} s, "
        f"2 workers {' '.join(f'{t:.1f}' for t in two)} s, speed-up {ratio:.2f}x"
    )


def _most_at_once(batch: Iterable[Any]) -> int:
    """The most jobs of a batch that were running at the same moment."""
    jobs = list(batch)
    events = sorted(
        [(job.started_at, 1) for job in jobs] + [(job.finished_at, -1) for job in jobs],
        key=lambda e: (e[0], e[1]),  # an end before a start at the same instant
    )
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most
