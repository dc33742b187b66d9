"""GC pauses and event-loop lag of `auxsel serve` under status-poll load, with the
startup heap frozen (AUXSEL_GC_FREEZE=true) and not, alternating in one run.

    python -m benchmarks.load_gc --rounds 2 --seconds 10 --clients 50 [--no-worker]

Each round starts one server per condition (the order reversed every other round, so
that a drift of the machine's load does not favour one), on a fresh SQLite database with
the in-process worker, submits one small job and waits until it ends, then runs wrk
against ``GET /healthz``, ``GET /api/v1/jobs/{id}`` and ``GET /healthz`` again (by
then the heap has settled after the job) for ``--seconds`` each. The
server records every garbage collection and its event loop's lag in
AUXSEL_SERVE_STATS_FILE (app/gcwatch.py); the samples inside each wrk window are
reported: collections per generation (count, total and largest CPU time, how many ran
on the event loop's thread), loop lag percentiles, and CPU time of the loop's thread
and of the others (worker, thread pool) from /proc. CPU times hold on a loaded machine;
wall-clock latencies do not, hence also the ratio of the two conditions per round.
``--no-worker`` adds a condition with the startup heap frozen and no in-process worker
(AUXSEL_SERVE_WORKER=false): does the worker's thread delay the loop?
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.load_status import cpu_s, run_wrk, start_server, submit_job, wrk_figures
from benchmarks.serving import wait_ready

CONDITIONS: dict[str, dict[str, str]] = {
    "freeze off": {"AUXSEL_GC_FREEZE": "false"},
    "freeze on": {"AUXSEL_GC_FREEZE": "true"},
}
NO_WORKER = ("freeze on, no worker", {"AUXSEL_GC_FREEZE": "true", "AUXSEL_SERVE_WORKER": "false"})


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of ``pid``'s main thread (the event loop's) and of all
    its other threads, ended ones included (the process's total minus the main's)."""
    main = cpu_s(Path(f"/proc/{pid}/task/{pid}/stat"))
    return main, cpu_s(Path(f"/proc/{pid}/stat")) - main


def window_stats(stats: dict[str, Any], start: float, end: float) -> dict[str, Any]:
    """The collections and lag samples of ``stats`` that began within [start, end]."""
    columns = {name: np.array(values) for name, values in stats["collections"].items()}
    inside = (columns["start"] >= start) & (columns["start"] <= end)
    per_generation = {}
    for generation in (0, 1, 2):
        pick = inside & (columns["generation"] == generation)
        cpu_ms = columns["cpu_s"][pick] * 1000
        per_generation[generation] = {
            "count": int(pick.sum()),
            "on_loop": int(columns["on_loop"][pick].sum()),
            "collected": int(columns["collected"][pick].sum()),
            "cpu_total_ms": float(cpu_ms.sum()),
            "cpu_max_ms": float(cpu_ms.max()) if cpu_ms.size else 0.0,
            "wall_max_ms": float(columns["wall_s"][pick].max() * 1000) if pick.any() else 0.0,
        }
    at, lag = np.array(stats["lag"]["at"]), np.array(stats["lag"]["seconds"]) * 1000
    lag = lag[(at >= start) & (at <= end)]
    return {
        "gc": per_generation,
        "lag_samples": int(lag.size),
        "lag_p50_ms": float(np.percentile(lag, 50)) if lag.size else 0.0,
        "lag_p99_ms": float(np.percentile(lag, 99)) if lag.size else 0.0,
        "lag_max_ms": float(lag.max()) if lag.size else 0.0,
        "lag_over_50ms": int((lag > 50).sum()),
    }


