"""Screening vs full probing: what ``screen`` and ``screen+probe`` cost and how well they
agree with full paired probing, at 10, 40 and 100 candidates, side by side in one run.

From the repository root (about 5-10 minutes on 2 CPU cores):

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.proxies --write docs/performance.md

Scenario: the synthetic family (``make_task_family``) with 3,000 rows, 32 features and
N candidates — 80% with a known relatedness spread evenly from 0.95 to 0 (cosine with
the main task's weight vector), 20% pure noise — in the low-data regime of the tests
(5 replicates, 30 epochs, 5% of the main labels). Each job runs three times, with the
same seed: ``probe`` (every candidate), ``screen`` and ``screen+probe`` (defaults:
confirm the top 5 and 2 random others).

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from benchmarks.reports import cpu_model, write_section
from engine import Advice, advise, make_task_family

SIZES = (10, 40, 100)
BUDGET: dict[str, Any] = {"seeds": 5, "epochs": 30, "main_train_fraction": 0.05}
SECTION = "## Screening vs full probing"


def timed(**kwargs: Any) -> tuple[Advice, float]:
    start = time.perf_counter()
    advice = advise(**kwargs)
    return advice, time.perf_counter() - start


def rho(x: list[float], y: list[float]) -> float:
    return float(spearmanr(x, y).statistic)


def measure(n_candidates: int, seed: int) -> dict[str, Any]:
    n_noise = n_candidates // 5
    relatedness = np.linspace(0.95, 0.0, n_candidates - n_noise)
    family = make_task_family(
        n_rows=3000, n_features=32, relatedness=relatedness, n_noise=n_noise, seed=seed
    )
    job = {
        "frame": family.frame,
        "main": family.main,
        "candidates": list(family.candidates),
        "seed": seed,
        **BUDGET,
    }
    full, t_full = timed(method="probe", **job)
    screened, t_screen = timed(method="screen", **job)
    two_stage, t_two = timed(method="screen+probe", **job)

    names = list(family.candidates)
    truth = [family.relatedness[c] for c in names]
    gains = [full.candidate(c).gain for c in names]
    lookahead = [screened.candidate(c).proxies["lookahead"] for c in names]
    cosine = [screened.candidate(c).proxies["grad_cosine"] for c in names]
    top_full = {c.name for c in full.candidates[:3]}
    top_two = {c.name for c in two_stage.candidates[:3]}
    probed = sum(c.probed for c in two_stage.candidates)
    helpful_full = {c.name for c in full.candidates if c.verdict == "helpful"}
    helpful_two = {c.name for c in two_stage.candidates if c.verdict == "helpful"}
    agreement = two_stage.agreement
    assert agreement is not None
    return {
        "n": n_candidates,
        "t_full": t_full,
        "t_screen": t_screen,
        "t_two": t_two,
        "rho_look_full": rho(lookahead, gains),
        "rho_cos_full": rho(cosine, gains),
        "rho_look_truth": rho(lookahead, truth),
        "rho_full_truth": rho(gains, truth),
        "agreement": (agreement.spearman, agreement.ci_low, agreement.ci_high, agreement.n),
        "top3": len(top_full & top_two),
        "top3_truth": (
            float(np.mean([family.relatedness[c] for c in top_full])),
            float(np.mean([family.relatedness[c] for c in top_two])),
        ),
        "helpful": (len(helpful_full & helpful_two), len(helpful_full), probed),
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| candidates | probe (s) | screen (s) | screen+probe (s) "
        "| ρ lookahead ~ probe gains | ρ grad-cosine ~ probe gains "
        "| ρ lookahead ~ truth | ρ probe gains ~ truth "
        "| screen+probe agreement ρ [95% CI] (n) | top-3 as probe "
        "| top-3 relatedness probe / s+p | helpful found (probed) |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows:
        a_rho, a_low, a_high, a_n = r["agreement"]
        found, of, probed = r["helpful"]
        truth_full, truth_two = r["top3_truth"]
        lines.append(
            f"| {r['n']} | {r['t_full']:.1f} "
            f"| {r['t_screen']:.1f} ({r['t_screen'] / r['t_full']:.2f}×) "
            f"| {r['t_two']:.1f} ({r['t_two'] / r['t_full']:.2f}×) "
            f"| {r['rho_look_full']:.2f} | {r['rho_cos_full']:.2f} "
            f"| {r['rho_look_truth']:.2f} | {r['rho_full_truth']:.2f} "
            f"| {a_rho:.2f} [{a_low:.2f}, {a_high:.2f}] ({a_n}) "
            f"| {r['top3']}/3 | {truth_full:.2f} / {truth_two:.2f} | {found}/{of} ({probed}) |"
        )
    return head + "\n".join(lines) + "\n"


def machine() -> str:
    cpu = cpu_model()
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__} on CPU with "
        f"{torch.get_num_threads()} thread(s), Python {platform.python_version()}"
    )


def section(rows: list[dict[str, Any]], seed: int, elapsed: float, cpu: float, load: str) -> str:
    today = datetime.date.today().isoformat()
    return f"""{SECTION}

Command (repository root):

```bash
OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.proxies --write docs/performance.md
```

Run on {today}; {machine()}; seed {seed}. Whole run {elapsed / 60:.1f} min wall,
{cpu / 60:.1f} min CPU; the machine was shared with other jobs (load average {load}), so
wall times are inflated alike for all three methods, which ran side by side.
Scenario: `make_task_family(n_rows=3000, n_features=32)` with N candidates, 80% with a
relatedness spread evenly from 0.95 to 0 and 20% pure noise; budget
`seeds=5, epochs=30, main_train_fraction=0.05`. Each method ran once, one after another
in the same process. Times are wall-clock seconds (× = ratio to full probing).
`screen` trains one joint run per replicate for `min(epochs, 10)` epochs and measures the
proxies every 2 steps; `screen+probe` adds paired probes for the top 5 by lookahead plus
2 random others. ρ is Spearman's rank correlation: of the screening proxies with the
gains full probing measured and with the true relatedness, and (for reference) of full
probing's own gains with the truth. "agreement" is what a `screen+probe` job reports
about itself (its confirmed candidates only); "top-3 as probe" counts the candidates
that `screen+probe` ranks top 3 and full probing does too, and "top-3 relatedness" is the
mean true relatedness of each method's top 3 (with many near-equally related candidates
the exact top 3 is decided by noise); "helpful found" counts the candidates full
probing calls helpful that `screen+probe` also calls helpful (it probes only the number
in brackets).

{table(rows)}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path, help="replace the section in this markdown file")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    # Warm-up: the first training calls pay one-off set-up costs; keep them out of the table.
    warm = make_task_family(n_rows=500, n_features=8, relatedness=(0.5,), n_noise=1)
    for method in ("probe", "screen", "screen+probe"):
        advise(warm.frame, warm.main, list(warm.candidates), method=method, seeds=2, epochs=2)
    start, cpu_start = time.perf_counter(), time.process_time()
    loads = [os.getloadavg()[0]]
    rows = []
    for n in args.sizes:
        rows.append(measure(n, args.seed))
        loads.append(os.getloadavg()[0])
        print(table(rows[-1:]), flush=True)
    load = f"{min(loads):.1f} to {max(loads):.1f}"
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    text = section(rows, args.seed, elapsed, cpu, load)
    print(text)
    if args.write:
        write_section(args.write, SECTION, text)


if __name__ == "__main__":
    main()
