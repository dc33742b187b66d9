"""Run the validity study: per scenario, the reference's true gains, auxsel's predictions
under several budgets, the zero-cost correlation baseline, and their agreement.

Replicates are independent given the job seed (each has its own split, initialisation
and batch order, derived from (seed, replicate)), so one probe run with R = k x m
replicates holds m independent k-seed jobs: replicates 0..k-1 are exactly the k-seed
job a user would run with this seed, replicates k..2k-1 the next one, and so on. The
study scores each of those jobs on its own and averages, which estimates what one
user job achieves, not what the pooled replicates would.

Compute is measured as CPU time of this process (``time.process_time``) with one
thread: on a shared machine wall time mostly measures the neighbours.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import engine
from benchmarks.validity.agreement import agreement, covered, label_correlation
from benchmarks.validity.scenarios import SCENARIOS, Scenario
from benchmarks.validity.truth import TruthConfig, TruthResult, full_training, summarise_truth
from engine import (
    Budget,
    ProbeRun,
    Problem,
    Splits,
    TaskInfo,
    prepare,
    run_probes,
    splits_for,
    summarise,
)
from engine.pipeline import holdout_ratio
from engine.plan import pairwise_plan
from engine.ranking import Advice

# Budget variants, one knob at a time around the engine's current default (Budget()).
# A seeds curve needs no variant: it comes from subsets of one budget's replicates.
# A variant may set "seeds": the size of each of its jobs (else the default's).
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "auxsel-0.1": {"seeds": 3, "hidden": (128,)},
    "hidden=128": {"hidden": (128,)},
    "hidden=64": {"hidden": (64,)},
    "hidden=16": {"hidden": (16,)},
    "epochs=60": {"epochs": 60},
    "lr=1e-3": {"lr": 1e-3},
    "lr=1e-2": {"lr": 1e-2},
    "lam=0.5": {"lam": 0.5},
}
QUICK_VARIANTS = ("default", "auxsel-0.1")


@dataclass(frozen=True)
class StudyConfig:
    seed: int = 0
    quick: bool = False
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    methods: tuple[str, ...] = ("probe", "correlation")
    variants: tuple[str, ...] = tuple(VARIANTS)
    default_repeats: int = 3  # independent jobs per scenario of a budget with a seeds curve
    variant_repeats: int = 2  # ... of every other budget
    curves: tuple[str, ...] = ("default",)  # budgets whose seeds curve is measured
    truth_seeds: int | None = None  # None: each scenario's own count
    truth: TruthConfig | None = None  # None: TruthConfig() with those seeds
    reference_cache: Path | None = None  # reuse references computed by an earlier run
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
        return dict(table[variant]) if variant in table else parse_variant(variant)


def parse_variant(text: str) -> dict[str, Any]:
    """A budget variant written as knobs joined by '+', e.g. ``hidden=64,64+lr=1e-2``
    (hidden widths separated by commas); checked against engine.Budget."""
    options: dict[str, Any] = {}
    for part in text.split("+"):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"budget variant {text!r}: expected knob=value, got {part!r}")
        if key == "hidden":
            options[key] = tuple(int(v) for v in value.split(","))
        elif key in ("seeds", "epochs", "batch_size", "patience"):
            options[key] = int(value)
        else:
            options[key] = float(value)
    Budget.from_kwargs(**options)  # names the unknown knob, checks the ranges
    return options


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


# The intervals every job is scored with: (method, which n_train the correction uses).
# "corrected" is what auxsel reports; "naive" the plain paired t-interval; "pool" the
# corrected interval as auxsel 0.1 computed it (n_train = every pool row).
INTERVALS = {"": ("corrected", "main"), "naive_": ("naive", "main"), "pool_": ("corrected", "pool")}


def train_job(
    scenario: Scenario, budget: dict[str, Any], *, seed: int, seeds: int
) -> tuple[Problem, Splits, list[ProbeRun]]:
    """What a user's job does before scoring: prepare, split, train every paired probe."""
    plan = Budget.from_kwargs(
        **(budget | {"seeds": seeds, "main_train_fraction": scenario.main_train_fraction})
    )
    problem = prepare(
        scenario.frame,
        scenario.main,
        list(scenario.candidates),
        features=list(scenario.features),
        tables=scenario.tables,
    )
    splits = splits_for(problem, plan, seed)
    specs = pairwise_plan(len(problem.candidates), seeds)
    runs, _ = run_probes(problem, splits, specs, plan, seed=seed, metric="loss")
    return problem, splits, runs