def measure(
    name: str, extra_env: dict[str, str], root: Path, port: int, clients: int, seconds: float
) -> dict[str, Any]:
    """One server under one condition: wrk on /healthz, then on the status poll."""
    stats_file = root / "stats.json"
    env = extra_env | {"AUXSEL_SERVE_STATS_FILE": str(stats_file)}
    server = start_server(root / "data", port, None, False, 1, env)
    url = f"http://127.0.0.1:{port}"
    windows: dict[str, dict[str, Any]] = {}
    try:
        wait_ready(url, 600)
        worker = extra_env.get("AUXSEL_SERVE_WORKER") != "false"
        status_path = submit_job(url, {}, busy=False, wait=worker)
        targets = (("healthz", "/healthz"), ("poll", status_path), ("healthz2", "/healthz"))
        for target, path in targets:
            cpu_before, start = thread_cpu(server.pid), time.monotonic()
            lines = run_wrk(f"{url}{path}", {}, clients, seconds)
            end, cpu_after = time.monotonic(), thread_cpu(server.pid)
            windows[target] = {
                "window": (start, end),
                "wrk": wrk_figures(lines),
                "cpu_loop_s": cpu_after[0] - cpu_before[0],
                "cpu_other_s": cpu_after[1] - cpu_before[1],
            }
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(120)
    stats = json.loads(stats_file.read_text())
    for found in windows.values():
        found |= window_stats(stats, *found.pop("window"))
    return {
        "condition": name,
        "tracked_after_startup": stats["tracked_after_startup"],
        "frozen": stats["frozen"],
        "targets": windows,
    }


def report(runs: list[dict[str, Any]], rounds: int) -> list[str]:
    lines = []
    for run in runs:
        lines.append(
            f"round {run['round']}, {run['condition']}: tracked after startup "
            f"{run['tracked_after_startup']:,}, frozen {run['frozen']:,}"
        )
        for target, found in run["targets"].items():
            wrk = found["wrk"]
            lines.append(
                f"  {target:8s} wrk {wrk.get('rps', 0):7.0f} req/s p50 "
                f"{wrk.get('p50_ms', 0):6.1f} ms p99 {wrk.get('p99_ms', 0):6.1f} ms "
                f"non-2xx {wrk['non2xx']:.0f} | CPU loop thread {found['cpu_loop_s']:.2f} s, "
                f"other threads {found['cpu_other_s']:.2f} s | loop lag p50 "
                f"{found['lag_p50_ms']:.1f} p99 {found['lag_p99_ms']:.1f} max "
                f"{found['lag_max_ms']:.1f} ms, >50 ms {found['lag_over_50ms']} of "
                f"{found['lag_samples']}"
            )
            for generation, gc_found in found["gc"].items():
                lines.append(
                    f"    gen {generation}: {gc_found['count']:6d} collections "
                    f"({gc_found['on_loop']} on the loop thread), collected "
                    f"{gc_found['collected']:,}, CPU total {gc_found['cpu_total_ms']:8.1f} ms,"
                    f" max {gc_found['cpu_max_ms']:6.2f} ms (wall max "
                    f"{gc_found['wall_max_ms']:.2f} ms)"
                )
    lines.append("ratio freeze on / freeze off, per round (same load, back to back):")
    for round_ in range(rounds):
        by_name = {run["condition"]: run for run in runs if run["round"] == round_}
        on, off = by_name["freeze on"]["targets"], by_name["freeze off"]["targets"]
        for target in on:
            parts = []
            for figure in ("rps", "p50_ms", "p99_ms"):
                a, b = on[target]["wrk"].get(figure), off[target]["wrk"].get(figure)
                parts.append(f"{figure} {a / b:.2f}" if a and b else f"{figure} -")
            lines.append(f"  round {round_} {target}: " + ", ".join(parts))
    for name in {run["condition"] for run in runs}:
        gen2 = [
            found["gc"][2]["cpu_total_ms"]
            for run in runs
            if run["condition"] == name
            for found in run["targets"].values()
        ]
        lines.append(f"median gen-2 CPU per window, {name}: {statistics.median(gen2):.1f} ms")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10, help="Per target and server.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=8793)
    parser.add_argument("--no-worker", action="store_true", help="Add a run without worker.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the raw figures.")
    args = parser.parse_args()
    conditions = list(CONDITIONS.items()) + ([NO_WORKER] if args.no_worker else [])
    runs: list[dict[str, Any]] = []
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            order = conditions if round_ % 2 == 0 else conditions[::-1]
            for name, env in order:
                root = Path(tmp) / f"{round_}-{len(runs)}"
                found = measure(name, env, root, args.port, args.clients, args.seconds)
                runs.append(found | {"round": round_})
                load.append(os.getloadavg()[0])
    print(
        f"{args.clients} connections x {args.seconds:.0f} s per target (wrk, 2 threads), "
        f"SQLite, {args.rounds} round(s); 1-min load average "
        f"{min(load):.1f} to {max(load):.1f} (latencies are only comparable within a round)"
    )
    for line in report(runs, args.rounds):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
