"""Bounded load on job-status polls: N concurrent clients GET /api/v1/jobs/{id} for a
fixed time against a server this script starts on 127.0.0.1 (embedded default: SQLite,
in-process worker), side by side with GET /healthz in the same run (the same process,
middleware and event loop, no database), so that the ratio of the two is comparable
across machines and loads. Reports requests per second, latency percentiles and errors.

    python -m benchmarks.load_status --clients 50 --seconds 10 --wrk [--no-httpx]
        [--auth] [--etag] [--workers 2 --database-url postgresql+psycopg://...]

``--wrk`` measures with wrk (a C client; on 2 cores the Python client is the
bottleneck, not the server). ``--etag`` adds polls that send ``If-None-Match`` with the
job's current ETag (answered 304 without a body). ``--auth`` turns API keys on and polls
with a key.
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

from benchmarks.serving import wait_ready
from engine import make_task_family


def start_server(
    data_dir: Path,
    port: int,
    database_url: str | None,
    auth: bool,
    workers: int,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AUXSEL_DATA_DIR": str(data_dir), "AUXSEL_LOG_LEVEL": "WARNING"}
    env |= extra_env or {}
    if database_url:
        env["AUXSEL_DATABASE_URL"] = database_url
    if auth:
        env["AUXSEL_AUTH"] = "on"
    args = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        args += ["--workers", str(workers)]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def create_key(data_dir: Path, database_url: str | None) -> str:
    env = {**os.environ, "AUXSEL_DATA_DIR": str(data_dir)}
    if database_url:
        env["AUXSEL_DATABASE_URL"] = database_url
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", "create", "--owner", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip().splitlines()[-1]


def submit_job(url: str, headers: dict[str, str], *, busy: bool, wait: bool) -> str:
    """Upload a table and submit a job (a long one when ``busy``); with ``wait``, wait
    until it has ended so that its status no longer changes. Returns its status path."""
    frame = make_task_family(n_rows=2000, n_features=16, seed=0).frame
    ds = httpx.post(
        f"{url}/api/v1/datasets",
        files={"file": ("d.csv", frame.to_csv(index=False).encode())},
        headers=headers,
    ).json()
    spec = {
        "dataset_id": ds["id"],
        "main_task": {"column": "y"},
        "candidates": [{"column": "rel_0_0.95"}],
        "budget": {"seeds": 2, "epochs": 400 if busy else 2},
    }
    job = httpx.post(f"{url}/api/v1/jobs", json=spec, headers=headers).json()
    status_path = f"/api/v1/jobs/{job['id']}"
    for _ in range(600 if wait else 0):
        got = httpx.get(f"{url}{status_path}", headers=headers)
        if got.json()["status"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.2)
    return status_path


async def poll(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    stop_at: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    while time.monotonic() < stop_at:
        start = time.perf_counter()
        response = await client.get(path, headers=headers)
        latencies.append(time.perf_counter() - start)
        if response.status_code not in (200, 304):
            errors.append(response.status_code)


async def run(
    url: str, path: str, headers: dict[str, str], clients: int, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[int] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        stop_at = time.monotonic() + seconds
        started = time.monotonic()
        await asyncio.gather(
            *(poll(client, path, headers, stop_at, latencies, errors) for _ in range(clients))
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
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10, help="Per measured target.")
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--workers", type=int, default=1, help="`auxsel serve --workers N`.")
    parser.add_argument("--auth", action="store_true", help="API keys on; poll with a key.")
    parser.add_argument("--etag", action="store_true", help="Also poll with If-None-Match (304s).")
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
    parser.add_argument("--no-httpx", action="store_true", help="Only measure with wrk.")
    args = parser.parse_args()
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        headers: dict[str, str] = {}
        if args.auth:
            subprocess.run(
                [sys.executable, "-m", "app.cli", "db", "upgrade"],
                env={**os.environ, "AUXSEL_DATA_DIR": tmp}
                | ({"AUXSEL_DATABASE_URL": args.database_url} if args.database_url else {}),
                capture_output=True,
                check=True,
            )
            headers["Authorization"] = f"Bearer {create_key(Path(tmp), args.database_url)}"
        server = start_server(Path(tmp), args.port, args.database_url, args.auth, args.workers)
        url = f"http://127.0.0.1:{args.port}"
        try:
            wait_ready(url, 300)
            status_path = submit_job(url, headers, busy=args.busy, wait=not args.busy)
            targets: list[tuple[str, str, dict[str, str]]] = [
                ("GET /healthz", "/healthz", {}),
                ("GET /api/v1/jobs/{id}", status_path, headers),
            ]
            if args.etag:
                etag = httpx.get(f"{url}{status_path}", headers=headers).headers.get("etag")
                if etag:
                    conditional = headers | {"If-None-Match": etag}
                    targets.append(("  with If-None-Match (304)", status_path, conditional))
                else:
                    lines.append("  (the server sends no ETag: no If-None-Match run)")
            wrk_rps: dict[str, float] = {}
            for name, path, extra in targets:
                lines.append(f"{name}:")
                if not args.no_httpx:
                    result = asyncio.run(run(url, path, extra, args.clients, args.seconds))
                    lines.append(
                        f"  httpx: requests {result['requests']}, errors {result['errors']}, "
                        f"{result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} ms, "
                        f"p99 {result['p99_ms']:.1f} ms"
                    )
                if args.wrk:
                    cpu_before = server_cpu_s(server.pid)
                    measured = run_wrk(f"{url}{path}", extra, args.clients, args.seconds)
                    cpu = server_cpu_s(server.pid) - cpu_before
                    lines.extend(f"  wrk: {line}" for line in measured)
                    if "rps" in (figures := wrk_figures(measured)):
                        wrk_rps[name] = figures["rps"]
                    if figures.get("requests") and cpu == cpu:  # NaN off Linux
                        per_request = 1e6 * cpu / figures["requests"]
                        lines.append(f"  server CPU per request: {per_request:.0f} µs")
            healthz = wrk_rps.get("GET /healthz")
            if healthz:  # the figure that carries across machines and loads
                for name, rps in wrk_rps.items():
                    if name != "GET /healthz":
                        ratio = rps / healthz
                        lines.append(f"wrk ratio {name.strip()} / GET /healthz: {ratio:.2f}")
            state = httpx.get(f"{url}{status_path}", headers=headers).json()["status"]
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    print(
        f"{args.clients} connections x {args.seconds:.0f} s per target "
        f"({'job training meanwhile' if args.busy else 'idle worker'}; job ended {state}; "
        f"{'keys on' if args.auth else 'keys off'}; {args.workers} API process(es); "
        f"{'PostgreSQL' if args.database_url else 'SQLite'}); load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for line in lines:
        print(line)


def cpu_s(stat: Path) -> float:
    """User + system CPU seconds from a /proc/<pid>[/task/<tid>]/stat file."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_s(pid: int) -> float:
    """CPU seconds used so far by the server ``pid`` and its child processes (uvicorn's
    ``--workers``): a figure of work per request that a loaded machine does not inflate
    the way it does latency. NaN where /proc is missing."""
    if not Path(f"/proc/{pid}/stat").exists():
        return float("nan")
    total = cpu_s(Path(f"/proc/{pid}/stat"))
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                total += cpu_s(stat)
        except (OSError, ValueError, IndexError):  # a process that ended meanwhile
            continue
    return total


