"""Run the validity study: per scenario, the reference's true gains, auxsel's predictions
under several budgets, the zero-cost correlation baseline, and their agreement.

Replicates are independent given the job seed (each has its own split, initialisation
and batch order, derived from (seed, replicate)), so one probe run with R = k x m
replicates holds m independent k-seed jobs: replicates 0..k-1 are exactly the k-seed
job a user would run with this seed, replicates k..2k-1 the next one, and so on. The
study scores each of those jobs on its own and averages, which estimates what one
user job achieves, not what the pooled replicates would.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

import engine
from benchmarks.validity.agreement import agreement, covered, label_correlation
from benchmarks.validity.scenarios import SCENARIOS, Scenario
from benchmarks.validity.truth import TruthConfig, TruthResult, full_training
from engine import Budget, build_advice, prepare, run_probes, splits_for
from engine.advice import Advice
from engine.plan import pairwise_plan

# Budget variants, one knob at a time around the engine's current default (Budget()).
# The seeds curve needs no variant: it comes from subsets of the default's replicates.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "epochs=10": {"epochs": 10},
    "epochs=60": {"epochs": 60},
    "hidden=32": {"hidden": (32,)},
    "hidden=256,64": {"hidden": (256, 64)},
    "lr=1e-3": {"lr": 1e-3},
    "lr=1e-2": {"lr": 1e-2},
    "lam=0.3": {"lam": 0.3},
    "lam=3": {"lam": 3.0},
}
QUICK_VARIANTS = ("default", "epochs=10", "lr=1e-2")


@dataclass(frozen=True)
class StudyConfig:
    seed: int = 0
    quick: bool = False
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    methods: tuple[str, ...] = ("probe", "correlation")
    variants: tuple[str, ...] = tuple(VARIANTS)
    seeds: int = 3  # replicates of one job in every variant (the seeds curve varies it)
    default_repeats: int = 4  # independent jobs of the default budget per scenario
    variant_repeats: int = 2  # ... of every other variant
    truth_seeds: int | None = None  # None: each scenario's own count
    truth: TruthConfig | None = None  # None: TruthConfig() with those seeds
    extra_variants: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def make(cls, **kwargs: Any) -> StudyConfig:
        if kwargs.get("quick"):
            kwargs.setdefault("variants", QUICK_VARIANTS)
            kwargs.setdefault("default_repeats", 2)
            kwargs.setdefault("variant_repeats", 1)
        return cls(**kwargs)

    def budget(self, variant: str) -> dict[str, Any]:
        table = VARIANTS | self.extra_variants
        if variant not in table:
            raise KeyError(f"unknown budget variant {variant!r}; known: {', '.join(table)}")
        return dict(table[variant])


@dataclass
class ScenarioResult:
    scenario: str
    real: bool
    truth: TruthResult
    predictions: pd.DataFrame  # one row per (method, budget, repeat, candidate)
    scores: pd.DataFrame  # one row per (method, budget, repeat): agreement metrics
    timings: dict[str, float]


Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- methods


def probe_jobs(
    scenario: Scenario,
    budget: dict[str, Any],
    *,
    seed: int,
    seeds: int,
    repeats: int,
    subsets: Sequence[int] = (),
) -> tuple[list[tuple[str, int, Advice, Advice, float]], dict[tuple[int, int], float]]:
    """Train ``seeds x repeats`` replicates at once and score every ``seeds``-replicate
    job on its own (and every ``k``-replicate job for ``k`` in ``subsets``).

    Returns (label, repeat, corrected advice, naive advice, seconds per job) and the
    per-replicate gains {(replicate, candidate index): gain} for coverage checks.
    """
    started = time.perf_counter()
    total = seeds * repeats
    plan = Budget.from_kwargs(
        **(budget | {"seeds": total, "main_train_fraction": scenario.main_train_fraction})
    )
    problem = prepare(
        scenario.frame,
        scenario.main,
        list(scenario.candidates),
        features=list(scenario.features),
        tables=scenario.tables,
    )
    splits = splits_for(problem, plan, seed)
    runs, _ = run_probes(
        problem,
        splits,
        pairwise_plan(len(problem.candidates), total),
        plan,
        seed=seed,
        metric="loss",
    )
    seconds = time.perf_counter() - started
    jobs = []
    for k in sorted({seeds, *subsets}):
        for repeat in range(total // k):
            chosen = set(range(repeat * k, (repeat + 1) * k))
            mine = [r for r in runs if r.spec.replicate in chosen]
            job_budget = replace(plan, seeds=k)
            advice = {
                interval: build_advice(
                    problem, splits, mine, job_budget, seed=seed, metric="loss", interval=interval
                )
                for interval in ("corrected", "naive")
            }
            label = "" if k == seeds else f"seeds={k}"
            jobs.append((label, repeat, advice["corrected"], advice["naive"], seconds * k / total))
    per_replicate = {}
    base = {r.spec.replicate: r.metrics["loss"] for r in runs if r.spec.is_baseline}
    for r in runs:
        if not r.spec.is_baseline:
            per_replicate[(r.spec.replicate, r.spec.aux[0])] = (
                base[r.spec.replicate] - r.metrics["loss"]
            )
    return jobs, per_replicate


def _advice_rows(advice: Advice, naive: Advice) -> pd.DataFrame:
    frame = advice.to_frame().set_index("candidate")
    other = naive.to_frame().set_index("candidate")
    return pd.DataFrame(
        {
            "gain": frame["gain"],
            "ci_low": frame["ci_low"],
            "ci_high": frame["ci_high"],
            "verdict": frame["verdict"],
            "naive_low": other["ci_low"],
            "naive_high": other["ci_high"],
            "naive_verdict": other["verdict"],
        }
    )


def engine_method(scenario: Scenario, method: str, *, seed: int, seeds: int) -> Advice | None:
    """``engine.advise(..., method=method)`` with the default budget, or None where this
    engine has no such method (screening methods such as "screen" or "screen+probe"
    plug in here once engine.advise accepts them)."""
    if "method" not in inspect.signature(engine.advise).parameters:
        return None
    options: dict[str, Any] = {
        "method": method,
        "seeds": seeds,
        "main_train_fraction": scenario.main_train_fraction,
    }
    try:
        return engine.advise(
            scenario.frame,
            scenario.main,
            list(scenario.candidates),
            seed=seed,
            features=list(scenario.features),
            tables=scenario.tables,
            **options,
        )
    except engine.SpecError as error:
        if error.field == "method":
            return None
        raise


# ------------------------------------------------------------------------------ study


def run_scenario(scenario: Scenario, config: StudyConfig, log: Log = _stderr) -> ScenarioResult:
    """Everything the study measures on one scenario."""
    torch.set_num_threads(1)
    seed = config.seed
    truth_config = replace(
        config.truth or TruthConfig(), seeds=config.truth_seeds or scenario.truth_seeds
    )
    log(f"[{scenario.name}] reference: {truth_config.seeds} replicates of full training ...")
    truth = full_training(scenario, seed=seed, config=truth_config)
    log(f"[{scenario.name}] reference done in {truth.seconds:.0f} s")
    true = truth.summary
    predictions: list[pd.DataFrame] = []
    scores: list[dict[str, Any]] = []
    timings = {"truth": truth.seconds}

    def record(method: str, budget: str, repeat: int, rows: pd.DataFrame, seconds: float) -> None:
        rows = rows.reindex(scenario.candidate_names)
        verdicts = rows.get("verdict", None)
        score = agreement(rows["gain"], true, verdicts)
        if "ci_low" in rows and rows["ci_low"].notna().any():
            target = true["gain"]
            score["coverage"] = float(covered(rows.ci_low, rows.ci_high, target).mean())
            score["naive_coverage"] = float(covered(rows.naive_low, rows.naive_high, target).mean())
        scores.append(
            {"scenario": scenario.name, "method": method, "budget": budget, "repeat": repeat}
            | score
            | {"seconds": seconds}
        )
        predictions.append(
            rows.assign(scenario=scenario.name, method=method, budget=budget, repeat=repeat)
            .rename_axis("candidate")
            .reset_index()
        )

    for method in config.methods:
        if method == "correlation":
            started = time.perf_counter()
            baseline = label_correlation(scenario)
            seconds = time.perf_counter() - started
            record("correlation", "-", 0, pd.DataFrame({"gain": baseline}), seconds)
        elif method == "probe":
            for variant in config.variants:
                budget = config.budget(variant)
                is_default = variant == "default"
                repeats = config.default_repeats if is_default else config.variant_repeats
                subsets = _seed_curve(config.seeds * repeats) if is_default else ()
                jobs, per_rep = probe_jobs(
                    scenario,
                    budget,
                    seed=seed,
                    seeds=config.seeds,
                    repeats=repeats,
                    subsets=subsets,
                )
                for label, repeat, advice, naive, seconds in jobs:
                    rows = _advice_rows(advice, naive)
                    if is_default and not label:
                        rows["probe_mean_other"] = _other_mean(
                            per_rep, scenario, repeat, config.seeds
                        )
                    record("probe", label or variant, repeat, rows, seconds)
                job_seconds = jobs[0][4]
                timings[f"probe:{variant}"] = job_seconds
                log(f"[{scenario.name}] probe {variant}: {job_seconds:.1f} s per job")
        else:
            for repeat in range(config.default_repeats):
                started = time.perf_counter()
                advice = engine_method(scenario, method, seed=seed + repeat, seeds=config.seeds)
                if advice is None:
                    log(f"[{scenario.name}] method {method!r} is not available here; skipped")
                    break
                seconds = time.perf_counter() - started
                # The method's own interval; it has no naive counterpart.
                record(method, "default", repeat, _advice_rows(advice, advice), seconds)
    return ScenarioResult(
        scenario=scenario.name,
        real=scenario.real,
        truth=truth,
        predictions=pd.concat(predictions, ignore_index=True),
        scores=pd.DataFrame(scores),
        timings=timings,
    )


def _seed_curve(total: int) -> list[int]:
    return [k for k in (1, 2, 3, 4, 5, 6, 10, 12) if k <= total and total // k >= 1]


def _other_mean(
    per_rep: dict[tuple[int, int], float], scenario: Scenario, repeat: int, seeds: int
) -> pd.Series:
    """Per candidate, the mean probe gain over the replicates outside this job: an
    independent estimate of the probe's own expected gain."""
    own = set(range(repeat * seeds, (repeat + 1) * seeds))
    values = {}
    for index, name in enumerate(scenario.candidate_names):
        other = [g for (r, c), g in per_rep.items() if c == index and r not in own]
        finite = [g for g in other if math.isfinite(g)]
        values[name] = float(np.mean(finite)) if finite else math.nan
    return pd.Series(values)


def run_study(config: StudyConfig, log: Log = _stderr) -> list[ScenarioResult]:
    results = []
    for name in config.scenarios:
        started = time.perf_counter()
        scenario = SCENARIOS[name](seed=config.seed, quick=config.quick)
        log(f"[{name}] {scenario.description} (loaded in {time.perf_counter() - started:.1f} s)")
        results.append(run_scenario(scenario, config, log))
    return results


def config_dict(config: StudyConfig) -> dict[str, Any]:
    body = asdict(config)
    body["truth"] = asdict(TruthConfig())
    body["engine_default_budget"] = asdict(Budget())
    return body
