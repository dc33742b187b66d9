"""The Ray executor on a local Ray instance started here (``ray.init(num_cpus=2)``): the
same job gives the same probe runs and ranking as the local executor, a Ray worker
killed mid-shard costs only that shard, and a cancel stops the outstanding shards.

Skipped when Ray is not installed (``pip install 'auxsel[ray]'``; scripts/test.sh
installs it)."""

from __future__ import annotations

import math
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
ray = pytest.importorskip("ray")

from fastapi.testclient import TestClient  # noqa: E402

from app import metrics  # noqa: E402
from app.jobs.executors import LocalExecutor, RayExecutor  # noqa: E402
from app.jobs.worker import Worker  # noqa: E402
from app.main import create_app  # noqa: E402
from tests.conftest import family_csv, job_spec, make_settings, start_worker  # noqa: E402
from tests.worker.conftest import jobs, runs, wait_for  # noqa: E402

pytestmark = pytest.mark.slow

# 12 probes (3 replicates x (baseline + 3 candidates)) in 4 shards of 3, each a second
# or two of training on one core.
BUDGET = {
    "seeds": 3,
    "max_replicates": 3,
    "epochs": 8,
    "hidden": [32],
    "batch_size": 32,
    "patience": 0,
}
SHARD = "ray::train_shard"


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    temp = tempfile.mkdtemp(prefix="auxray-", dir="/tmp")  # short: Ray's socket paths
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        namespace="auxsel-tests",
        _node_ip_address="127.0.0.1",
        _temp_dir=temp,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any]]:
    """The API on SQLite (submits and reads jobs) and the reference ranking of the job
    trained by the local executor."""
    tmp = tmp_path_factory.mktemp("ray")
    settings = make_settings(tmp / "data", f"sqlite:///{tmp / 'auxsel.db'}", chunk_probes=3)
    with TestClient(create_app(settings)) as api:
        dataset = api.post("/api/v1/datasets", files={"file": ("d.csv", family_csv())}).json()
        api.app.state.dataset_id = dataset["id"]  # type: ignore[attr-defined]
        (job_id,) = _submit(api)
        _worker(api, LocalExecutor()).run_one()
        assert jobs(api)[job_id].status == "succeeded"
        yield api, job_id


def _submit(api: TestClient, n: int = 1, **budget: Any) -> list[str]:
    dataset_id = api.app.state.dataset_id  # type: ignore[attr-defined]
    ids = []
    for _ in range(n):
        response = api.post("/api/v1/jobs", json=job_spec(dataset_id, budget={**BUDGET, **budget}))
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def _worker(api: TestClient, executor: Any) -> Worker:
    state = api.app.state  # type: ignore[attr-defined]
    return Worker(state.settings, state.sessions, state.storage, executor=executor)


