"""Bounded load on job-status polls: N concurrent clients GET /api/v1/jobs/{id} for a
fixed time against a server this script starts on 127.0.0.1 (embedded default: SQLite,
in-process worker). Reports requests per second and latency percentiles.

    python -m benchmarks.load_status --clients 50 --seconds 20 [--wrk]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from engine import make_task_family


def start_server(data_dir: Path, port: int, database_url: str | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AUXSEL_DATA_DIR": str(data_dir), "AUXSEL_LOG_LEVEL": "WARNING"}
    if database_url:
        env["AUXSEL_DATABASE_URL"] = database_url
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def poll(
    client: httpx.AsyncClient, path: str, stop_at: float, latencies: list[float], errors: list[int]
) -> None:
    while time.monotonic() < stop_at:
        start = time.perf_counter()
        response = await client.get(path)
        latencies.append(time.perf_counter() - start)
        if response.status_code != 200:
            errors.append(response.status_code)


async def run(url: str, job_id: str, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[int] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        stop_at = time.monotonic() + seconds
        started = time.monotonic()
        await asyncio.gather(
            *(
                poll(client, f"/api/v1/jobs/{job_id}", stop_at, latencies, errors)
                for _ in range(clients)
            )
        )
        elapsed = time.monotonic() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--busy",
        action="store_true",
        help="Keep a job training while polling (the worker competes for CPU).",
    )
    parser.add_argument(
        "--wrk",
        action="store_true",
        help="Also measure with wrk (a C client, 2 threads): on 2 cores the Python client "
        "is the bottleneck, not the server.",
    )
    args = parser.parse_args()
    wrk_lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), args.port, args.database_url)
        url = f"http://127.0.0.1:{args.port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            frame = make_task_family(n_rows=2000, n_features=16, seed=0).frame
            ds = httpx.post(
                f"{url}/api/v1/datasets",
                files={"file": ("d.csv", frame.to_csv(index=False).encode())},
            ).json()
            epochs = 400 if args.busy else 2
            spec = {
                "dataset_id": ds["id"],
                "main_task": {"column": "y"},
                "candidates": [{"column": "rel_0_0.95"}],
                "budget": {"seeds": 2, "epochs": epochs},
            }
            job = httpx.post(f"{url}/api/v1/jobs", json=spec).json()
            result = asyncio.run(run(url, job["id"], args.clients, args.seconds))
            if args.wrk:
                wrk_lines = run_wrk(f"{url}/api/v1/jobs/{job['id']}", args.clients, args.seconds)
            state = httpx.get(f"{url}/api/v1/jobs/{job['id']}").json()["status"]
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    print(
        f"GET /api/v1/jobs/{{id}}: {args.clients} clients x {args.seconds:.0f} s "
        f"({'job training meanwhile' if args.busy else 'idle worker'}; job ended {state})"
    )
    print(
        f"  requests {result['requests']}, errors {result['errors']}, "
        f"{result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
    )
    for line in wrk_lines:
        print(f"  wrk: {line}")


def run_wrk(url: str, connections: int, seconds: float) -> list[str]:
    """wrk's throughput, latency percentiles and error lines for ``url``."""
    if shutil.which("wrk") is None:
        return ["not installed (apt-get install wrk)"]
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    keep = ("Requests/sec", " 50% ", " 99% ", "requests in", "Non-2xx", "Socket errors")
    return [line.strip() for line in out.splitlines() if any(k in line for k in keep)]


if __name__ == "__main__":
    main()
