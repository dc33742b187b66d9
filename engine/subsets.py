"""Greedy forward search for a set of auxiliary tasks to train together.

Start from the best helpful single candidate (its paired probes are already trained).
Each step trains, side by side in one batched run, the current set extended by each of
the next ``subset_width`` candidates in ranking order (probed, positive gain), one
probe per replicate. The best extension is kept if its paired improvement over the
current set — replicate by replicate, same splits, initialisation and batches — has
an interval above zero; otherwise the search stops. It also stops when
``subset_budget`` subsets have been trained or no candidate is left.

Every subset probe pairs with the same replicates' baselines as the single-candidate
probes, so the set's gain is comparable with theirs, and since an accepted step
improves on the set it extends, the recommended set's measured gain is never below the
starting candidate's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from engine.budget import Budget
from engine.metrics import MetricName
from engine.probe_spec import ProbeSpec
from engine.ranking import CandidateAdvice, SubsetAdvice, SubsetStep
from engine.readout import ProbeRun
from engine.scoring import GainStats, IntervalMethod, paired_gain

Trainer = Callable[[Sequence[ProbeSpec]], list[ProbeRun]]
"""Trains probe specs and returns their runs in order (a caller may serve stored runs)."""


def search_subsets(
    runs: Sequence[ProbeRun],
    ranked: Sequence[CandidateAdvice],
    names: Sequence[str],
    budget: Budget,
    *,
    metric: MetricName,
    test_train_ratio: float,
    interval: IntervalMethod,
    train: Trainer,
) -> tuple[SubsetAdvice, list[ProbeRun]]:
    """Run the greedy search from the job's ranked candidates and its probe runs
    (baselines and single-candidate pairings); ``names`` gives candidate indices.

    Returns the search's answer and the subset probe runs it trained.
    """
    index = {name: i for i, name in enumerate(names)}
    baselines = _by_replicate(r for r in runs if r.spec.is_baseline)
    replicates = sorted(baselines)

    def values(by_rep: dict[int, ProbeRun]) -> list[float]:
        return [_metric(by_rep.get(r), metric) for r in replicates]

    def gain(by_rep: dict[int, ProbeRun], versus: dict[int, ProbeRun]) -> GainStats:
        return paired_gain(
            values(versus),
            values(by_rep),
            metric,
            test_train_ratio=test_train_ratio,
            interval=interval,
        )

    helpful = [c for c in ranked if c.verdict == "helpful"]
    if not helpful:
        return _answer((), _empty(), (), 0, budget, "no_helpful_candidate"), []

    start = helpful[0]
    members: tuple[str, ...] = (start.name,)
    current = _by_replicate(r for r in runs if r.spec.aux == (index[start.name],))
    stats = gain(current, baselines)
    path = [SubsetStep(members, stats.gain, stats.ci_low, stats.ci_high, *_NONE, True)]
    pool = [
        c.name
        for c in ranked
        if c.probed and c.name != start.name and math.isfinite(c.gain) and c.gain > 0
    ]
    trained: list[ProbeRun] = []
    evaluated = 0
    stop_reason = "exhausted"
    while pool:
        if evaluated >= budget.subset_budget:
            stop_reason = "budget"
            break
        window = pool[: min(budget.subset_width, budget.subset_budget - evaluated)]
        sets = [tuple(sorted(index[n] for n in (*members, name))) for name in window]
        specs = [ProbeSpec(r, aux) for aux in sets for r in replicates]
        new_runs = train(specs)
        trained.extend(new_runs)
        evaluated += len(window)

        tried = []
        for name, aux in zip(window, sets, strict=True):
            by_rep = _by_replicate(r for r in new_runs if r.spec.aux == aux)
            tried.append((name, by_rep, gain(by_rep, baselines), gain(by_rep, current)))
        best = max(tried, key=lambda t: -math.inf if math.isnan(t[2].gain) else t[2].gain)
        accept = best[3].ci_low > 0
        for name, _, total, step in tried:
            path.append(
                SubsetStep(
                    (*members, name),
                    total.gain,
                    total.ci_low,
                    total.ci_high,
                    step.gain,
                    step.ci_low,
                    step.ci_high,
                    accept and name == best[0],
                )
            )
        if not accept:
            stop_reason = "no_improvement"
            break
        members = (*members, best[0])
        current, stats = best[1], best[2]
        pool.remove(best[0])
    return _answer(members, stats, tuple(path), evaluated, budget, stop_reason), trained


_NONE = (math.nan, math.nan, math.nan)


def _answer(
    members: tuple[str, ...],
    stats: GainStats,
    path: tuple[SubsetStep, ...],
    evaluated: int,
    budget: Budget,
    stop_reason: str,
) -> SubsetAdvice:
    return SubsetAdvice(
        members=members,
        gain=stats.gain,
        ci_low=stats.ci_low,
        ci_high=stats.ci_high,
        verdict=stats.verdict,
        path=path,
        evaluated=evaluated,
        budget=budget.subset_budget,
        stop_reason=stop_reason,
    )


def _empty() -> GainStats:
    return GainStats(math.nan, math.nan, math.nan, math.nan, math.nan, 0, ())


def _by_replicate(runs: Iterable[ProbeRun]) -> dict[int, ProbeRun]:
    """Usable runs (no error) keyed by replicate."""
    return {r.spec.replicate: r for r in runs if r.error is None}


def _metric(run: ProbeRun | None, metric: MetricName) -> float:
    return math.nan if run is None else run.metrics.get(metric, math.nan)
