"""Turn finished probe runs into advice: the baseline and candidates ranked by gain."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from engine.budget import Budget, FdrMethod
from engine.curves import FractionAdvice, MechanismHint, candidate_row, fraction_rows
from engine.evidence import LabelEvidence
from engine.metrics import METRICS_BY_KIND, MetricName, secondary_metric
from engine.readout import ProbeRun
from engine.recipes import DEFAULT_RECIPE, ESTIMAND, describe_recipe
from engine.scoring import (
    Q_LEVEL,
    GainStats,
    IntervalMethod,
    Verdict,
    gated_verdict,
    paired_gain,
    q_values,
)
from engine.tasks import EncodedTask, TaskKind


@dataclass(frozen=True)
class TaskInfo:
    """What scoring needs to know of a task (no labels)."""

    name: str
    column: str
    kind: TaskKind
    source: str | None = None

    @classmethod
    def of(cls, task: EncodedTask) -> TaskInfo:
        return cls(task.name, task.column, task.kind, task.source)


@dataclass(frozen=True)
class MetricGain:
    """A gain in one metric, with its interval and verdict."""

    metric: MetricName
    gain: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: Verdict

    @classmethod
    def of(cls, metric: MetricName, s: GainStats) -> MetricGain:
        return cls(metric, s.gain, s.ci_low, s.ci_high, s.p_value, s.verdict)


CandidateVerdict = Literal["helpful", "harmful", "inconclusive", "not_probed"]
"""A candidate's verdict: ``not_probed`` means no paired probe measured it (method
``screen``, or ``screen+probe`` outside the confirmed candidates); its gain, interval,
p- and q-value are then NaN (``None`` in :meth:`Advice.to_dict`) and only its
``proxies`` say anything about it."""


@dataclass(frozen=True)
class CandidateAdvice:
    """One candidate's measured transfer gain on the main task's primary metric.

    ``proxies`` holds its screening scores when the job screened (methods ``screen``
    and ``screen+probe``), e.g. ``{"lookahead": 0.012, "grad_cosine": 0.03}`` (see
    :mod:`engine.proxies`); it is empty for method ``probe``. ``evidence`` holds what
    its labels say before training (:class:`engine.evidence.LabelEvidence`) and
    ``evidence_disagrees`` flags a probe that the label correlation contradicts (see
    :func:`engine.evidence.with_evidence`).
    """

    rank: int
    name: str
    column: str
    kind: TaskKind
    source: str | None
    gain: float
    se: float
    ci_low: float
    ci_high: float
    rel_gain: float
    p_value: float
    q_value: float
    verdict: CandidateVerdict
    seeds: int
    metrics: dict[str, float]
    per_seed: tuple[float, ...]
    secondary: MetricGain | None
    disagreement: bool
    errors: tuple[str, ...] = ()
    proxies: dict[str, float] = field(default_factory=dict)
    evidence: LabelEvidence | None = None
    evidence_disagrees: bool = False
    confidence: float = 0.95  # of its interval: its racing look's (engine.racing)

    @property
    def probed(self) -> bool:
        """Whether paired probes measured this candidate (its gain is a measurement)."""
        return self.verdict != "not_probed"


@dataclass(frozen=True)
class Agreement:
    """How well the screening proxy ranked the candidates that paired probes measured
    (method ``screen+probe``).

    ``spearman`` is the rank correlation between the proxy score ``proxy`` and the
    measured gain over the ``n`` confirmed candidates with both values; ``ci_low`` /
    ``ci_high`` its 95% interval (Fisher z with the Bonett–Wright variance for
    Spearman's ρ; NaN when n < 4) and ``p_value`` the test of ρ = 0. ``confirmed``
    lists every probed candidate (best-screened first), ``random`` those of them drawn
    at random from outside the proxy's top ``confirm_top``: without them every
    confirmed candidate would be one the proxy favoured, and ρ would only describe
    the top of its ranking.
    """

    proxy: str
    spearman: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    confirmed: tuple[str, ...]
    random: tuple[str, ...]


@dataclass(frozen=True)
class SubsetStep:
    """One subset trained by the greedy search.

    ``gain`` / ``ci_low`` / ``ci_high``: the set's paired gain over the main task alone
    (95% interval). ``improvement`` (with its interval): its paired gain over the set it
    extends, replicate by replicate; NaN for the starting single candidate.
    ``accepted``: the search moved to this set.
    """

    members: tuple[str, ...]
    gain: float
    ci_low: float
    ci_high: float
    improvement: float
    improvement_ci_low: float
    improvement_ci_high: float
    accepted: bool


@dataclass(frozen=True)
class SubsetAdvice:
    """The greedy forward subset search's answer (``subset_search=True``).

    ``members`` is the recommended set (empty when no candidate was helpful), with its
    measured gain, 95% interval and verdict. ``path`` lists every subset trained, in
    order, starting from the best helpful single candidate; ``evaluated`` counts the
    subsets trained (each one probe per replicate) against the ``budget``;
    ``stop_reason`` is ``no_helpful_candidate``, ``no_improvement`` (the best extension
    tried did not beat the current set beyond its interval), ``budget`` or
    ``exhausted`` (no candidate with a positive gain left to add).
    """

    members: tuple[str, ...]
    gain: float
    ci_low: float
    ci_high: float
    verdict: Verdict
    path: tuple[SubsetStep, ...]
    evaluated: int
    budget: int
    stop_reason: str


@dataclass(frozen=True)
class BaselineAdvice:
    """The main task trained alone: mean test metrics over replicates."""

    metrics: dict[str, float]
    seeds: int
    per_seed: dict[str, tuple[float, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Advice:
    """The engine's answer for one job.

    ``candidates`` are ranked best first: probed candidates by gain on ``metric``, then
    (methods ``screen`` / ``screen+probe``) the ``not_probed`` ones by their screening
    proxy. ``runs`` keeps every probe run (metrics and learning curve; subset probes
    have several ``aux``) for plots and audits. ``method`` is ``probe``, ``screen``
    (proxies only: no gains or intervals) or ``screen+probe``. ``agreement`` says how
    well the proxy ranked the confirmed candidates (``screen+probe`` only); ``subset``
    is the subset search's answer (when ``subset_search`` is on). With
    ``main_train_fractions``, ``fractions`` holds the answer at each share (ascending),
    ``hints`` each candidate's :class:`engine.curves.MechanismHint`, and the rest of the
    advice is the largest share's.
    """

    metric: MetricName
    method: str
    main: TaskInfo
    baseline: BaselineAdvice
    candidates: tuple[CandidateAdvice, ...]
    runs: tuple[ProbeRun, ...]
    interval: IntervalMethod
    seed: int
    budget: dict[str, Any] = field(default_factory=dict)
    dropped_features: dict[str, str] = field(default_factory=dict)
    chunks: int = 1
    agreement: Agreement | None = None
    subset: SubsetAdvice | None = None
    recipe: str = DEFAULT_RECIPE
    confidence: float = 0.95  # the lowest of any candidate's interval (engine.racing)
    rounds: int = 1  # racing rounds the probes took
    test_train_ratio: float = math.nan  # n_test / n_train of the corrected interval
    fractions: tuple[FractionAdvice, ...] = ()  # per share, with main_train_fractions
    hints: tuple[MechanismHint, ...] = ()  # mechanism hints, with main_train_fractions

    @property
    def estimand(self) -> str:
        """What each candidate's gain estimates, in words."""
        return ESTIMAND.format(metric=self.metric)

    @property
    def recipe_text(self) -> str:
        """The recipe this advice answers for, every knob named."""
        return describe_recipe(self.recipe, Budget(**self.budget))

    def to_frame(self) -> pd.DataFrame:
        """One row per candidate, best first; one column per screening proxy. With
        ``fractions`` (``main_train_fractions``): one row per candidate and share, with
        a ``main_train_fraction`` column and the candidate's mechanism hints (see
        :func:`engine.curves.fraction_rows`)."""
        if self.fractions:
            order = [c.name for c in self.candidates]
            return pd.DataFrame(fraction_rows(order, self.fractions, self.hints))
        return pd.DataFrame([candidate_row(c) for c in self.candidates])

    def candidate(self, name: str) -> CandidateAdvice:
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN becomes None)."""
        body = asdict(self)
        body["estimand"] = self.estimand
        body["recipe_text"] = self.recipe_text
        body["runs"] = [
            {**asdict(run), "spec": {"replicate": run.spec.replicate, "aux": list(run.spec.aux)}}
            for run in self.runs
        ]
        safe: dict[str, Any] = json_safe(body)
        return safe


def summarise(
    runs: Sequence[ProbeRun],
    *,
    main: TaskInfo,
    candidates: Sequence[TaskInfo],
    metric: MetricName,
    test_train_ratio: float,
    interval: IntervalMethod,
    fdr: FdrMethod,
    levels: Callable[[int], tuple[float, float]] = lambda trained: (0.95, Q_LEVEL),
) -> tuple[BaselineAdvice, list[CandidateAdvice]]:
    """Pair each candidate's runs with the baseline of the same replicate and score.

    Runs whose probe failed (``error`` set) are left out of the pairing; the candidate
    keeps the reason in ``errors``. ``levels(trained)`` is a candidate's (confidence,
    q_level) given the replicates trained for it (its racing look, engine.racing): its
    interval is at that confidence, and a verdict needs the interval to exclude zero
    and the q-value (``fdr``: Benjamini-Hochberg's or Storey's adaptive one, see
    :mod:`engine.scoring`) to be at most that q_level.
    """
    metric_names = METRICS_BY_KIND[main.kind]
    baselines = {r.spec.replicate: r for r in runs if r.spec.is_baseline and r.error is None}
    replicates = sorted(baselines)
    base_values = {name: [baselines[r].metrics[name] for r in replicates] for name in metric_names}
    baseline = BaselineAdvice(
        metrics={name: _nanmean(v) for name, v in base_values.items()},
        seeds=len(replicates),
        per_seed={name: tuple(v) for name, v in base_values.items()},
    )
    second = secondary_metric(main.kind, metric)

    partial = []
    for index, task in enumerate(candidates):
        own = [r for r in runs if r.spec.aux == (index,)]
        errors = tuple(sorted({f"replicate {r.spec.replicate}: {r.error}" for r in own if r.error}))
        by_rep = {r.spec.replicate: r for r in own if r.error is None}
        shared = [r for r in replicates if r in by_rep]
        # Its look is the round of its last trained replicate, failed or not.
        level = levels(1 + max((r.spec.replicate for r in own), default=-1))
        confidence = level[0]

        def gain_of(
            name: MetricName,
            shared: list[int] = shared,
            by_rep: dict[int, ProbeRun] = by_rep,
            confidence: float = confidence,
        ) -> GainStats:
            return paired_gain(
                [baselines[r].metrics[name] for r in shared],
                [by_rep[r].metrics[name] for r in shared],
                name,
                test_train_ratio=test_train_ratio,
                interval=interval,
                confidence=confidence,
            )

        primary = gain_of(metric)
        secondary = MetricGain.of(second, gain_of(second))
        base_metric = baseline.metrics.get(metric, math.nan)
        rel = primary.gain / abs(base_metric) if base_metric else math.nan
        disagreement = (
            np.isfinite(primary.gain)
            and np.isfinite(secondary.gain)
            and np.sign(primary.gain) * np.sign(secondary.gain) < 0
            and (primary.verdict != "inconclusive" or secondary.verdict != "inconclusive")
        )
        cand_metrics: dict[str, float] = {
            name: _nanmean([by_rep[r].metrics[name] for r in shared]) for name in metric_names
        }
        partial.append(
            (task, primary, secondary, rel, bool(disagreement), cand_metrics, errors, level)
        )

    qs = q_values([p[1].p_value for p in partial], fdr)
    order = sorted(
        range(len(partial)),
        key=lambda i: (not np.isfinite(partial[i][1].gain), -np.nan_to_num(partial[i][1].gain)),
    )
    ranked = []
    for rank, i in enumerate(order, start=1):
        task, primary, secondary, rel, disagreement, cand_metrics, errors, level = partial[i]
        confidence, q_level = level
        ranked.append(
            CandidateAdvice(
                rank=rank,
                name=task.name,
                column=task.column,
                kind=task.kind,
                source=task.source,
                gain=primary.gain,
                se=primary.se,
                ci_low=primary.ci_low,
                ci_high=primary.ci_high,
                rel_gain=rel,
                p_value=primary.p_value,
                q_value=qs[i],
                verdict=gated_verdict(primary.verdict, qs[i], q_level),
                seeds=primary.n,
                metrics=cand_metrics,
                per_seed=primary.per_replicate,
                secondary=secondary,
                disagreement=disagreement,
                errors=errors,
                confidence=confidence,
            )
        )
    return baseline, ranked


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def json_safe(value: Any) -> Any:
    """Plain JSON values: non-finite floats become None, tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
