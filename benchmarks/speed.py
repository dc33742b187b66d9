"""Probe training speed: the same job three ways in one run — (a) the plain sequential
PyTorch loop a user would write (``engine.reference.train_sequential``: one
``nn.Module`` per probe, trained one after another), (b) auxsel's batched engine
(``advise(method="probe")``) and (c) the two-stage ``screen+probe`` method — plus
scaling tables for the batched engine and a run under a small memory cap.

From the repository root (about 25 minutes on 2 CPU cores for every part; the
sequential loop takes most of it):

    .venv/bin/python -m benchmarks.speed --out bench-out --write docs/performance.md
    .venv/bin/python -m benchmarks.speed --quick  # smoke run (~3 min) into bench-out/quick

Parts (``--parts``): ``compare`` (a vs b vs c at ``--sizes`` candidates, default 20 and
80; ``--keep`` adds rows to an earlier run), ``candidates``, ``rows``, ``features``
(scaling tables), ``memory`` (the memory cap), ``threads`` (1 thread vs every core) and
``profile`` (torch.profiler over a few epochs of the batched run; printed, not in the
tables). Each measurement runs in a fresh subprocess, so its peak RSS (``ru_maxrss``)
is its own; on CUDA the peak is ``torch.cuda.max_memory_allocated``. Results are
written as JSON under ``--out`` (one file per part) and the markdown is rendered from
every JSON file there, so parts can run one at a time (on a shared machine, one
``flock`` each) and be rendered together with ``--parts none``.

Fixed epochs: every method runs with ``patience=0`` (no early stopping), so (a) and (b)
train exactly the same number of epochs. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.reports import cpu_model, write_section

SECTION = "## Probe training speed"
# The 5,000 x 50 job of the targets: 20 candidates x 3 seeds.
BASE = {"rows": 5000, "features": 50, "candidates": 20, "seeds": 3, "epochs": 30}
TOLERANCE = 1e-3  # max |gain(a) - gain(b)| allowed, in units of the main loss


# --------------------------------------------------------------------------- child side


def _family(rows: int, features: int, candidates: int, seed: int = 0) -> Any:
    from engine import make_task_family

    n_noise = candidates // 5
    relatedness = np.linspace(0.95, 0.0, candidates - n_noise).tolist()
    return make_task_family(
        n_rows=rows, n_features=features, relatedness=relatedness, n_noise=n_noise, seed=seed
    )


def _gains(runs: Sequence[Any], metric: str = "loss") -> dict[str, float]:
    """Mean over replicates of baseline minus paired test loss, per candidate."""
    base = {r.spec.replicate: r.metrics[metric] for r in runs if r.spec.is_baseline}
    per: dict[int, list[float]] = {}
    for run in runs:
        if len(run.spec.aux) == 1:
            per.setdefault(run.spec.aux[0], []).append(
                base[run.spec.replicate] - run.metrics[metric]
            )
    return {str(c): float(np.mean(v)) for c, v in sorted(per.items())}


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _warm_up(device: str) -> None:
    """One tiny job: the first training call pays one-off set-up costs."""
    from engine import advise

    family = _family(400, 8, 2)
    advise(family.frame, family.main, list(family.candidates), device=device, seeds=1, epochs=1)


def child(job: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in this (fresh) process and return its record."""
    from engine import Budget, advise, pairwise_plan, prepare, resolve_device, splits_for
    from engine.reference import train_sequential
    from engine.training_data import TrainingData

    torch.set_num_threads(job["threads"])
    device = resolve_device(job["device"])
    family = _family(job["rows"], job["features"], job["candidates"])
    budget_kw: dict[str, Any] = {
        "seeds": job["seeds"],
        # A fixed number of replicates (no racing): every row is the job its heading says.
        "max_replicates": job["seeds"],
        "epochs": job["epochs"],
        "patience": 0,
        **job.get("budget", {}),
    }
    if job["method"] != "matmul":
        _warm_up(job["device"])
    if job.get("peak"):
        # The matmul limit measured in this process, just before the job: on a shared
        # machine the share of it is steadier than either number alone.
        record_peak = _matmul_peak(device, job.get("size", 2048))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = _peak_mb(device)
    record: dict[str, Any] = {"job": job}
    start = time.perf_counter()
    if job["method"] == "sequential":
        plan = Budget(**budget_kw)
        problem = prepare(family.frame, family.main, list(family.candidates))
        splits = splits_for(problem, plan, 0)
        data = TrainingData(problem, splits, device)
        seq_seeds = job.get("seq_seeds") or plan.seeds
        specs = [
            s for s in pairwise_plan(len(problem.candidates), plan.seeds) if s.replicate < seq_seeds
        ]
        runs = train_sequential(data, specs, plan, seed=0, metric="loss")
        _sync(device)
        record["scale"] = plan.seeds / seq_seeds
        record["probes"] = len(specs)
    elif job["method"] in ("probe", "screen+probe"):
        advice = advise(
            family.frame,
            family.main,
            list(family.candidates),
            device=job["device"],
            method=job["method"],
            **budget_kw,
        )
        _sync(device)
        runs = list(advice.runs)
        record["chunks"] = advice.chunks
        record["scale"] = 1.0
        record["probes"] = len(runs)
    elif job["method"] == "profile":
        return _profile(family, budget_kw, job)
    elif job["method"] == "matmul":
        record["matmul_gflops"] = _matmul_peak(device, job.get("size", 2048))
        record["peak_mb"] = _peak_mb(device)
        return record
    else:
        raise ValueError(job["method"])
    record["seconds"] = time.perf_counter() - start
    record["gains"] = _gains(runs)
    record["losses"] = {run.spec.key: run.metrics["loss"] for run in runs}
    record["pool_rows"] = None
    record["rss_before_mb"] = rss_before
    record["peak_mb"] = _peak_mb(device)
    record["flops"] = _flops(job, budget_kw, runs)
    record["load"] = os.getloadavg()[0]
    if job.get("peak"):
        record["matmul_gflops"] = record_peak
    return record


