"""Validity benchmark v2: every family of one half (tune or report), its reference grown
to a stated reliability, today's default advice and the zero-training baselines scored
against it, and paired bootstrap intervals over families.

A method is scored per family on each of its jobs (a job = one ``engine.advise`` call
with its own seed) and the family's score is the mean over jobs. Ranking scores
(Spearman, Kendall, top-3) count only on families whose reference is *reliable*;
*noisy* and *null* families count only for false claims (severe wrong-sign verdicts,
claims on null families). CPU seconds are this process's ``time.process_time`` with one
thread.
"""

from __future__ import annotations

import math
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

import engine
from benchmarks.validity import halves
from benchmarks.validity.agreement import COUNTS, agreement, ratio
from benchmarks.validity.baselines import BASELINES
from benchmarks.validity.families import FAMILIES, SANITY, Family
from benchmarks.validity.references import (
    NotCachedError,
    Reference,
    ReferencePlan,
    build_reference,
)
from benchmarks.validity.scenarios import Scenario
from benchmarks.validity.truth import TruthConfig

Log = Callable[[str], None]
METHODS = ("probe", "probe@quick", "correlation", "mutual_info", "prediction")
DEFAULT_CACHE = Path("artifacts/validity/v2-references")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BenchConfig:
    half: str = "tune"
    quick: bool = False
    seed: int = 0
    recipe: TruthConfig = field(default_factory=TruthConfig)
    # The references' sharings (each the recipe with that sharing); the first is the one
    # the half's tables score against, the others are scored in the soft-sharing table
    # (benchmarks.validity.sharing). None: the recipe's own.
    reference_sharings: tuple[str, ...] | None = None
    plan: ReferencePlan = field(default_factory=ReferencePlan)
    methods: tuple[str, ...] = METHODS
    jobs: int = 3  # advise() jobs per family and engine method
    probe_budget: Mapping[str, Any] = field(default_factory=dict)  # advise() budget knobs
    previous: str = "probe@quick"  # the previous default, compared with every method
    reference_cache: Path | None = DEFAULT_CACHE
    build_references: bool = False
    references_only: bool = False
    cached_only: bool = False  # score only families whose reference is cached
    families: tuple[str, ...] | None = None  # None: every family of the half
    sanity: bool = False  # also run the synthetic family (in neither half)
    resamples: int = 9999

    @classmethod
    def make(cls, **kwargs: Any) -> BenchConfig:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if kwargs.get("quick"):
            kwargs.setdefault("recipe", TruthConfig(hidden=(32,), max_epochs=20, patience=3))
            kwargs.setdefault("plan", ReferencePlan(first=4, step=4, max_replicates=4))
            kwargs.setdefault("jobs", 1)
            kwargs.setdefault("probe_budget", {"seeds": 2, "epochs": 10, "max_replicates": 2})
            kwargs.setdefault("resamples", 999)
        return cls(**kwargs)

    @property
    def sharings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.reference_sharings or (self.recipe.sharing,)))


def parse_recipe(text: str, base: TruthConfig | None = None) -> TruthConfig:
    """A reference recipe written as knobs joined by '+', e.g.
    ``hidden=128,32+dropout=0.1+weight_decay=1e-4+lr=1e-3+max_epochs=100+patience=10``
    or ``sharing=soft_l2+coupling=0.1``."""
    base = base or TruthConfig()
    names = {f for f in asdict(base) if f != "seeds"}
    options: dict[str, Any] = {}
    for part in filter(None, text.split("+")):
        key, sep, value = part.partition("=")
        if not sep or key not in names:
            raise ValueError(f"recipe {text!r}: expected one of {sorted(names)} =value")
        if key == "hidden":
            options[key] = tuple(int(v) for v in value.split(","))
        elif key == "sharing":
            options[key] = value  # checked by TruthConfig
        elif key in ("batch_size", "max_epochs", "patience"):
            options[key] = int(value)
        else:
            options[key] = float(value)
    return replace(base, **options)


