"""How a job decides which candidates paired probes measure.

- ``probe`` (default): every candidate, paired with the baseline in every replicate.
- ``screen``: none; one joint screening run (:func:`engine.proxies.screen`) ranks the
  candidates by a proxy. Fast, and only a proxy: no gains, intervals or verdicts.
- ``screen+probe``: screen every candidate, then confirm with paired probes the
  ``confirm_top`` best-screened ones plus ``confirm_random`` others drawn at random
  (seeded) from the rest, and report how well the proxy ranked what was confirmed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np
from scipy import stats

from engine.budget import Budget, ProxyName
from engine.errors import SpecError
from engine.proxies import ScreenResult
from engine.ranking import Agreement, CandidateAdvice
from engine.seeding import derive_seed
from engine.training import ProgressFn

Method = Literal["probe", "screen", "screen+probe"]
METHODS: tuple[Method, ...] = get_args(Method)
DEFAULT_METHOD: Method = "probe"
"""The method of a job that names none."""


def check_method(method: str, budget: Budget) -> None:
    """Reject an unknown method, a subset search without probes to measure it, or
    screening under soft sharing (its proxies need a trunk the tasks share)."""
    if method not in METHODS:
        raise SpecError(
            f"Unknown method {method!r}.", field="method", hint=f"Use one of {', '.join(METHODS)}."
        )
    if method != "probe" and budget.sharing != "hard":
        raise SpecError(
            f"Method {method!r} screens with proxies measured on a shared trunk (hard "
            f"sharing); soft sharing ({budget.sharing}) has none.",
            field="budget.sharing",
            hint="Use method 'probe' with soft sharing, or sharing 'hard' to screen.",
        )
    if method == "screen" and budget.subset_search:
        raise SpecError(
            "Subset search measures subsets with probes; method 'screen' trains none.",
            field="budget.subset_search",
            hint="Use method 'probe' or 'screen+probe', or turn subset_search off.",
        )


@dataclass(frozen=True)
class Confirmation:
    """The candidates (indices) that ``screen+probe`` measures with paired probes:
    ``top`` in proxy order, best first, and ``random``, drawn from the rest."""

    top: tuple[int, ...]
    random: tuple[int, ...]

    @property
    def candidates(self) -> tuple[int, ...]:
        return (*self.top, *self.random)


def proxy_order(scores: Sequence[float]) -> list[int]:
    """Candidate indices by proxy score, best first; unmeasured (NaN) last; ties keep
    the job's candidate order."""
    values = np.asarray(scores, dtype=np.float64)
    return sorted(range(len(values)), key=lambda i: (not np.isfinite(values[i]), -values[i]))


def choose_confirmations(scores: Sequence[float], budget: Budget, seed: int) -> Confirmation:
    """The top ``confirm_top`` candidates by score, plus ``confirm_random`` drawn
    uniformly (seeded by the job seed) from the others."""
    order = proxy_order(scores)
    top, rest = order[: budget.confirm_top], order[budget.confirm_top :]
    rng = np.random.default_rng(derive_seed(seed, "confirm"))
    drawn = rng.choice(len(rest), size=min(budget.confirm_random, len(rest)), replace=False)
    return Confirmation(tuple(top), tuple(rest[i] for i in sorted(drawn.tolist())))


def rank_agreement(
    scores: Sequence[float], gains: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float, float, int]:
    """Spearman's ρ between proxy scores and measured gains over the pairs where both
    are finite: (ρ, ci_low, ci_high, p_value, n).

    The interval is Fisher's z with the Bonett–Wright (2000) variance for Spearman's
    ρ, (1 + ρ²/2) / (n − 3); NaN below 4 pairs. ρ of ±1 is pulled in by 1e-6 so that
    its interval stays finite.
    """
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(gains, dtype=np.float64)
    both = np.isfinite(x) & np.isfinite(y)
    n = int(both.sum())
    if n < 3 or np.ptp(x[both]) == 0 or np.ptp(y[both]) == 0:
        return math.nan, math.nan, math.nan, math.nan, n
    result = stats.spearmanr(x[both], y[both])
    rho, p_value = float(result.statistic), float(result.pvalue)
    if n < 4:
        return rho, math.nan, math.nan, p_value, n
    z = math.atanh(min(max(rho, -1 + 1e-6), 1 - 1e-6))
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * math.sqrt((1 + rho**2 / 2) / (n - 3))
    return rho, math.tanh(z - half), math.tanh(z + half), p_value, n


def with_screening(
    ranked: Sequence[CandidateAdvice],
    screen: ScreenResult,
    names: Sequence[str],
    probed: Sequence[int],
    proxy: ProxyName,
) -> list[CandidateAdvice]:
    """Attach every candidate's proxy scores, mark those outside ``probed`` (indices
    into ``names``) ``not_probed``, and re-rank: probed by gain, the others after them
    by proxy score."""
    index = {name: i for i, name in enumerate(names)}
    probed_set = set(probed)
    scores = screen.scores(proxy)
    updated = []
    for c in ranked:
        i = index[c.name]
        c = replace(c, proxies=screen.proxies(i))
        if i not in probed_set:
            c = replace(c, verdict="not_probed", secondary=None, disagreement=False)
        updated.append(c)
    measured = [c for c in updated if c.probed]
    others = sorted(
        (c for c in updated if not c.probed),
        key=lambda c: (
            not np.isfinite(scores[index[c.name]]),
            -np.nan_to_num(scores[index[c.name]]),
        ),
    )
    return [replace(c, rank=rank) for rank, c in enumerate([*measured, *others], start=1)]


def agreement_of(
    ranked: Sequence[CandidateAdvice],
    screen: ScreenResult,
    names: Sequence[str],
    confirmation: Confirmation,
    proxy: ProxyName,
) -> Agreement:
    """Spearman between ``proxy`` and the measured gain over the confirmed candidates."""
    by_name = {c.name: c for c in ranked}
    scores = screen.scores(proxy)
    confirmed = confirmation.candidates
    rho, low, high, p_value, n = rank_agreement(
        [float(scores[i]) for i in confirmed], [by_name[names[i]].gain for i in confirmed]
    )
    return Agreement(
        proxy=proxy,
        spearman=rho,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        n=n,
        confirmed=tuple(names[i] for i in confirmed),
        random=tuple(names[i] for i in confirmation.random),
    )


class Stages:
    """One progress bar over a job's successive stages (screening, probes, subsets):
    each stage reports its own (done, total) and this maps it onto the job's total,
    the planned maximum in probe-epochs."""

    def __init__(self, progress: ProgressFn | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.offset = 0

    def stage(self, size: int) -> ProgressFn:
        """A callback for the next stage of ``size`` probe-epochs."""
        offset = self.offset
        self.offset += size

        def report(done: int, _total: int) -> None:
            if self.progress is not None:
                self.progress(min(self.total, offset + min(done, size)), self.total)

        return report

    def finish(self) -> None:
        """Stages that planned more than they ran (subset search stopping early) end
        the bar here."""
        if self.progress is not None:
            self.progress(self.total, self.total)
