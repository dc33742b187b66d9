"""Bounded mixed load: concurrent clients upload tables, submit (and now and then
cancel) small jobs and poll their status for a fixed time against a server on
127.0.0.1, then wait for every submitted job to end. Reports requests per second,
latency percentiles per kind of request, 5xx and 429 counts, and the job accounting
(every job must end succeeded, failed with a reason, or canceled).

    # the full benchmark (PostgreSQL; starts its own API and one worker process, then
    # measures status polls alone with wrk)
    python -m benchmarks.load_mixed --database-url postgresql+psycopg://... \\
        --clients 32 --seconds 60 --workers 1 --wrk-seconds 15

    # against a server that is already running
    python -m benchmarks.load_mixed --url http://127.0.0.1:8000 --clients 8 --seconds 15

Exit status 1 when any 5xx was seen or a job is unaccounted for. A small version runs
in CI (tests/worker/test_load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.load_status import run_wrk, wrk_figures
from benchmarks.serving import wait_ready
from engine import make_task_family

TERMINAL = ("succeeded", "failed", "canceled")
TINY_BUDGET = {"seeds": 2, "epochs": 2, "hidden": [8], "batch_size": 64}


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    canceled: set[str] = field(default_factory=set)

    def record(self, kind: str, started: float, response: httpx.Response) -> None:
        self.latencies[kind].append(time.perf_counter() - started)
        self.statuses[f"{kind} {response.status_code}"] += 1
        if response.status_code >= 500:
            self.server_errors.append(f"{kind} {response.status_code}: {response.text[:200]}")


def table_bytes(seed: int, rows: int = 200) -> bytes:
    frame = make_task_family(
        n_rows=rows, n_features=4, relatedness=(0.9,), n_noise=0, seed=seed
    ).frame
    return frame.to_csv(index=False).encode()


async def client_loop(
    client: httpx.AsyncClient,
    index: int,
    stop_at: float,
    stats: Stats,
    submit_every_s: float,
    rng: random.Random,
) -> None:
    """One client: upload a table, then poll its jobs, submitting a new one every
    ``submit_every_s`` seconds (and canceling about one in five right away)."""
    dataset_id: str | None = None
    own: list[str] = []
    next_submit = time.monotonic()
    uploads = 0
    while time.monotonic() < stop_at:
        if dataset_id is None or (uploads < 3 and rng.random() < 0.02):
            started = time.perf_counter()
            response = await client.post(
                "/api/v1/datasets",
                files={"file": (f"c{index}.csv", table_bytes(index * 100 + uploads))},
            )
            stats.record("upload", started, response)
            uploads += 1
            if response.status_code == 201:
                dataset_id = response.json()["id"]
            else:
                await asyncio.sleep(0.5)
            continue
        if time.monotonic() >= next_submit:
            next_submit = time.monotonic() + submit_every_s
            spec = {
                "dataset_id": dataset_id,
                "main_task": {"column": "y"},
                "candidates": [{"column": "rel_0_0.90"}],
                "seed": rng.randrange(1000),
                "budget": TINY_BUDGET,
            }
            started = time.perf_counter()
            response = await client.post("/api/v1/jobs", json=spec)
            stats.record("submit", started, response)
            if response.status_code == 202:
                job_id = response.json()["id"]
                own.append(job_id)
                stats.jobs.append(job_id)
                if rng.random() < 0.2:
                    started = time.perf_counter()
                    response = await client.post(f"/api/v1/jobs/{job_id}/cancel")
                    stats.record("cancel", started, response)
                    if response.status_code == 202:
                        stats.canceled.add(job_id)
            continue
        if own:
            started = time.perf_counter()
            response = await client.get(f"/api/v1/jobs/{rng.choice(own)}")
            stats.record("poll", started, response)
        else:
            await asyncio.sleep(0.05)


async def account(client: httpx.AsyncClient, jobs: list[str], drain_s: float) -> dict[str, Any]:
    """Wait up to ``drain_s`` for every job to end; then count how each ended."""
    deadline = time.monotonic() + drain_s
    final: dict[str, dict[str, Any]] = {}
    while True:
        pending = [j for j in jobs if j not in final]
        for job_id in pending:
            body = (await client.get(f"/api/v1/jobs/{job_id}")).json()
            if body["status"] in TERMINAL:
                final[job_id] = body
        if len(final) == len(jobs) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    ended = Counter(body["status"] for body in final.values())
    failed_without_reason = [
        j for j, b in final.items() if b["status"] == "failed" and not b.get("error")
    ]
    return {
        "submitted": len(jobs),
        "succeeded": ended["succeeded"],
        "failed": ended["failed"],
        "canceled": ended["canceled"],
        "unfinished": len(jobs) - len(final),
        "failed_without_reason": len(failed_without_reason),
        "failure_reasons": dict(
            Counter(b["error"]["reason"] for b in final.values() if b["status"] == "failed")
        ),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ms = np.array(values) * 1000
    return {
        "n": len(values),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p90_ms": round(float(np.percentile(ms, 90)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


async def run_load(
    url: str,
    *,
    clients: int,
    seconds: float,
    submit_every_s: float = 3.0,
    drain_s: float = 180.0,
    seed: int = 0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    stats = Stats()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=60, headers=headers or {}
    ) as client:
        started = time.monotonic()
        stop_at = started + seconds
        await asyncio.gather(
            *(
                client_loop(client, i, stop_at, stats, submit_every_s, random.Random(seed + i))
                for i in range(clients)
            )
        )
        elapsed = time.monotonic() - started
        accounting = await account(client, stats.jobs, drain_s)
    requests = sum(len(v) for v in stats.latencies.values())
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": requests,
        "rps": round(requests / elapsed, 1),
        "latency": {kind: percentiles(v) for kind, v in sorted(stats.latencies.items())},
        "statuses": dict(sorted(stats.statuses.items())),
        "server_errors": len(stats.server_errors),
        "server_error_samples": stats.server_errors[:5],
        "rate_limited": sum(n for k, n in stats.statuses.items() if k.endswith(" 429")),
        "jobs": accounting,
        "sample_job": stats.jobs[0] if stats.jobs else None,
    }


def wrk_polls(url: str, job_id: str, clients: int, seconds: int) -> dict[str, Any]:
    """Status-poll capacity without the Python client's overhead: wrk on one job (req/s,
    p50/p99 in ms, non-2xx count; wrk's own lines when it is missing or says more)."""
    lines = run_wrk(f"{url}/api/v1/jobs/{job_id}", {}, clients, seconds)
    return {"clients": clients, "seconds": seconds, **wrk_figures(lines), "wrk": lines}