@dataclass
class FamilyResult:
    family: str
    kind: str
    half: str
    rows: int
    candidates: int
    main_train_labels: int
    reference: Reference
    scores: pd.DataFrame  # one row per (method, job), against ``reference``
    predictions: pd.DataFrame  # one row per (method, job, candidate)
    primary: str = "hard"  # the sharing of ``reference``
    other_references: dict[str, Reference] = field(default_factory=dict)  # by sharing
    other_scores: pd.DataFrame = field(default_factory=pd.DataFrame)  # against those


def main_train_labels(scenario: Scenario, recipe: TruthConfig) -> int:
    labelled = int(scenario.frame[scenario.main.column].notna().sum())
    kept = 1 - recipe.val_fraction - recipe.test_fraction
    return round(labelled * kept * scenario.main_train_fraction)


def score(predicted: pd.Series, verdicts: pd.Series | None, reference: Reference) -> dict[str, Any]:
    """One job's scores against the reference (see the module docstring)."""
    row = agreement(predicted, reference.summary, verdicts)
    row["ceiling"] = reference.ceiling
    row["class"] = reference.label
    if verdicts is not None:
        claims = row["helpful_called"] + row["harmful_called"]
        row["claims"] = claims
        row["null_claims"] = claims if reference.label == "null" else 0
        row["severe_wrong_sign"] = row["wrong_direction"]
    return row


def engine_method(method: str) -> tuple[str, str, dict[str, Any]]:
    """An engine method as the benchmark names it: ``probe``, ``screen+probe``, or one
    with a recipe and knobs after ``@``, e.g. ``probe@quick`` or
    ``probe@full+dropout=0.1+hidden=128,32+max_replicates=5`` or
    ``probe@full+sharing=soft_l2+coupling=0.1`` (engine budget options)."""
    name, _, recipe_text = method.partition("@")
    parts = recipe_text.split("+") if recipe_text else [engine.DEFAULT_RECIPE]
    recipe = engine.check_recipe(parts[0])
    knobs: dict[str, Any] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        defaults = asdict(engine.recipe_budget(recipe))
        if not sep or key not in defaults:
            raise ValueError(f"method {method!r}: expected budget options {sorted(defaults)}")
        default = defaults[key]
        if isinstance(default, tuple):
            knobs[key] = tuple(int(v) for v in value.split(","))
        elif isinstance(default, str):  # a named choice, e.g. sharing=soft_l2
            knobs[key] = value
        else:
            knobs[key] = (type(default) if default is not None else float)(float(value))
    return name, recipe, knobs


def _probe(
    scenario: Scenario, config: BenchConfig, job: int, method: str
) -> tuple[pd.DataFrame, float]:
    name, recipe, knobs = engine_method(method)
    started = time.process_time()
    advice = engine.advise(
        scenario.frame,
        scenario.main,
        list(scenario.candidates),
        seed=config.seed + 1 + job,  # the references use other streams of the seed
        features=list(scenario.features),
        tables=scenario.tables or None,
        method=name,  # type: ignore[arg-type]
        recipe=recipe,  # type: ignore[arg-type]
        main_train_fraction=scenario.main_train_fraction,
        **(knobs | dict(config.probe_budget)),
    )
    seconds = time.process_time() - started
    return prediction_frame(advice).reindex(scenario.candidate_names), seconds


def prediction_frame(advice: engine.Advice) -> pd.DataFrame:
    """A job's candidates, indexed by name, as predictions.csv keeps them."""
    frame = advice.to_frame().set_index("candidate")
    if frame["gain"].isna().any():  # a screening method: score its ranking
        return pd.DataFrame({"gain": -frame["rank"].astype(float), "verdict": frame["verdict"]})
    # What another verdict rule needs, to be compared offline without retraining
    # (benchmarks.validity.rules).
    frame["per_seed"] = [" ".join(f"{g:.9g}" for g in c.per_seed) for c in advice.candidates]
    frame["test_train_ratio"] = advice.test_train_ratio
    # (each candidate's ``confidence``, its racing look's, is a column of to_frame)
    frame["interval"] = advice.interval
    return frame