def _flops(job: dict[str, Any], budget_kw: dict[str, Any], runs: Sequence[Any]) -> float:
    """Matmul FLOPs of the trained probes (what a sequential loop computes): per
    training row and epoch, forward 2·W, weight gradients 2·W, input gradients
    2·(W − F·H1) (the inputs need none), W = weights a row passes through (trunk, main
    head and the probe's auxiliary heads); plus the forward pass over the validation
    rows each epoch and over the test rows once. Biases, losses and Adam are left out."""
    from engine import Budget

    plan = Budget(**budget_kw)
    n_val = round(job["rows"] * plan.val_fraction)
    n_test = round(job["rows"] * plan.test_fraction)
    n_pool = job["rows"] - n_val - n_test
    sizes = [job["features"], *plan.hidden]
    trunk = sum(a * b for a, b in pairwise(sizes))
    h = sizes[-1]
    total = 0.0
    for run in runs:
        # Soft sharing: a pairing trains the candidate's own trunk beside the main one.
        trunks = 2 if plan.sharing != "hard" and run.spec.aux else 1
        w = trunks * trunk + h * (1 + len(run.spec.aux))  # regression heads: 1 output each
        per_row = 2 * w + 2 * w + 2 * (w - trunks * sizes[0] * sizes[1])
        epochs = run.epochs
        total += (
            epochs * n_pool * per_row + epochs * n_val * 2 * (trunk + h) + n_test * 2 * (trunk + h)
        )
    return total