def ok(result: dict[str, Any]) -> bool:
    jobs = result["jobs"]
    return (
        result["server_errors"] == 0
        and jobs["unfinished"] == 0
        and jobs["failed_without_reason"] == 0
        and jobs["submitted"] == jobs["succeeded"] + jobs["failed"] + jobs["canceled"]
    )


def summary(result: dict[str, Any]) -> str:
    poll = result["latency"].get("poll", {})
    jobs = result["jobs"]
    return (
        f"{result['clients']} clients x {result['seconds']:.0f} s: {result['requests']} "
        f"requests, {result['rps']:.0f} req/s, 5xx {result['server_errors']}, "
        f"429 {result['rate_limited']}; status polls p50 {poll.get('p50_ms')} ms, "
        f"p99 {poll.get('p99_ms')} ms; jobs {jobs['submitted']} submitted = "
        f"{jobs['succeeded']} succeeded + {jobs['failed']} failed + {jobs['canceled']} "
        f"canceled, {jobs['unfinished']} unfinished"
    )


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", help="A running server (else one is started here).")
    parser.add_argument("--database-url", help="For the started server (PostgreSQL).")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--submit-every", type=float, default=10.0, help="Per client, s.")
    parser.add_argument("--drain", type=float, default=300, help="Wait for jobs, s.")
    parser.add_argument("--workers", type=int, default=1, help="Worker processes.")
    parser.add_argument(
        "--api-worker",
        action="store_true",
        help="Also train inside the API process (the embedded default); off by default, "
        "as in production, so training does not compete with requests for the GIL.",
    )
    parser.add_argument("--port", type=int, default=8792)
    parser.add_argument("--json", action="store_true", help="Print the full result.")
    parser.add_argument(
        "--wrk-seconds", type=int, default=0, help="Then poll one job with wrk for this long."
    )
    args = parser.parse_args()

    procs: list[subprocess.Popen[bytes]] = []
    tmp = tempfile.TemporaryDirectory()
    url = args.url
    try:
        if url is None:
            env = {
                **os.environ,
                "AUXSEL_DATA_DIR": tmp.name,
                "AUXSEL_LOG_LEVEL": "WARNING",
                "AUXSEL_RATE_SUBMIT_PER_MIN": "0",
                "AUXSEL_RATE_UPLOAD_PER_MIN": "0",
                "OMP_NUM_THREADS": "1",
                "AUXSEL_TORCH_THREADS": "1",
            }
            if args.database_url:
                env["AUXSEL_DATABASE_URL"] = args.database_url
            log_dir = Path(tmp.name)
            serve = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1"]
            if not args.api_worker:
                serve.append("--no-worker")
            procs.append(_start([*serve, "--port", str(args.port)], env, log_dir / "api.log"))
            url = f"http://127.0.0.1:{args.port}"
            wait_ready(url, 600)
            for i in range(args.workers):
                worker = [sys.executable, "-m", "app.cli", "worker"]
                procs.append(_start(worker, env, log_dir / f"worker{i}.log"))
        result = asyncio.run(
            run_load(
                url,
                clients=args.clients,
                seconds=args.seconds,
                submit_every_s=args.submit_every,
                drain_s=args.drain,
            )
        )
        if args.wrk_seconds and result["sample_job"]:
            result["wrk_polls"] = wrk_polls(
                url, result["sample_job"], args.clients, args.wrk_seconds
            )
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.cleanup()
    print(json.dumps(result, indent=2) if args.json else summary(result))
    if not args.json:
        for kind, lat in result["latency"].items():
            print(f"  {kind:7s} {lat}")
        if "wrk_polls" in result:
            print(f"  wrk GET /api/v1/jobs/{{id}}: {result['wrk_polls']}")
    sys.exit(0 if ok(result) else 1)


if __name__ == "__main__":
    main()