def _ranking(api: TestClient, job_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/jobs/{job_id}/ranking")
    assert response.status_code == 200, response.text
    return list(response.json()["candidates"])


def _assert_same_results(api: TestClient, job_id: str, reference_id: str) -> None:
    ours = {r.probe_key: r for r in runs(api, job_id)}
    theirs = {r.probe_key: r for r in runs(api, reference_id)}
    assert ours.keys() == theirs.keys()
    assert len(ours) == 12
    for key, run in ours.items():
        for name, value in run.metrics.items():
            assert math.isclose(value, theirs[key].metrics[name], rel_tol=1e-5, abs_tol=1e-7), (
                key,
                name,
            )
    mine, reference = _ranking(api, job_id), _ranking(api, reference_id)
    assert [c["name"] for c in mine] == [c["name"] for c in reference]
    for a, b in zip(mine, reference, strict=True):
        for field in ("gain", "ci_low", "ci_high"):
            assert math.isclose(a[field], b[field], rel_tol=1e-5, abs_tol=1e-7)
        assert a["verdict"] == b["verdict"]


def _shard_pids() -> list[int]:
    """Ray workers of this test's Ray instance (our descendants) running a shard now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [os.getpid()]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(SHARD.encode()):
                found.append(pid)
    return found


def _run_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run_one, daemon=True)
    thread.start()
    return thread


def test_ray_matches_local_executor(ray_instance, stack):
    api, reference_id = stack
    (job_id,) = _submit(api)
    chunks_before = metrics.CHUNK_DURATION.labels("ray")._sum.get()
    assert _worker(api, RayExecutor()).run_one()
    job = jobs(api)[job_id]
    assert job.status == "succeeded", job.error_detail
    assert job.progress_done == job.progress_total == 12 * BUDGET["epochs"]
    assert job.result["chunks"] == jobs(api)[reference_id].result["chunks"]
    assert metrics.CHUNK_DURATION.labels("ray")._sum.get() > chunks_before
    _assert_same_results(api, job_id, reference_id)


@pytest.mark.parametrize(
    ("max_retries", "who_retries"), [(3, "ray"), (0, "the executor (resubmit)")]
)
def test_killed_ray_worker_costs_only_its_shard(ray_instance, stack, max_retries, who_retries):
    api, reference_id = stack
    (job_id,) = _submit(api)
    resubmits_before = metrics.SHARD_RETRIES._value.get()
    executor = RayExecutor(max_retries=max_retries, resubmits=2, poll_s=0.2)
    thread = _run_in_thread(_worker(api, executor))
    # Kill the first Ray worker seen training a shard (SIGKILL: no clean exit).
    deadline = time.monotonic() + 900  # bounds for hangs, not speed
    killed = None
    while killed is None and time.monotonic() < deadline:
        pids = _shard_pids()
        if pids:
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    assert killed is not None, "no shard was seen running"
    thread.join(timeout=900)
    assert not thread.is_alive()
    job = jobs(api)[job_id]
    assert job.status == "succeeded", (who_retries, job.error_detail)
    assert job.attempt == 1  # the job never went back to the queue
    if max_retries == 0:
        assert metrics.SHARD_RETRIES._value.get() == resubmits_before + 1
    _assert_same_results(api, job_id, reference_id)


def test_cancel_stops_outstanding_shards(ray_instance, stack):
    api, _ = stack
    # 12 shards of one probe, at most 2 at a time: most are still waiting at the cancel.
    # Long shards: the cancel lands while most are running or waiting, on any machine.
    (job_id,) = _submit(api, epochs=400)
    state = api.app.state  # type: ignore[attr-defined]
    worker = Worker(
        state.settings.model_copy(update={"chunk_probes": 1}),
        state.sessions,
        state.storage,
        executor=RayExecutor(poll_s=0.2),
    )
    thread = _run_in_thread(worker)
    wait_for(lambda: bool(_shard_pids()), 900, 0.05)  # bounds for hangs, not speed
    assert api.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 202
    thread.join(timeout=900)
    assert not thread.is_alive()
    job = jobs(api)[job_id]
    assert job.status == "canceled"
    assert len(runs(api, job_id)) < 12
    # The shards still running were cancelled (force: their Ray workers are ended).
    wait_for(lambda: not _shard_pids(), 900, 0.1)


def test_auxsel_worker_process_joins_the_cluster(ray_instance, stack, tmp_path):
    """``auxsel worker`` with AUXSEL_EXECUTOR=ray and AUXSEL_RAY_ADDRESS, as deployed."""
    api, reference_id = stack
    (job_id,) = _submit(api)
    address = ray.get_runtime_context().gcs_address
    worker = start_worker(
        api.app.state.settings,  # type: ignore[attr-defined]
        tmp_path / "w.log",
        AUXSEL_EXECUTOR="ray",
        AUXSEL_RAY_ADDRESS=address,
        AUXSEL_CHUNK_PROBES="3",
        RAY_AUTH_MODE="disabled",
    )
    try:
        wait_for(lambda: jobs(api)[job_id].status != "queued" or worker.popen.poll() is not None)
        # A bound for a hang, not a speed: on a loaded 2-core machine the Ray workers
        # start (and import torch) slowly, and 120 s ran out with no shard finished.
        wait_for(lambda: jobs(api)[job_id].status not in ("queued", "running"), 900)
    finally:
        assert worker.stop() == 0, worker.output()
    assert jobs(api)[job_id].status == "succeeded", worker.output()
    assert "executor ray" in worker.output()
    assert "submitted 4 shards to Ray" in worker.output()
    _assert_same_results(api, job_id, reference_id)