def run_family(family: Family, half: str, config: BenchConfig, log: Log = _stderr) -> FamilyResult:
    torch.set_num_threads(1)
    scenario = family.load(seed=config.seed, quick=config.quick)
    log(f"[{family.name}] {scenario.description}")
    references: dict[str, Reference] = {}
    for sharing in config.sharings:
        references[sharing] = built = build_reference(
            scenario,
            seed=config.seed,
            recipe=replace(config.recipe, sharing=sharing),
            plan=config.plan,
            cache=config.reference_cache,
            rebuild=config.build_references,
            cached_only=config.cached_only,
            log=log,
        )
        log(
            f"[{family.name}] {sharing} reference {built.label}: reliability "
            f"{built.reliability:.2f} with {built.replicates} replicates, "
            f"{built.seconds:.0f} CPU s"
        )
    primary = config.sharings[0]
    reference = references[primary]
    scores: list[dict[str, Any]] = []
    other_scores: list[dict[str, Any]] = []
    predictions: list[pd.DataFrame] = []
    methods = () if config.references_only else config.methods
    for method in methods:
        for job in range(1 if method in BASELINES else config.jobs):
            if method in BASELINES:
                started = time.process_time()
                rows = pd.DataFrame({"gain": BASELINES[method](scenario)})
                seconds = time.process_time() - started
                rows = rows.reindex(scenario.candidate_names)
                verdicts = None
            else:
                rows, seconds = _probe(scenario, config, job, method)
                verdicts = rows["verdict"]
            for sharing, against in references.items():
                row = score(rows["gain"], verdicts, against)
                row |= {"family": family.name, "method": method, "job": job, "seconds": seconds}
                row["compute_ratio"] = ratio(seconds, against.seconds)
                row["reference"] = sharing
                (scores if sharing == primary else other_scores).append(row)
            predictions.append(
                rows.assign(family=family.name, method=method, job=job)
                .rename_axis("candidate")
                .reset_index()
            )
        log(f"[{family.name}] {method}: {np.mean([s['seconds'] for s in scores[-1:]]):.1f} CPU s")
    return FamilyResult(
        family=family.name,
        kind=family.kind,
        half=half,
        rows=len(scenario.frame) + sum(len(t) for t in scenario.tables.values()),
        candidates=len(scenario.candidates),
        main_train_labels=main_train_labels(scenario, config.recipe),
        reference=reference,
        scores=pd.DataFrame(scores),
        predictions=pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame(),
        primary=primary,
        other_references={s: ref for s, ref in references.items() if s != primary},
        other_scores=pd.DataFrame(other_scores),
    )


def families_for(config: BenchConfig) -> list[tuple[Family, str]]:
    assignment = halves.load()
    chosen = [(FAMILIES[f], h) for f, h in assignment.items() if h == config.half]
    if config.families is not None:
        unknown = [f for f in config.families if f not in FAMILIES and f != SANITY.name]
        if unknown:
            raise ValueError(f"unknown family {unknown[0]!r}; known: {', '.join(FAMILIES)}")
        chosen = [(FAMILIES[f], assignment[f]) for f in config.families if f in FAMILIES]
    if config.sanity or (config.families and SANITY.name in config.families):
        chosen.append((SANITY, "sanity"))
    return chosen


def run_half(
    config: BenchConfig, log: Log = _stderr, failed: list[str] | None = None
) -> list[FamilyResult]:
    """Every family of the half; with ``cached_only`` those without a cached reference
    are left out (and logged). A family that fails is logged, named in ``failed`` and
    left out, so that the others still report."""
    results = []
    for family, half in families_for(config):
        try:
            results.append(run_family(family, half, config, log))
        except NotCachedError:
            log(f"[{family.name}] no cached reference: left out")
        except Exception:  # one broken family must not lose the others' hours
            log(f"[{family.name}] FAILED, left out:\n{traceback.format_exc()}")
            if failed is not None:
                failed.append(family.name)
    return results


# ---------------------------------------------------------------------------- summary