def probe_jobs(
    scenario: Scenario,
    budget: dict[str, Any],
    *,
    seed: int,
    seeds: int,
    repeats: int,
    subsets: Sequence[int] = (),
) -> tuple[list[tuple[int, int, pd.DataFrame]], dict[tuple[int, int], float], float]:
    """Train ``seeds x repeats`` replicates at once and score every ``seeds``-replicate
    job on its own (and every ``k``-replicate job for ``k`` in ``subsets``).

    Returns (replicates k, repeat, rows) per job, where rows holds per candidate the
    gain and each interval of ``INTERVALS`` with its verdict; the per-replicate gains
    {(replicate, candidate index): gain} for coverage checks; and the mean best epoch
    (1-based) of the probes.
    """
    total = seeds * repeats
    problem, splits, runs = train_job(scenario, budget, seed=seed, seeds=total)
    # "pool": auxsel 0.1's ratio, which counted every row a probe trains on.
    pool_ratio = int(splits.test.shape[1]) / max(1, int(splits.pool.shape[1]))
    ratios = {"main": holdout_ratio(splits, problem), "pool": pool_ratio}
    main = TaskInfo.of(problem.main)
    tasks = [TaskInfo.of(t) for t in problem.candidates]
    jobs = []
    for k in sorted({seeds, *subsets}):
        for repeat in range(total // k):
            chosen = set(range(repeat * k, (repeat + 1) * k))
            mine = [r for r in runs if r.spec.replicate in chosen]
            columns: dict[str, pd.Series] = {}
            for prefix, (interval, rows) in INTERVALS.items():
                _, ranked = summarise(
                    mine,
                    main=main,
                    candidates=tasks,
                    metric="loss",
                    test_train_ratio=ratios[rows],
                    interval=interval,
                    fdr="bh",  # the v1 study's gate (before Budget.fdr)
                )
                for name in ("gain", "ci_low", "ci_high", "verdict"):
                    if prefix and name == "gain":
                        continue
                    columns[prefix + name] = pd.Series({c.name: getattr(c, name) for c in ranked})
            jobs.append((k, repeat, pd.DataFrame(columns)))
    per_replicate = {}
    base = {r.spec.replicate: r.metrics["loss"] for r in runs if r.spec.is_baseline}
    for r in runs:
        if not r.spec.is_baseline:
            per_replicate[(r.spec.replicate, r.spec.aux[0])] = (
                base[r.spec.replicate] - r.metrics["loss"]
            )
    best_epoch = float(np.mean([r.best_epoch + 1 for r in runs if r.error is None]))
    return jobs, per_replicate, best_epoch


def job_costs(
    scenario: Scenario, budget: dict[str, Any], *, seed: int, sizes: Sequence[int]
) -> dict[int, float]:
    """CPU seconds of a standalone job (prepare, split, train) with k seeds, per k: the
    cost a user pays, measured apart from the study's pooled training."""
    costs = {}
    for k in sizes:
        started = time.process_time()
        train_job(scenario, budget, seed=seed, seeds=k)
        costs[k] = time.process_time() - started
    return costs


def _interpolate(costs: dict[int, float], k: int) -> float:
    sizes = sorted(costs)
    return float(np.interp(k, sizes, [costs[s] for s in sizes]))


def _advice_rows(advice: Advice) -> pd.DataFrame:
    frame = advice.to_frame().set_index("candidate")
    if frame["gain"].notna().all():
        return frame[["gain", "ci_low", "ci_high", "verdict"]]
    # A screening method leaves some candidates without a measured gain: score its
    # ranking (rank 1 best) and leave intervals out, so coverage counts only full probes.
    return pd.DataFrame({"gain": -frame["rank"].astype(float), "verdict": frame["verdict"]})


def engine_method(scenario: Scenario, method: str, *, seed: int, seeds: int) -> Advice | None:
    """``engine.advise(..., method=method)`` with the default budget, or None where the
    engine has no such method."""
    try:
        return engine.advise(
            scenario.frame,
            scenario.main,
            list(scenario.candidates),
            seed=seed,
            features=list(scenario.features),
            tables=scenario.tables,
            method=method,
            seeds=seeds,
            main_train_fraction=scenario.main_train_fraction,
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
    truth = _cached_reference(scenario, config, truth_config, log)
    true = truth.summary
    predictions: list[pd.DataFrame] = []
    scores: list[dict[str, Any]] = []
    timings = {"truth": truth.seconds}

    def record(method: str, budget: str, repeat: int, rows: pd.DataFrame, seconds: float) -> None:
        rows = rows.reindex(scenario.candidate_names)
        verdicts = rows.get("verdict", None)
        score = agreement(rows["gain"], true, verdicts)
        for prefix in INTERVALS:
            low, high = f"{prefix}ci_low", f"{prefix}ci_high"
            if low in rows and rows[low].notna().any():
                hit = covered(rows[low], rows[high], true["gain"])
                score[f"{prefix}coverage"] = float(hit.mean())
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
            started = time.process_time()
            baseline = label_correlation(scenario)
            seconds = time.process_time() - started
            record("correlation", "-", 0, pd.DataFrame({"gain": baseline}), seconds)
        elif method == "probe":
            for variant in config.variants:
                budget = config.budget(variant)
                job_seeds = int(budget.pop("seeds", Budget().seeds))
                curve = variant in config.curves
                repeats = config.default_repeats if curve else config.variant_repeats
                subsets = _seed_curve(job_seeds * repeats) if curve else ()
                jobs, per_rep, best_epoch = probe_jobs(
                    scenario,
                    budget,
                    seed=seed,
                    seeds=job_seeds,
                    repeats=repeats,
                    subsets=subsets,
                )
                sizes = sorted({job_seeds, *([min(subsets), max(subsets)] if subsets else [])})
                costs = job_costs(scenario, budget, seed=seed, sizes=sizes)
                for k, repeat, rows in jobs:
                    if k == job_seeds:
                        rows["probe_mean_other"] = _other_mean(per_rep, scenario, repeat, k)
                        label = variant
                    else:
                        label = f"seeds={k}" if variant == "default" else f"{variant}+seeds={k}"
                    record("probe", label, repeat, rows, _interpolate(costs, k))
                timings[f"probe:{variant}"] = costs[job_seeds]
                timings[f"best_epoch:{variant}"] = best_epoch
                log(
                    f"[{scenario.name}] probe {variant}: {costs[job_seeds]:.1f} CPU s per "
                    f"{job_seeds}-seed job, best epoch {best_epoch:.1f} on average"
                )
        else:
            for repeat in range(config.default_repeats):
                started = time.process_time()
                advice = engine_method(scenario, method, seed=seed + repeat, seeds=Budget().seeds)
                if advice is None:
                    log(f"[{scenario.name}] method {method!r} is not available here; skipped")
                    break
                seconds = time.process_time() - started
                # The method's own interval; it has no naive counterpart.
                record(method, "default", repeat, _advice_rows(advice), seconds)
    return ScenarioResult(
        scenario=scenario.name,
        real=scenario.real,
        truth=truth,
        predictions=pd.concat(predictions, ignore_index=True),
        scores=pd.DataFrame(scores),
        timings=timings,
    )


def reference_key(scenario: Scenario, seed: int, truth_config: TruthConfig) -> str:
    """Names a reference by everything it depends on: the scenario's data and tasks,
    the study seed and the full-training recipe."""
    parts = (
        scenario.name,
        scenario.main,
        scenario.candidates,
        scenario.features,
        scenario.main_train_fraction,
        int(pd.util.hash_pandas_object(scenario.frame).sum()),
        seed,
        asdict(truth_config),
    )
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def _cached_reference(
    scenario: Scenario, config: StudyConfig, truth_config: TruthConfig, log: Log
) -> TruthResult:
    """The reference of this scenario, from ``config.reference_cache`` when an earlier
    run stored one for the same scenario data, seed and recipe."""
    key = reference_key(scenario, config.seed, truth_config)
    path = None if config.reference_cache is None else config.reference_cache / f"{key}.csv"
    if path is not None and path.exists():
        runs = pd.read_csv(path, dtype={"config": str})
        runs["config"] = runs["config"].fillna("")
        meta = path.with_suffix(".seconds")
        seconds = float(meta.read_text()) if meta.exists() else math.nan
        log(f"[{scenario.name}] reference read from {path}")
        return TruthResult(
            runs=runs,
            seconds=seconds,
            config=truth_config,
            secondary="r2" if scenario.main.kind == "regression" else "auroc",
            summary=summarise_truth(runs, scenario.candidate_names),
        )
    log(f"[{scenario.name}] reference: {truth_config.seeds} replicates of full training ...")
    truth = full_training(scenario, seed=config.seed, config=truth_config)
    log(f"[{scenario.name}] reference done in {truth.seconds:.0f} CPU s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        truth.runs.to_csv(path, index=False)
        path.with_suffix(".seconds").write_text(repr(truth.seconds))
    return truth


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
