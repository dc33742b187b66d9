"""Paired transfer gains with uncertainty: per candidate, the mean over replicates of
(metric with the candidate − metric alone), oriented so positive means better."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from scipy import stats

from engine.budget import FdrMethod
from engine.metrics import HIGHER_IS_BETTER, MetricName

Verdict = Literal["helpful", "harmful", "inconclusive"]
IntervalMethod = Literal["corrected", "naive"]
INTERVAL_METHODS: tuple[IntervalMethod, ...] = get_args(IntervalMethod)
DEFAULT_INTERVAL: IntervalMethod = "naive"
"""The plain paired t-interval over replicates. A job's replicates are independent
resamples (split, initialisation, batch order) of the user's data set, so it is the
interval for the estimand the ranking states — the expected gain on *this* data set,
averaged over splits — and for the benchmark's reference, which resamples the same
data. ``"corrected"`` (Nadeau–Bengio) answers a different question, the gain on a new
data set of the same size: on the validity benchmark's tune half it covered the
reference gain 1.00 of the time and called no candidate of five families helpful; the
plain interval covered 0.92 with no wrong-sign call (docs/validity.md, "Choosing the
interval")."""


@dataclass(frozen=True)
class GainStats:
    """Mean paired gain over replicates with its 95% t-interval and p-value."""

    gain: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    per_replicate: tuple[float, ...]

    @property
    def verdict(self) -> Verdict:
        return verdict(self.ci_low, self.ci_high)


def verdict(ci_low: float, ci_high: float) -> Verdict:
    """helpful if the whole interval is above zero, harmful if below, else inconclusive."""
    if ci_low > 0:
        return "helpful"
    if ci_high < 0:
        return "harmful"
    return "inconclusive"


Q_LEVEL = 0.05
"""The false discovery rate a job's verdicts are held to (Storey's adaptive or plain
Benjamini–Hochberg over its candidates, ``Budget.fdr``): a candidate is called helpful or
harmful only at q <= Q_LEVEL."""


def gated_verdict(interval_verdict: Verdict, q_value: float, q_level: float = Q_LEVEL) -> Verdict:
    """The verdict of an interval, kept only where the candidate's q-value is at most
    ``q_level``: a 95% interval that excludes zero is one test among the job's many, and
    without the gate a job of 12 candidates calls about one of them by chance alone."""
    if interval_verdict == "inconclusive" or not q_value <= q_level:
        return "inconclusive"
    return interval_verdict


def paired_gain(
    baseline: Sequence[float],
    candidate: Sequence[float],
    metric: MetricName,
    *,
    test_train_ratio: float,
    interval: IntervalMethod = DEFAULT_INTERVAL,
    confidence: float = 0.95,
) -> GainStats:
    """Gain of ``candidate`` over ``baseline`` (paired by replicate; NaN pairs dropped).

    ``interval="corrected"`` uses the Nadeau–Bengio corrected resampled t-statistic:
    replicates re-split the same rows, so their gains are positively correlated and the
    naive standard error s/sqrt(n) is too small; the correction widens the variance to
    s² (1/n + n_test/n_train). ``"naive"`` is the plain paired t-interval.
    """
    base = np.asarray(baseline, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    diff = cand - base if HIGHER_IS_BETTER[metric] else base - cand
    diff = diff[np.isfinite(diff)]
    n = int(diff.size)
    if n == 0:
        return GainStats(math.nan, math.nan, math.nan, math.nan, math.nan, 0, ())
    mean = float(diff.mean())
    if n == 1:
        return GainStats(mean, math.nan, math.nan, math.nan, math.nan, 1, (mean,))
    sd = float(diff.std(ddof=1))
    factor = 1 / n + (test_train_ratio if interval == "corrected" else 0.0)
    se = sd * math.sqrt(factor)
    crit = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    if se > 0:  # noqa: SIM108 - two cases read better than a nested ternary
        p_value = float(2 * stats.t.sf(abs(mean / se), n - 1))
    else:  # identical gains in every replicate: certain, either way
        p_value = 0.0 if mean != 0 else 1.0
    return GainStats(mean, se, mean - crit * se, mean + crit * se, p_value, n, tuple(diff))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """BH-adjusted q-values; NaN p-values stay NaN and do not count as tests."""
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = stats.false_discovery_control(p[finite], method="bh")
    return [float(v) for v in q]


STOREY_LAMBDA = 0.5
"""Storey's λ: p-values above it are counted as coming from null candidates."""


def null_share(p_values: Sequence[float], lam: float = STOREY_LAMBDA) -> float:
    """Storey, Taylor & Siegmund's (2004) estimate of the share of null candidates,
    π̂0 = min(1, (1 + #{p > λ}) / (m (1 − λ))) over the finite p-values (the +1 makes
    the adaptive procedure control the false discovery rate in finite samples under
    independence); 1 when there are none."""
    p = np.asarray(p_values, dtype=np.float64)
    p = p[np.isfinite(p)]
    if not p.size:
        return 1.0
    return float(min(1.0, (1 + np.count_nonzero(p > lam)) / (p.size * (1 - lam))))


def adaptive_q_values(p_values: Sequence[float]) -> list[float]:
    """Adaptive BH q-values: BH's times :func:`null_share`. Where most candidates
    carry an effect, BH's q-values are too large by about that share; NaN stays NaN."""
    share = null_share(p_values)
    return [q * share for q in benjamini_hochberg(p_values)]


def q_values(p_values: Sequence[float], fdr: FdrMethod) -> list[float]:
    """The job's q-values under its ``fdr`` method (``Budget.fdr``): Storey's adaptive
    ones or Benjamini-Hochberg's."""
    return adaptive_q_values(p_values) if fdr == "storey" else benjamini_hochberg(p_values)