def per_family(results: Sequence[FamilyResult]) -> pd.DataFrame:
    """One row per (family, method): means over jobs, verdict counts summed."""
    rows = []
    for r in results:
        if r.scores.empty:
            continue
        for method, jobs in r.scores.groupby("method", sort=False):
            row: dict[str, Any] = {
                "family": r.family,
                "kind": r.kind,
                "half": r.half,
                "class": r.reference.label,
                "method": method,
                "jobs": len(jobs),
            }
            for name in ("spearman", "kendall", "top3", "ceiling", "seconds", "compute_ratio"):
                row[name] = float(jobs[name].mean())
            for name in (*COUNTS, "claims", "null_claims", "severe_wrong_sign"):
                # NaN for a method without verdicts (the baselines)
                row[name] = float(jobs[name].sum(min_count=1)) if name in jobs else math.nan
            rows.append(row)
    return pd.DataFrame(rows)


def bootstrap_difference(
    a: Sequence[float], b: Sequence[float], *, seed: int = 0, resamples: int = 9999
) -> tuple[float, float, float, int]:
    """Mean of a - b over families and its paired bootstrap 95% interval (percentile,
    resampling families); NaN interval with fewer than 3 families."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    diff = diff[np.isfinite(diff)]
    if len(diff) == 0:
        return math.nan, math.nan, math.nan, 0
    if len(diff) < 3 or np.ptp(diff) == 0:
        return float(diff.mean()), math.nan, math.nan, len(diff)
    result = stats.bootstrap(
        (diff,),
        np.mean,
        n_resamples=resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return float(diff.mean()), float(low), float(high), len(diff)


def summarise_half(
    table: pd.DataFrame, *, previous: str = "probe", seed: int = 0, resamples: int = 9999
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(means per method, bootstrap intervals of Spearman differences) over the
    families of ``table`` (rows of :func:`per_family` of one half)."""
    means, diffs = [], []
    if table.empty:
        return pd.DataFrame(), pd.DataFrame()
    reliable = table[table["class"] == "reliable"]
    for method, rows in table.groupby("method", sort=False):
        good = reliable[reliable.method == method]
        # Runs saved before a count existed lack its column: NaN, not 0.
        counts = good.reindex(columns=list(COUNTS)).sum(min_count=1)
        means.append(
            {
                "method": method,
                "families": int(rows.family.nunique()),
                "reliable families": int(good.family.nunique()),
                "Spearman": good.spearman.mean(),
                "Kendall": good.kendall.mean(),
                "top-3": good.top3.mean(),
                "ceiling": good.ceiling.mean(),
                "helpful precision": ratio(counts.helpful_right, counts.helpful_called),
                "helpful recall": ratio(counts.helpful_right, counts.truly_helpful),
                "helpful precision (≥ 1%)": ratio(
                    counts.helpful_right_material, counts.helpful_called
                ),
                "helpful recall (≥ 1%)": ratio(
                    counts.helpful_right_material, counts.truly_helpful_material
                ),
                "harmful precision": ratio(counts.harmful_right, counts.harmful_called),
                "severe wrong-sign per job": (rows.severe_wrong_sign / rows.jobs).sum(min_count=1),
                "null-family claims per job": (
                    rows[rows["class"] == "null"].null_claims / rows.jobs
                ).sum(min_count=1),
                "CPU s per family": rows.seconds.mean(),
                "compute ratio": rows.compute_ratio.mean(),
            }
        )
        for other in dict.fromkeys(("correlation", previous)):
            if other == method or other not in set(table.method):
                continue
            mine = good.set_index("family").spearman
            theirs = reliable[reliable.method == other].set_index("family").spearman
            common = mine.index.intersection(theirs.index)
            mean, low, high, n = bootstrap_difference(
                mine[common], theirs[common], seed=seed, resamples=resamples
            )
            diffs.append(
                {
                    "method": method,
                    "minus": other,
                    "families": n,
                    "mean difference": mean,
                    "95% low": low,
                    "95% high": high,
                    "beats": bool(low > 0) if math.isfinite(low) else False,
                    "worse": bool(high < 0) if math.isfinite(high) else False,
                }
            )
    return pd.DataFrame(means), pd.DataFrame(diffs)