def _matmul_peak(device: torch.device, n: int) -> float:
    """Best GFLOP/s of an n x n float32 matmul."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    out = torch.empty(n, n, device=device)
    for _ in range(2):
        torch.mm(a, b, out=out)
    _sync(device)
    best = float("inf")
    for _ in range(10):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def _profile(family: Any, budget_kw: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    from engine import advise

    activities = [ProfilerActivity.CPU]
    if job["device"] == "cuda":
        activities.append(ProfilerActivity.CUDA)
    kw = {**budget_kw, "epochs": job.get("profile_epochs", 3)}
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        advise(family.frame, family.main, list(family.candidates), device=job["device"], **kw)
    seconds = time.perf_counter() - start
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    return {"job": job, "seconds": seconds, "table": table}


# -------------------------------------------------------------------------- parent side


def run_child(job: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed", "--child", json.dumps(job)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child failed for {job}:\n{out.stderr[-3000:]}")
    record: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return record


def _job(args: argparse.Namespace, method: str, **overrides: Any) -> dict[str, Any]:
    job = {**BASE, "method": method, "device": args.device, "threads": args.threads}
    if args.quick:
        job.update(rows=2000, features=20, candidates=5, epochs=5)
    job.update(overrides)
    return job


def part_compare(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [5] if args.quick else args.sizes
    previous = args.out / "compare.json"
    rows = json.loads(previous.read_text())["rows"] if args.keep and previous.exists() else []
    for n in sizes:
        # The sequential loop on 1 of 3 seeds at 80 candidates, scaled ×3.
        seq_seeds = 1 if n >= 80 else None
        records = {
            "sequential": run_child(_job(args, "sequential", candidates=n, seq_seeds=seq_seeds)),
            "probe": run_child(_job(args, "probe", candidates=n)),
            "screen+probe": run_child(_job(args, "screen+probe", candidates=n)),
        }
        rows.append(records)
        print(render_compare([records]), flush=True)
    peak = run_child(_job(args, "matmul"))
    return {"rows": rows, "matmul": peak}


def part_scaling(args: argparse.Namespace, axis: str) -> dict[str, Any]:
    if axis == "candidates":
        values, epochs = ([5, 10] if args.quick else [5, 10, 20, 40, 80]), 10
        seq_upto = 20
    elif axis == "rows":
        values = [1000, 2000] if args.quick else [1000, 5000, 20000, 50000, 200000]
        epochs, seq_upto = 2, 20000
    else:
        values, epochs = ([20, 50] if args.quick else [20, 50, 100, 200, 500]), 10
        seq_upto = 100
    if args.quick:
        epochs = 2
    rows = []
    for v in values:
        overrides: dict[str, Any] = {axis: v, "epochs": epochs}
        records = {"probe": run_child(_job(args, "probe", **overrides))}
        if v <= seq_upto:
            records["sequential"] = run_child(_job(args, "sequential", seq_seeds=1, **overrides))
        rows.append(records)
        print(render_scaling(axis, [records]), flush=True)
    return {"axis": axis, "rows": rows}


def part_memory(args: argparse.Namespace) -> dict[str, Any]:
    n, rows, feats = (5, 2000, 20) if args.quick else (80, 20000, 200)
    epochs = 1 if args.quick else 2
    records = []
    for cap in (None, 64.0):
        budget = {} if cap is None else {"memory_mb": cap}
        records.append(
            run_child(
                _job(
                    args,
                    "probe",
                    candidates=n,
                    rows=rows,
                    features=feats,
                    epochs=epochs,
                    budget=budget,
                )
            )
        )
    return {"rows": records}


def compare_trees(args: argparse.Namespace) -> str:
    """The base batched job in each source tree (each needs this file as
    benchmarks/speed.py), alternating, ``--reps`` times: engine before/after."""
    times: dict[str, list[float]] = {tree: [] for tree in args.trees}
    losses: dict[str, dict[str, float]] = {}
    job = json.dumps(_job(args, "probe"))
    for _ in range(args.reps):
        for tree in args.trees:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.speed", "--child", job],
                cwd=tree,
                capture_output=True,
                text=True,
                check=True,
            )
            record = json.loads(out.stdout.strip().splitlines()[-1])
            times[tree].append(record["seconds"])
            losses[tree] = record["losses"]
    first = args.trees[0]
    lines = ["| tree | wall (s), each run | median (s) | max abs test-loss diff vs first |"]
    lines.append("|---|---|---:|---:|")
    for tree in args.trees:
        diff = max(abs(losses[tree][k] - losses[first][k]) for k in losses[first])
        runs = ", ".join(f"{t:.2f}" for t in times[tree])
        lines.append(f"| {tree} | {runs} | {float(np.median(times[tree])):.2f} | {diff:.1e} |")
    return "\n".join(lines) + "\n"


def part_threads(args: argparse.Namespace) -> dict[str, Any]:
    """The base job on 1 thread and on every core."""
    counts = sorted({1, os.cpu_count() or 1})
    rows = [run_child({**_job(args, "probe"), "threads": n}) for n in counts]
    # The sequential loop's small matmuls may prefer one thread: give it its best.
    rows += [
        run_child({**_job(args, "sequential", seq_seeds=1, epochs=10), "threads": n})
        for n in counts
    ]
    return {"rows": rows}


# The recipes of issue 17: (name, budget). 20 fixed epochs, batch 128, lr 1e-3.
RECIPES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("32", {"hidden": [32]}),
    ("128", {"hidden": [128]}),
    ("256/64 + dropout 0.2, wd 1e-4", {"hidden": [256, 64], "dropout": 0.2, "weight_decay": 1e-4}),
)


def part_recipes(args: argparse.Namespace) -> dict[str, Any]:
    """Each recipe's share of the matmul peak measured in the same process, and the
    plain loop against the engine at 128 wide, batch 256, 20 epochs, side by side."""
    epochs = 2 if args.quick else 20
    rows = []
    for name, budget in RECIPES:
        job = _job(args, "probe", epochs=epochs, peak=True)
        job["budget"] = {**budget, "batch_size": 128, "lr": 1e-3}
        record = run_child(job)
        record["recipe"] = name
        rows.append(record)
        print(render_recipes({"rows": [record]}), flush=True)
    loop_budget = {"hidden": [128], "batch_size": 256, "lr": 1e-3}
    loop = {
        "sequential": run_child(
            {**_job(args, "sequential", epochs=epochs, seq_seeds=1), "budget": loop_budget}
        ),
        "probe": run_child({**_job(args, "probe", epochs=epochs), "budget": loop_budget}),
    }
    return {"rows": rows, "loop": loop}


def part_sharing(args: argparse.Namespace) -> dict[str, Any]:
    """The default-like recipe (256/64, dropout, weight decay) under each parameter
    sharing, side by side: soft sharing trains a second trunk per pairing."""
    from engine import SHARINGS

    epochs = 2 if args.quick else 20
    _, base = RECIPES[-1]
    rows = []
    for sharing in SHARINGS:
        job = _job(args, "probe", epochs=epochs, peak=True)
        job["budget"] = {**base, "batch_size": 128, "lr": 1e-3, "sharing": sharing}
        record = run_child(job)
        record["recipe"] = f"256/64 + dropout 0.2, wd 1e-4, {sharing}"
        rows.append(record)
        print(render_recipes({"rows": [record]}), flush=True)
    return {"rows": rows}


def _steps(rec: dict[str, Any]) -> float:
    """Probe-steps (one probe, one minibatch) the record trained."""
    from engine import Budget

    j = rec["job"]
    plan = Budget(**{"seeds": j["seeds"], "epochs": j["epochs"], **j.get("budget", {})})
    n_pool = (
        j["rows"] - round(j["rows"] * plan.val_fraction) - round(j["rows"] * plan.test_fraction)
    )
    per_epoch = -(-n_pool // plan.batch_size)
    return float(rec["probes"] * rec["scale"] * per_epoch * j["epochs"])


def render_recipes(result: dict[str, Any]) -> str:
    head = (
        "| trunk | wall (s) | GFLOP | GFLOP/s | matmul peak, same process (GFLOP/s) "
        "| share of peak | probe-steps/s | peak RSS (MB) | load avg |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for rec in result["rows"]:
        rate = rec["flops"] / rec["seconds"] / 1e9
        lines.append(
            f"| {rec['recipe']} | {rec['seconds']:.1f} | {rec['flops'] / 1e9:.0f} | {rate:.1f} "
            f"| {rec['matmul_gflops']:.0f} | {rate / rec['matmul_gflops']:.0%} "
            f"| {_steps(rec) / rec['seconds']:.0f} | {rec['peak_mb']:.0f} | {rec['load']:.1f} |"
        )
    text = head + "\n".join(lines) + "\n"
    loop = result.get("loop")
    if loop:
        seq, bat = loop["sequential"], loop["probe"]
        t_seq = seq["seconds"] * seq["scale"]
        text += (
            f"\nPlain loop vs engine (128 wide, batch 256, {bat['job']['epochs']} epochs, "
            f"{bat['probes']} probes): loop {_time(seq)} s, engine {bat['seconds']:.1f} s: "
            f"**{t_seq / bat['seconds']:.1f}×** (probe-steps/s {_steps(seq) / t_seq:.0f} vs "
            f"{_steps(bat) / bat['seconds']:.0f}; load avg {seq['load']:.1f} / "
            f"{bat['load']:.1f}).\n"
        )
    return text


def part_profile(args: argparse.Namespace) -> dict[str, Any]:
    return run_child(_job(args, "profile", profile_epochs=1 if args.quick else 3))


# ----------------------------------------------------------------------------- rendering


def _per_probe_epoch(rec: dict[str, Any]) -> float:
    return float(
        rec["seconds"] * rec["scale"] / (rec["probes"] * rec["scale"] * rec["job"]["epochs"])
    )


def _time(rec: dict[str, Any]) -> str:
    t = rec["seconds"] * rec["scale"]
    return f"{t:.1f}" + (f" (×{rec['scale']:.0f} of 1 seed)" if rec["scale"] != 1 else "")


def gain_difference(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], float, float]:
    """Per replicate and candidate, baseline minus paired test loss; the largest
    |gain(a) - gain(b)| and the median over the probes both trained (the loop may
    train fewer seeds), and the paired gains that differ by more than TOLERANCE."""

    def gains(rec: dict[str, Any]) -> dict[str, float]:
        losses: dict[str, float] = rec["losses"]
        return {
            key: losses[key.split(":")[0] + ":base"] - loss
            for key, loss in losses.items()
            if not key.endswith(":base")
        }

    ga, gb = gains(a), gains(b)
    common = sorted(set(ga) & set(gb))
    diffs = [abs(ga[k] - gb[k]) for k in common]
    beyond = [k for k, d in zip(common, diffs, strict=True) if d > TOLERANCE]
    return beyond, max(diffs), float(np.median(diffs))


def render_compare(rows: list[dict[str, Any]], matmul: dict[str, Any] | None = None) -> str:
    head = (
        "| job | method | wall (s) | a/b | probes | probe-epochs/s | peak RSS (MB) "
        "| GFLOP/s | gain diff a−b: max / median |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for recs in rows:
        seq, bat, two = recs["sequential"], recs["probe"], recs["screen+probe"]
        j = bat["job"]
        name = f"{j['candidates']}×{j['seeds']}, {j['rows']}×{j['features']}, {j['epochs']} ep"
        beyond, diff, median = gain_difference(seq, bat)
        n_gains = len(recs["sequential"]["losses"]) - int(
            recs["sequential"]["probes"] // (j["candidates"] + 1)
        )
        t_seq, t_bat = seq["seconds"] * seq["scale"], bat["seconds"]
        for label, rec, ratio in (
            ("(a) sequential loop", seq, ""),
            ("(b) batched engine", bat, f"{t_seq / t_bat:.1f}×"),
            ("(c) screen+probe", two, f"{t_seq / two['seconds']:.1f}×"),
        ):
            probes = int(rec["probes"] * rec["scale"])
            pe = probes * rec["job"]["epochs"] / (rec["seconds"] * rec["scale"])
            gf = (
                f"{bat['flops'] / bat['seconds'] / 1e9:.1f}"
                if rec is bat
                else (f"{rec['flops'] / rec['seconds'] / 1e9:.1f}" if rec is seq else "")
            )
            gd = (
                (
                    f"{diff:.1e} / {median:.1e} ({len(beyond)} of {n_gains} paired gains "
                    f"beyond {TOLERANCE:g})"
                )
                if rec is bat
                else ""
            )
            lines.append(
                f"| {name} | {label} | {_time(rec)} | {ratio} | {probes} | {pe:.1f} "
                f"| {rec['peak_mb']:.0f} | {gf} | {gd} |"
            )
    text = head + "\n".join(lines) + "\n"
    if matmul is not None:
        text += (
            f"\nMeasured peak: {matmul['matmul_gflops']:.1f} GFLOP/s for a "
            f"{matmul['job'].get('size', 2048)}² float32 matmul "
            f"({matmul['job']['threads']} thread(s)).\n"
        )
    return text


def render_scaling(axis: str, rows: list[dict[str, Any]]) -> str:
    unit = {"candidates": "candidate×seed", "rows": "1k rows", "features": "feature"}[axis]
    head = (
        f"| {axis} | epochs | probes | batched (s) | batched ms per {unit} "
        "| batched ms per probe-epoch | peak RSS (MB) | sequential (s) | a/b "
        "| max gain diff a−b |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for recs in rows:
        bat = recs["probe"]
        j = bat["job"]
        denom = {
            "candidates": j["candidates"] * j["seeds"],
            "rows": j["rows"] / 1000,
            "features": j["features"],
        }[axis]
        seq = recs.get("sequential")
        seq_text, ratio, diff = "", "", ""
        if seq is not None:
            seq_text = _time(seq)
            ratio = f"{seq['seconds'] * seq['scale'] / bat['seconds']:.1f}×"
            if "losses" in seq and "losses" in bat:
                diff = f"{gain_difference(seq, bat)[1]:.1e}"
        lines.append(
            f"| {j[axis]} | {j['epochs']} | {bat['probes']} | {bat['seconds']:.1f} "
            f"| {1000 * bat['seconds'] / denom:.1f} | {1000 * _per_probe_epoch(bat):.1f} "
            f"| {bat['peak_mb']:.0f} | {seq_text} | {ratio} | {diff} |"
        )
    return head + "\n".join(lines) + "\n"


def slope(rows: list[dict[str, Any]], axis: str) -> float:
    """Log-log slope of batched time against the axis (1 = linear)."""
    x = [r["probe"]["job"][axis] for r in rows]
    if axis == "candidates":
        x = [(v + 1) for v in x]  # probes per seed: baseline + candidates
    y = [r["probe"]["seconds"] for r in rows]
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def render_memory(rows: list[dict[str, Any]]) -> str:
    head = (
        "| memory_mb | chunks | wall (s) | peak RSS (MB) | RSS before training (MB) |\n"
        "|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for rec in rows:
        cap = rec["job"].get("budget", {}).get("memory_mb", "default (2048)")
        lines.append(
            f"| {cap} | {rec['chunks']} | {rec['seconds']:.1f} | {rec['peak_mb']:.0f} "
            f"| {rec['rss_before_mb']:.0f} |"
        )
    j = rows[0]["job"]
    return (
        f"Job: {j['candidates']} candidates × {j['seeds']} seeds on {j['rows']}×{j['features']}, "
        f"{j['epochs']} epochs.\n\n" + head + "\n".join(lines) + "\n"
    )


def machine(threads: int, device: str) -> str:
    cpu = cpu_model()
    gpu = ""
    if device != "cpu" and torch.cuda.is_available():
        gpu = f", GPU {torch.cuda.get_device_name()}"
    return (
        f"`nproc` = {os.cpu_count()} ({cpu}){gpu}, torch {torch.__version__}, "
        f"{threads} torch thread(s), device {device}, Python {platform.python_version()}"
    )


def recipes_section(heading: str, table: str, args: argparse.Namespace) -> str:
    return (
        f"{heading}\n\n"
        "Command (repository root): `nice -n 5 .venv/bin/python -m benchmarks.speed "
        f"--threads {args.threads} --parts recipes --write docs/performance.md`. One run, each "
        "measurement in a fresh process; the job is 20 candidates × 3 replicates on "
        "5,000 × 50 (`make_task_family`, regression), batch 128, Adam(W) lr 1e-3, 20 fixed "
        "epochs (`patience=0`). The matmul peak is the best of ten 2,048² float32 "
        "products in the same process just before the job; FLOPs are counted "
        "analytically (see `_flops`). The machine is shared: the load average is "
        "printed beside each number.\n\n"
        f"Run on {datetime.date.today().isoformat()}; {machine(args.threads, args.device)}.\n\n"
        + table
    )


def render(results: dict[str, Any], args: argparse.Namespace) -> str:
    from engine import Budget

    default = Budget()
    parts = [
        f"{SECTION}\n",
        "Command (repository root): `.venv/bin/python -m benchmarks.speed --out bench-out "
        "--write docs/performance.md` runs every part. On the shared 2-core machine the "
        "tables below were made part by part, each under the machine's CPU lock:\n",
        "```bash\n"
        "B='flock /tmp/cpu.lock .venv/bin/python -m benchmarks.speed --out bench-out'\n"
        "$B --parts compare --sizes 20\n"
        "$B --parts compare --sizes 80 --keep\n"
        "$B --parts candidates rows features\n"
        "$B --parts memory threads profile\n"
        "$B --parts none --write docs/performance.md\n```\n",
        f"Run on {datetime.date.today().isoformat()}; {machine(args.threads, args.device)}. "
        f"Budget: defaults (hidden {default.hidden}, batch {default.batch_size}, Adam lr "
        f"{default.lr}) with `patience=0`, so every probe trains the fixed number of epochs "
        "in both (a) and (b). Tables: `make_task_family` regression tables, 80% related "
        "candidates and 20% noise; a job is (candidates + 1) × seeds probes. Each "
        "measurement ran in a fresh process (peak RSS is that process's `ru_maxrss`, "
        "torch and the data included). GFLOP/s counts the probes' matmuls analytically "
        "(see `_flops`: per training row 6·W less the first layer's unneeded input "
        "gradient, plus the validation pass each epoch) over the whole wall time, set-up "
        'included. "×3 of 1 seed": the sequential loop trained the first seed only '
        "and its time is scaled by the seeds; its gains are compared on that seed. "
        "For (c), probe-epochs/s counts the confirmation probes only (the screening run "
        "trains one joint model per seed). Wall times include preparing the table, "
        "splits and tensors.\n",
    ]
    if "compare" in results:
        r = results["compare"]
        parts.append("### Sequential loop (a) vs batched engine (b) vs screen+probe (c)\n")
        parts.append(render_compare(r["rows"], r["matmul"]))
    for axis in ("candidates", "rows", "features"):
        if axis in results:
            rows = results[axis]["rows"]
            parts.append(f"### Scaling with {axis}\n")
            parts.append(render_scaling(axis, rows))
            parts.append(
                f"\nLog-log slope of batched time against {axis}: {slope(rows, axis):.2f}\n"
            )
    if "threads" in results:
        parts.append("### Threads\n")
        parts.append(
            "| torch threads | method | job | wall (s) |\n|---:|---|---|---:|\n"
            + "\n".join(
                f"| {r['job']['threads']} | {r['job']['method']} "
                f"| {r['job']['candidates']}×{r['job']['seeds']}, "
                f"{r['job']['rows']}×{r['job']['features']}, {r['job']['epochs']} ep "
                f"| {_time(r)} |"
                for r in results["threads"]["rows"]
            )
            + "\n"
        )
    if "memory" in results:
        parts.append("### Memory cap\n")
        parts.append(render_memory(results["memory"]["rows"]))
    return "\n".join(parts)


PARTS = (
    "compare",
    "candidates",
    "rows",
    "features",
    "memory",
    "threads",
    "recipes",
    "profile",
    "sharing",
)
DEFAULT_PARTS = [p for p in PARTS if p not in ("profile", "sharing")]
RECIPES_SECTION = "## Faithful-recipe efficiency"
SHARING_SECTION = "## Soft-sharing efficiency"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument(
        "--out", type=Path, help="results folder (default bench-out, bench-out/quick with --quick)"
    )
    parser.add_argument("--parts", nargs="+", default=DEFAULT_PARTS, help="or 'none'")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[20, 80], help="candidates in 'compare'"
    )
    parser.add_argument(
        "--keep", action="store_true", help="add to the rows of an earlier 'compare' in --out"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--write", type=Path, help="replace the section in this markdown file")
    parser.add_argument(
        "--trees", nargs="+", help="time the base batched job in these source trees instead"
    )
    parser.add_argument("--reps", type=int, default=2, help="runs per tree with --trees")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.trees:
        print(compare_trees(args))
        return
    if args.out is None:
        args.out = Path("bench-out/quick" if args.quick else "bench-out")
    args.out.mkdir(parents=True, exist_ok=True)
    for part in args.parts:
        if part == "none":
            continue
        if part == "compare":
            result = part_compare(args)
        elif part in ("candidates", "rows", "features"):
            result = part_scaling(args, part)
        elif part == "memory":
            result = part_memory(args)
        elif part == "threads":
            result = part_threads(args)
        elif part == "recipes":
            result = part_recipes(args)
            (args.out / "recipes.json").write_text(json.dumps(result, indent=1))
            text = render_recipes(result)
            print(text)
            if args.write:
                heading = f"{RECIPES_SECTION} ({datetime.date.today().isoformat()})"
                write_section(args.write, heading, recipes_section(heading, text, args))
            continue
        elif part == "sharing":
            result = part_sharing(args)
            (args.out / "sharing.json").write_text(json.dumps(result, indent=1))
            text = render_recipes(result)
            print(text)
            if args.write:
                heading = f"{SHARING_SECTION} ({datetime.date.today().isoformat()})"
                section = recipes_section(heading, text, args).replace(
                    "--parts recipes", "--parts sharing"
                )
                write_section(args.write, heading, section)
            continue
        elif part == "profile":
            result = part_profile(args)
            print(result["table"])
        else:
            raise SystemExit(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
        (args.out / f"{part}.json").write_text(json.dumps(result, indent=1))
    results = {p.stem: json.loads(p.read_text()) for p in sorted(args.out.glob("*.json"))}
    results.pop("profile", None)
    results.pop("recipes", None)
    results.pop("sharing", None)
    if not results:  # e.g. only the 'recipes' part, which writes its own section
        return
    text = render(results, args)
    (args.out / "speed.md").write_text(text)
    print(text)
    if args.write:
        write_section(args.write, SECTION, text)


if __name__ == "__main__":
    main()