def run_wrk(url: str, headers: dict[str, str], connections: int, seconds: float) -> list[str]:
    """wrk's throughput, latency percentiles and error lines for ``url``."""
    if shutil.which("wrk") is None:
        return ["not installed (apt-get install wrk)"]
    command = ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    keep = ("Requests/sec", " 50% ", " 99% ", "requests in", "Non-2xx", "Socket errors")
    return [line.strip() for line in out.splitlines() if any(k in line for k in keep)]


def wrk_figures(lines: list[str]) -> dict[str, float]:
    """req/s, request count, p50 and p99 (ms) and non-2xx count from wrk's --latency
    output."""
    units = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
    found: dict[str, float] = {"non2xx": 0.0}
    for line in lines:
        parts = line.split()
        if line.startswith("Requests/sec:"):
            found["rps"] = float(parts[-1])
        elif "requests in" in line:
            found["requests"] = float(parts[0])
        elif parts and parts[0] in ("50%", "99%"):
            value = parts[1]
            unit = value.lstrip("0123456789.")
            found[f"p{parts[0][:-1]}_ms"] = float(value[: -len(unit)]) * units[unit]
        elif line.startswith("Non-2xx"):
            found["non2xx"] = float(parts[-1])
    return found


if __name__ == "__main__":
    main()
