"""References for benchmark v2: the from-scratch full training of ``truth.py``, grown
in batches of replicates.

Replicates are added ``step`` at a time (each replicate draws its own split,
initialisation and batch order from (seed, replicate)) until the split-half
reliability (Spearman-Brown corrected) reaches ``target`` with at least
``min_replicates`` done (by default the cap: see :class:`ReferencePlan`), or
``max_replicates`` is spent: that cap is the stated cost. The reference is then
*reliable* (>= target), *noisy* (below it) or *null* (below ``null_below``); one read
from a partly built cache (``cached_only``) that reached neither the target with its
minimum nor the cap is *incomplete*, and counts like a noisy one (false claims only).

Every batch is cached content-addressed on (data, tasks, recipe, seed, replicates) in
``cache`` (an artifact directory, not part of the repository): a rerun reads it, and
``rebuild=True`` recomputes and overwrites. Like ``truth.py`` this module imports
nothing from the engine.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from benchmarks.validity.truth import (
    TruthConfig,
    full_training,
    split_half_reliability,
    summarise_truth,
)

if TYPE_CHECKING:
    from benchmarks.validity.scenarios import Scenario


class NotCachedError(LookupError):
    """No cached batch of this family's reference (with ``cached_only``)."""


@dataclass(frozen=True)
class ReferencePlan:
    """How far a reference is grown: ``step`` replicates at a time, at least ``first``,
    at most ``max_replicates`` (the cost cap), stopping at reliability ``target`` once
    ``min_replicates`` are done. Reliability settles the *ranking* within 8-16
    replicates, but the verdicts are scored per candidate, and at 8 replicates a real
    gain of 1-3% of the loss can still have an interval reaching below zero; so by
    default every reference is grown to the cap, and the target only labels it."""

    first: int = 8
    step: int = 8
    max_replicates: int = 40
    target: float = 0.6
    null_below: float = 0.2
    min_replicates: int = 40


@dataclass
class Reference:
    runs: pd.DataFrame  # replicate, config, loss, secondary, epochs
    summary: pd.DataFrame  # per candidate: gain, se, ci_low, ci_high, p_value, sign
    replicates: int
    reliability: float
    label: str  # reliable / noisy / null, or incomplete (cached_only, cap not reached)
    seconds: float  # CPU seconds of every batch used
    cached: int  # batches read from the cache

    @property
    def ceiling(self) -> float:
        return math.sqrt(max(self.reliability, 0.0)) if math.isfinite(self.reliability) else 0.0


def data_hash(scenario: Scenario) -> str:
    """Content hash of what a reference depends on besides the recipe and the seed."""
    digest = hashlib.sha256()
    tasks = [scenario.main, *scenario.candidates]
    digest.update(repr([(t.column, t.kind, t.label, t.source) for t in tasks]).encode())
    digest.update(repr((scenario.features, scenario.main_train_fraction)).encode())
    frames = {"": scenario.frame, **scenario.tables}
    for name in sorted(frames):
        frame = frames[name]
        digest.update(name.encode())
        digest.update(repr(list(frame.columns)).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def batch_key(data: str, recipe: TruthConfig, seed: int, first: int, count: int) -> str:
    """The cache key of one batch. The sharing and its coupling are part of the recipe,
    so hard and soft references (and soft ones of two couplings) never share a key; a
    hard recipe leaves both out, keeping the keys its batches had before soft sharing."""
    options = asdict(replace(recipe, seeds=0))
    if recipe.sharing == "hard":
        del options["sharing"], options["coupling"]
    body = {"data": data, "recipe": options, "seed": seed}
    body |= {"replicates": [first, first + count]}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def label_of(reliability: float, plan: ReferencePlan) -> str:
    if not math.isfinite(reliability) or reliability < plan.null_below:
        return "null"
    return "reliable" if reliability >= plan.target else "noisy"


def build_reference(
    scenario: Scenario,
    *,
    seed: int,
    recipe: TruthConfig,
    plan: ReferencePlan,
    cache: Path | None,
    rebuild: bool = False,
    cached_only: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> Reference:
    """The reference of ``scenario`` (see the module docstring). ``cached_only``: use
    only the batches already in ``cache`` (stop at the first missing one; raise
    :class:`NotCachedError` if there is none), computing nothing."""
    data = data_hash(scenario)
    names = scenario.candidate_names
    batches: list[pd.DataFrame] = []
    seconds, cached, done = 0.0, 0, 0
    reliability = math.nan
    incomplete = False
    while done < plan.max_replicates:
        count = min(plan.first if done == 0 else plan.step, plan.max_replicates - done)
        key = batch_key(data, recipe, seed, done, count)
        path = None if cache is None else cache / f"{scenario.name}-{key}.csv"
        if cached_only and (path is None or not path.exists()):
            if not batches:
                raise NotCachedError(scenario.name)
            incomplete = True
            break
        if path is not None and path.exists() and not rebuild:
            runs = pd.read_csv(path, dtype={"config": str})
            runs["config"] = runs["config"].fillna("")
            seconds += float(path.with_suffix(".seconds").read_text())
            cached += 1
        else:
            result = full_training(
                scenario, seed=seed, config=replace(recipe, seeds=count), first=done
            )
            runs = result.runs
            seconds += result.seconds
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                runs.to_csv(path, index=False)
                path.with_suffix(".seconds").write_text(repr(result.seconds))
        batches.append(runs)
        done += count
        all_runs = pd.concat(batches, ignore_index=True)
        reliability = split_half_reliability(all_runs, names)
        note = " (all cached)" if cached == len(batches) else ""
        log(
            f"[{scenario.name}] reference: {done} replicates, reliability {reliability:.2f}, "
            f"{seconds:.0f} CPU s{note}"
        )
        settled = math.isfinite(reliability) and reliability >= plan.target
        if settled and done >= plan.min_replicates:
            break
    all_runs = pd.concat(batches, ignore_index=True)
    return Reference(
        runs=all_runs,
        summary=summarise_truth(all_runs, names),
        replicates=done,
        reliability=reliability,
        label="incomplete" if incomplete else label_of(reliability, plan),
        seconds=seconds,
        cached=cached,
    )
