"""Does racing keep its intervals honest, and which spending of the error rate over its
looks pays? Coverage of the true gain over simulated jobs.

python -m benchmarks.racing_coverage [--jobs 200] [--noise normal,t3]
    [--max-replicates 10,20] [--spending obf,pocock,bonferroni]

Each simulated job runs the engine's own job loop (``engine.pipeline.execute``, method
``probe``) with a runner that trains nothing: in replicate r the baseline's test loss is
1 + a shared draw, and candidate c's is the baseline's minus its true gain plus its own
noise. So every candidate's true gain is known, and the rounds, stopping decisions,
intervals and verdicts are the engine's. The same jobs (the same draws) run side by side
for every noise and cap: as a fixed job that trains every candidate to the cap in one
look, and raced (5 replicates, then +5 for open candidates) under each spending schedule
of ``engine.racing`` (``race_spending``).

Replicates here are independent, so the plain paired t interval (``naive``) is the exact
95% interval at a fixed replicate count; the corrected interval's extra term models
replicates that re-split the same rows, which simulated ones do not. What is measured is
what looking after every round does to that interval: without the spending over looks
(engine.racing), stopping when an interval first excludes zero would cover less than 95%.

Reports per noise, cap and schedule: coverage of the true gain by the reported interval
(overall and per true gain), recall of gains ≥ 0.02, helpful calls, wrong-sign verdicts
(helpful on a true loss, harmful on a true gain), calls on true zeros, and replicates
spent (baseline + candidates).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

from benchmarks.reports import comma_list
from engine import Budget, ProbeRun, ProbeSpec, Problem, ScreenResult, prepare, splits_for
from engine.budget import RACE_SPENDINGS, RaceSpending
from engine.pipeline import execute
from engine.training import ProgressFn

# True gains in loss units (the baseline's loss is about 1.0, so 0.01 is the ±1% band
# racing calls negligible). NOISE is the sd of a candidate's own per-replicate noise:
# the grid runs from no effect through effects of a third, one and two noise sds.
TRUE_GAINS = (0.0, 0.0, 0.005, -0.005, 0.01, -0.01, 0.02, -0.02, 0.04, 0.08)
NOISE = 0.03
BASELINE_SD = 0.05


@dataclass(frozen=True)
class SimulatedRunner:
    """Probe results drawn from known gains, the same for a spec whichever round asks
    for it (each draw is seeded by job, replicate and candidate)."""

    job: int
    noise: str
    chunks: int = 1

    def screen(self, progress: ProgressFn) -> ScreenResult:  # pragma: no cover
        raise AssertionError("simulated jobs use method 'probe'")

    def _draw(self, replicate: int, stream: int) -> float:
        rng = np.random.default_rng([self.job, replicate, stream])
        if self.noise == "t3":  # heavy tails, scaled to the same sd
            return float(rng.standard_t(3) / math.sqrt(3.0))
        return float(rng.standard_normal())

    def probes(self, specs: Sequence[ProbeSpec], progress: ProgressFn) -> list[ProbeRun]:
        runs = []
        for spec in specs:
            loss = 1.0 + BASELINE_SD * self._draw(spec.replicate, 0)
            if spec.aux:
                (c,) = spec.aux
                loss += -TRUE_GAINS[c] + NOISE * self._draw(spec.replicate, c + 1)
            metrics = {"loss": loss, "rmse": math.sqrt(max(loss, 0.0)), "r2": 1 - loss}
            runs.append(ProbeRun(spec, metrics, (loss,), 0, 1))
        return runs


def _problem() -> tuple[Problem, list[str]]:
    rng = np.random.default_rng(0)
    names = [f"c{i}" for i in range(len(TRUE_GAINS))]
    frame = pd.DataFrame(rng.normal(size=(200, 3 + len(names))), columns=["x0", "x1", "y", *names])
    return prepare(frame, "y", names, features=["x0", "x1"]), names


def simulate(jobs: int, noise: str, budget: Budget) -> pd.DataFrame:
    """One row per (job, candidate): its true gain, reported interval, verdict and
    replicates."""
    problem, names = _problem()
    splits = splits_for(problem, budget, 0)
    rows = []
    for job in range(jobs):
        advice = execute(
            problem,
            splits,
            budget,
            SimulatedRunner(job, noise),
            method="probe",
            seed=job,
            metric="loss",
            interval="naive",
        )
        baselines = sum(1 for r in advice.runs if r.spec.is_baseline)
        for c in advice.candidates:
            truth = TRUE_GAINS[names.index(c.name)]
            rows.append(
                {
                    "job": job,
                    "truth": truth,
                    "gain": c.gain,
                    "ci_low": c.ci_low,
                    "ci_high": c.ci_high,
                    "covered": c.ci_low <= truth <= c.ci_high,
                    "verdict": c.verdict,
                    "replicates": c.seeds,
                    "baselines": baselines,
                    "rounds": advice.rounds,
                }
            )
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> dict[str, float]:
    """Coverage, verdicts and replicates spent over all simulated candidates."""
    helpful = frame.verdict == "helpful"
    harmful = frame.verdict == "harmful"
    jobs = frame.groupby("job").agg(baselines=("baselines", "first"), cands=("replicates", "sum"))
    return {
        "coverage": float(frame.covered.mean()),
        "worst gain's coverage": float(frame.groupby("truth").covered.mean().min()),
        "recall of gains ≥ 0.02": float(helpful[frame.truth >= 0.02].mean()),
        "helpful calls": int(helpful.sum()),
        "wrong sign": int(((helpful & (frame.truth < 0)) | (harmful & (frame.truth > 0))).sum()),
        "calls on zero gains": int(((helpful | harmful) & (frame.truth == 0)).sum()),
        # False discoveries: a call on a true zero or of the wrong sign, of all calls.
        "false discovery share": float(
            (
                ((helpful | harmful) & (frame.truth == 0))
                | (helpful & (frame.truth < 0))
                | (harmful & (frame.truth > 0))
            ).sum()
            / max(1, int((helpful | harmful).sum()))
        ),
        "replicates per job": float((jobs.baselines + jobs.cands).mean()),
        "mean interval width": float((frame.ci_high - frame.ci_low).mean()),
    }


def budget_for(schedule: str, cap: int) -> Budget:
    """The fixed job (every candidate to the cap, one look) or a raced one (a spending
    schedule), either with options: ``obf+futility=0.2``, ``fixed+fdr=storey``."""
    name, *options = schedule.split("+")
    knobs: dict[str, object] = {"max_replicates": cap}
    if name == "fixed":
        knobs["seeds"] = cap
    else:
        knobs["race_spending"] = cast(RaceSpending, name)
    for option in options:
        key, _, value = option.partition("=")
        if key == "futility":
            knobs["race_futility"] = float(value)
        elif key == "fdr":
            knobs["fdr"] = value
        else:
            raise ValueError(f"schedule {schedule!r}: options are futility=X and fdr=NAME")
    return Budget.from_kwargs(**knobs)


def compare(
    jobs: int, noises: Sequence[str], caps: Sequence[int], schedules: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The side-by-side table (a row per noise, cap and schedule) and coverage per true
    gain (a column per row of it)."""
    table, by_truth = {}, {}
    for noise in noises:
        for cap in caps:
            fixed_cost = math.nan
            for name in schedules:
                started = time.perf_counter()
                frame = simulate(jobs, noise, budget_for(name, cap))
                row = summary(frame)
                fixed_cost = row["replicates per job"] if name == "fixed" else fixed_cost
                row["saved vs fixed"] = 1 - row["replicates per job"] / fixed_cost
                row["seconds"] = time.perf_counter() - started
                table[(noise, cap, name)] = row
                by_truth[(noise, cap, name)] = frame.groupby("truth").covered.mean()
    index = ["noise", "cap", "schedule"]
    return (
        pd.DataFrame(table).T.rename_axis(index),
        pd.DataFrame(by_truth).rename_axis(columns=index),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--noise", default="normal,t3", help="comma-separated: normal, t3")
    parser.add_argument("--max-replicates", default="10,20", help="comma-separated caps")
    parser.add_argument(
        "--spending", default=",".join(RACE_SPENDINGS), help="raced schedules beside fixed"
    )
    parser.add_argument(
        "--futility",
        default="",
        help="comma-separated race_futility thresholds: each raced schedule runs with each "
        "too (e.g. 0.1,0.2)",
    )
    parser.add_argument(
        "--fdr",
        default=None,
        help=f"also run every schedule with this q-value method (the default: {Budget().fdr})",
    )
    args = parser.parse_args(argv)
    noises = comma_list(args.noise)
    if not set(noises) <= {"normal", "t3"}:
        parser.error("--noise: use normal and/or t3, comma-separated")
    spendings = comma_list(args.spending)
    if not set(spendings) <= set(RACE_SPENDINGS):
        parser.error(f"--spending: use some of {', '.join(RACE_SPENDINGS)}, comma-separated")
    caps = [int(c) for c in comma_list(args.max_replicates)]
    print(
        f"{args.jobs} simulated jobs, {len(TRUE_GAINS)} candidates each (sd {NOISE}); "
        f"raced: {Budget().seeds} replicates then +{Budget().race_step} for open candidates "
        "up to the cap; fixed: the cap in one look"
    )
    futilities = [float(f) for f in comma_list(args.futility)]
    if not all(0 < f < 1 for f in futilities):
        parser.error("--futility: thresholds in (0, 1), comma-separated")
    raced = [*spendings, *(f"{s}+futility={f:g}" for s in spendings for f in futilities)]
    schedules = ["fixed", *raced]
    if args.fdr and args.fdr != Budget().fdr:
        schedules += [f"{s}+fdr={args.fdr}" for s in schedules]
    table, by_truth = compare(args.jobs, noises, caps, schedules)
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print("\ncoverage by true gain")
    print(by_truth.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