def family_table(results: Sequence[FamilyResult]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "family": r.family,
                "kind": r.kind,
                "half": r.half,
                "rows": r.rows,
                "candidates": r.candidates,
                "main train labels": r.main_train_labels,
                "replicates": r.reference.replicates,
                "reliability": r.reference.reliability,
                "class": r.reference.label,
                "truly helpful": int((r.reference.summary["sign"] > 0).sum()),
                "truly harmful": int((r.reference.summary["sign"] < 0).sum()),
                "reference CPU s": r.reference.seconds,
            }
            for r in results
        ]
    )


def spearman_table(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman per family (rows) and method (columns), with the ceiling."""
    if table.empty:
        return table
    wide = table.pivot(index="family", columns="method", values="spearman")
    wide.insert(0, "ceiling", table.groupby("family").ceiling.first())
    wide.insert(0, "class", table.groupby("family")["class"].first())
    return wide.reset_index()


def config_dict(config: BenchConfig) -> dict[str, Any]:
    body = asdict(config)
    body["engine_default_budget"] = asdict(engine.Budget())
    return body


def render(results: Sequence[FamilyResult], config: BenchConfig, seconds: float) -> str:
    from benchmarks.validity.report import markdown
    from benchmarks.validity.sharing import sharing_table

    table = per_family(results)
    halved = table[table.half == config.half] if not table.empty else table
    means, diffs = summarise_half(
        halved, previous=config.previous, seed=config.seed, resamples=config.resamples
    )
    families = family_table(results)
    reliable = families[families["class"] == "reliable"]
    label = {"tune": "TUNE half (defaults may be chosen here)", "report": "REPORT half"}
    plan = config.plan
    floor = min(plan.min_replicates, plan.max_replicates)  # a minimum past the cap is the cap
    parts = [
        f"# auxsel validity benchmark v2: {label.get(config.half, config.half)}"
        f"{' (quick: smoke run, not numbers)' if config.quick else ''}",
        "",
        f"Seed {config.seed}; wall time {seconds / 60:.1f} min. Reference recipe: "
        f"{_recipe_text(config.recipe)}; replicates grown {plan.first} then {plan.step} at "
        f"a time until split-half reliability >= {plan.target}"
        f"{f' and at least {floor} replicates' if floor else ''}"
        f" (cap {plan.max_replicates} replicates; below {plan.null_below}: null). Engine "
        "methods: "
        f"{config.jobs} job(s) per family, budget "
        f"{dict(config.probe_budget) or 'engine default'}.",
        "",
        f"{len(reliable)} of {len(families)} families reached reliability {plan.target}.",
        "",
        "## Families",
        "",
        markdown(families),
        "",
    ]
    if not table.empty:
        parts += [
            "## Spearman with the reference gains, per family",
            "",
            markdown(spearman_table(table)),
            "",
            "## Means over the half's families",
            "",
            "Ranking scores over families with a reliable reference; precision and recall "
            "pooled over their verdicts; false claims over every family.",
            "",
            markdown(means),
            "",
            "## Paired bootstrap 95% intervals of Spearman differences (resampling families)",
            "",
            markdown(diffs) if not diffs.empty else "(fewer than one family in common)",
            "",
        ]
    soft = sharing_table(results)
    if not soft.empty:
        parts += [
            "## Soft sharing: each advice against each reference",
            "",
            f"References: {', '.join(config.sharings)} (soft coupling "
            f"{config.recipe.coupling:g}); the tables above score against "
            f"{config.sharings[0]}. Spearman with the reference gains, mean over jobs; "
            "'hard vs soft advice': Spearman of the two advices' gains, job by job.",
            "",
            markdown(soft),
            "",
        ]
    return "\n".join(parts)


def _recipe_text(recipe: TruthConfig) -> str:
    body = asdict(recipe)
    body.pop("seeds")
    return ", ".join(f"{k} {v}" for k, v in body.items())
