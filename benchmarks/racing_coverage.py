"""Does racing keep its intervals honest? Coverage of the true gain over simulated jobs.

python -m benchmarks.racing_coverage [--jobs 200] [--noise normal|t3] [--max-replicates N]

Each simulated job runs the engine's own job loop (``engine.pipeline.execute``, method
``probe``) with a runner that trains nothing: in replicate r the baseline's test loss is
1 + a shared draw, and candidate c's is the baseline's minus its true gain plus its own
noise. So every candidate's true gain is known, and the rounds, stopping decisions,
intervals and verdicts are the engine's. The same jobs run twice: with the default racing
schedule, and as a fixed job that trains every candidate to the cap in one look.

Replicates here are independent, so the plain paired t interval (``naive``) is the exact
95% interval at a fixed replicate count; the corrected interval's extra term models
replicates that re-split the same rows, which simulated ones do not. What is measured is
what looking after every round does to that interval: without the spending over looks
(engine.racing), stopping when an interval first excludes zero would cover less than 95%.

Reports per schedule: coverage of the true gain by the reported interval (overall and
per true gain), verdicts right and wrong, and replicates spent (baseline + candidates).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine import Budget, ProbeRun, ProbeSpec, Problem, ScreenResult, prepare, splits_for
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
    """Coverage, verdict errors and replicates spent over all simulated candidates."""
    helpful = frame.verdict == "helpful"
    harmful = frame.verdict == "harmful"
    jobs = frame.groupby("job").agg(baselines=("baselines", "first"), cands=("replicates", "sum"))
    return {
        "coverage": float(frame.covered.mean()),
        "helpful calls": int(helpful.sum()),
        "helpful wrong (truth ≤ 0)": int((helpful & (frame.truth <= 0)).sum()),
        "harmful calls": int(harmful.sum()),
        "harmful wrong (truth ≥ 0)": int((harmful & (frame.truth >= 0)).sum()),
        "recall of gains ≥ 0.02": float(helpful[frame.truth >= 0.02].mean()),
        "replicates per job": float((jobs.baselines + jobs.cands).mean()),
        "mean interval width": float((frame.ci_high - frame.ci_low).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--noise", choices=("normal", "t3"), default="normal")
    parser.add_argument("--max-replicates", type=int, default=None)
    args = parser.parse_args(argv)
    racing = Budget() if args.max_replicates is None else Budget(max_replicates=args.max_replicates)
    cap = racing.replicate_cap
    fixed = Budget(seeds=cap, max_replicates=cap)
    print(
        f"{args.jobs} simulated jobs, {len(TRUE_GAINS)} candidates each, {args.noise} noise "
        f"(sd {NOISE}); racing: {racing.seeds} replicates then +{racing.race_step} for open "
        f"candidates up to {cap}; fixed: {cap} replicates, one look"
    )
    table = {}
    coverage_by_truth = {}
    for name, budget in (("racing", racing), ("fixed", fixed)):
        started = time.perf_counter()
        frame = simulate(args.jobs, args.noise, budget)
        table[name] = summary(frame) | {"seconds": time.perf_counter() - started}
        coverage_by_truth[name] = frame.groupby("truth").covered.mean()
    print(pd.DataFrame(table).to_string(float_format=lambda v: f"{v:.3f}"))
    print("\ncoverage by true gain")
    print(pd.DataFrame(coverage_by_truth).to_string(float_format=lambda v: f"{v:.3f}"))
    saved = 1 - table["racing"]["replicates per job"] / table["fixed"]["replicates per job"]
    print(f"\nracing trained {saved:.0%} fewer replicates than the fixed job")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
