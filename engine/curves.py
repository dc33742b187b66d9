"""Where along the data axis a candidate helps: the job's answer at several shares of
the main task's training labels (``main_train_fractions``, run by
:mod:`engine.fractions`), and cheap hints at the mechanism behind a gain.

Ruder (2017, §4) names mechanisms by which an auxiliary task helps: implicit data
augmentation (its labels on rows the main task has none for), regularisation, and
others; the first two are expected to fade as the main task's own labels grow. A
:class:`MechanismHint` reads what the job already has: the candidate's label overlap
with the main task's training rows at each share (:func:`engine.evidence.label_coverage`)
whether its gain still stands at the largest share, and the main head's
train–validation loss gap with it against without it (each probe's main-task loss on
its training rows and on its validation rows at its best epoch, ``ProbeRun.fit``): a
narrower gap with the candidate is what regularisation would give. It is a hint, not a
claim: nothing here separates the mechanisms experimentally.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.evidence import LabelCoverage
from engine.metrics import HIGHER_IS_BETTER, MetricName
from engine.scoring import paired_gain

if TYPE_CHECKING:  # engine.ranking imports this module; only the types are needed
    from engine.ranking import BaselineAdvice, CandidateAdvice
    from engine.readout import ProbeRun


@dataclass(frozen=True)
class FractionAdvice:
    """The job's answer at one share of the main task's training labels.

    ``main_train``: main labels a replicate trains on at this share. ``baseline`` and
    ``candidates`` (ranked best first at this share) are scored as a job run at
    ``main_train_fraction`` alone would score them (q-values over the job's candidates
    at this share); ``runs`` are its probe runs, ``rounds`` its racing rounds.
    """

    main_train_fraction: float
    main_train: int
    baseline: BaselineAdvice
    candidates: tuple[CandidateAdvice, ...]
    rounds: int = 1
    runs: tuple[ProbeRun, ...] = ()


@dataclass(frozen=True)
class MechanismHint:
    """Cheap hints at how one candidate helps (hints, not claims; see the module).

    ``shares``: the job's shares, ascending. ``train_labelled``: the candidate's
    labelled training rows per replicate (the same at every share). ``train_overlap``
    per share: those of its training rows whose main label also trains.
    ``aux_only`` per share: its labelled training rows whose main label does not train
    (``train_labelled`` − ``train_overlap``): where it can act as data augmentation.
    ``gains`` per share: its paired gain. ``helps_at``: the shares where it is called
    ``helpful`` (interval above zero and q-value gated, as in the ranking).
    ``persists``: whether it still helps at the largest share (None when it helps at
    none). ``fade`` (with its 95% t-interval ``fade_ci_low`` /
    ``fade_ci_high``): its gain at the smallest share minus its gain at the largest,
    paired replicate by replicate over the ``fade_n`` replicates both shares ran
    (positive: it helps more when main labels are few; NaN with one share). ``text``:
    the hint in one sentence, or None. ``gap_base`` / ``gap_with`` per share: the
    main head's validation loss minus its training loss, mean over replicates, alone
    and beside the candidate (NaN where not measured); ``gap_change`` per share:
    ``gap_with`` − ``gap_base`` paired over replicates (negative: a narrower gap with
    it, as regularisation would give), with its paired 95% t-interval
    ``gap_change_ci_low`` / ``gap_change_ci_high``; ``gap_text``: that at the smallest share in one
    sentence (None where not measured).
    """

    name: str
    shares: tuple[float, ...]
    train_labelled: float
    train_overlap: tuple[float, ...]
    aux_only: tuple[float, ...]
    gains: tuple[float, ...]
    helps_at: tuple[float, ...]
    persists: bool | None
    fade: float
    fade_ci_low: float
    fade_ci_high: float
    fade_n: int
    text: str | None
    gap_base: tuple[float, ...] = ()
    gap_with: tuple[float, ...] = ()
    gap_change: tuple[float, ...] = ()
    gap_change_ci_low: tuple[float, ...] = ()
    gap_change_ci_high: tuple[float, ...] = ()
    gap_text: str | None = None


def mechanism_hints(
    fractions: Sequence[FractionAdvice],
    coverage: Sequence[Sequence[LabelCoverage]],
    metric: MetricName,
) -> tuple[MechanismHint, ...]:
    """One hint per candidate from each share's advice and its label coverage
    (``coverage[i]`` is :func:`engine.evidence.label_coverage` under share i's splits,
    in candidate order), on the job's primary ``metric``."""
    shares = tuple(f.main_train_fraction for f in fractions)
    by_share = [{c.name: c for c in f.candidates} for f in fractions]
    hints = []
    for index, first in enumerate(coverage[0]):
        name = first.name
        overlap = tuple(cov[index].train_overlap for cov in coverage)
        aux_only = tuple(max(0.0, first.train_labelled - o) for o in overlap)
        gains = tuple(s[name].gain if name in s else math.nan for s in by_share)
        helps_at = tuple(
            share
            for share, s in zip(shares, by_share, strict=True)
            if name in s and s[name].verdict == "helpful"
        )
        persists = None if not helps_at else shares[-1] in helps_at
        small = _gains_by_replicate(fractions[0].runs, index, metric)
        large = _gains_by_replicate(fractions[-1].runs, index, metric)
        both = sorted(set(small) & set(large)) if len(fractions) > 1 else []
        # paired_gain orients by the metric; the per-replicate gains are already
        # oriented, so order the pair to get small − large either way.
        gaps = [_gaps(f.runs, index) for f in fractions]  # per share
        pair = ([large[r] for r in both], [small[r] for r in both])
        fade = paired_gain(
            *(pair if HIGHER_IS_BETTER[metric] else pair[::-1]), metric, test_train_ratio=0.0
        )
        hints.append(
            MechanismHint(
                name=name,
                shares=shares,
                train_labelled=first.train_labelled,
                train_overlap=overlap,
                aux_only=aux_only,
                gains=gains,
                helps_at=helps_at,
                persists=persists,
                fade=fade.gain,
                fade_ci_low=fade.ci_low,
                fade_ci_high=fade.ci_high,
                fade_n=fade.n,
                text=_hint_text(shares, helps_at, aux_only, fade.ci_low),
                gap_base=tuple(g[0] for g in gaps),
                gap_with=tuple(g[1] for g in gaps),
                gap_change=tuple(g[2] for g in gaps),
                gap_change_ci_low=tuple(g[3] for g in gaps),
                gap_change_ci_high=tuple(g[4] for g in gaps),
                gap_text=_gap_text(shares, gaps),
            )
        )
    return tuple(hints)


def _hint_text(
    shares: tuple[float, ...],
    helps_at: tuple[float, ...],
    aux_only: tuple[float, ...],
    fade_ci_low: float,
) -> str | None:
    if not helps_at:
        return None
    largest = shares[-1]
    if largest in helps_at:
        where = (
            f"it labels about {aux_only[-1]:.0f} training rows the main task does not, "
            "so data augmentation may still act"
            if aux_only[-1] >= 1
            else "its labels add no rows there, so data augmentation alone does not explain it"
        )
        return f"Hint: still helps at {largest:g} of the main labels; {where}."
    fading = fade_ci_low > 0  # paired: larger at the smallest share beyond its interval
    return (
        f"Hint: helps at {', '.join(f'{s:g}' for s in helps_at)} of the main labels but "
        f"not at {largest:g}"
        + (
            " and its gain shrinks as they grow (paired over replicates): consistent with "
            "data augmentation or "
            "regularisation, effects that fade with more main labels (Ruder 2017, §4)."
            if fading
            else "."
        )
    )


Gaps = tuple[float, float, float, float, float]
"""A share's gap hint: (baseline's gap, the candidate's, its change, and the change's
95% paired t-interval low and high)."""


def _gaps(runs: Sequence[ProbeRun], candidate: int) -> Gaps:
    """Main-head validation minus training loss (``ProbeRun.fit``), mean over the
    replicates where the baseline and candidate ``candidate``'s probe both have it:
    (baseline's, the candidate's, the candidate's minus the baseline's with its 95%
    paired t-interval)."""

    def gap(run: ProbeRun) -> float:
        if run.error is not None or "train_loss" not in run.fit:
            return math.nan
        return run.fit["val_loss"] - run.fit["train_loss"]

    base = {r.spec.replicate: gap(r) for r in runs if r.spec.is_baseline}
    pairs = [
        (base[r.spec.replicate], gap(r))
        for r in runs
        if r.spec.aux == (candidate,) and r.spec.replicate in base
    ]
    pairs = [(b, w) for b, w in pairs if math.isfinite(b) and math.isfinite(w)]
    if not pairs:
        return math.nan, math.nan, math.nan, math.nan, math.nan
    n = len(pairs)
    mean_base = sum(b for b, _ in pairs) / n
    mean_with = sum(w for _, w in pairs) / n
    # paired_gain orients by the metric: under "loss" it gives first − second, here
    # with − base, the change.
    change = paired_gain([w for _, w in pairs], [b for b, _ in pairs], "loss", test_train_ratio=0.0)
    return mean_base, mean_with, mean_with - mean_base, change.ci_low, change.ci_high


def _gap_text(shares: tuple[float, ...], gaps: Sequence[Gaps]) -> str | None:
    """The train–validation gap hint at the smallest share (where regularisation would
    matter most) in one sentence; None where it was not measured. It calls the gap
    narrower or wider only when the change's paired interval excludes zero."""
    base, with_it, change, low, high = gaps[0]
    if not math.isfinite(change):
        return None
    if high < 0:
        verdict = "narrower, beyond its paired 95% interval: consistent with regularisation"
    elif low > 0:
        verdict = "wider, beyond its paired 95% interval"
    else:
        verdict = "no clear difference"
    return (
        f"Hint: at {shares[0]:g} of the main labels the main head's validation loss "
        f"exceeds its training loss by {with_it:.3g} with it against {base:.3g} alone "
        f"({verdict})."
    )


def _gains_by_replicate(
    runs: Sequence[ProbeRun], candidate: int, metric: MetricName
) -> dict[int, float]:
    """Candidate ``candidate``'s gain per replicate in ``runs`` (oriented: positive is
    better), over the replicates where both it and the baseline have a result."""
    base = {r.spec.replicate: r.metrics[metric] for r in runs if r.spec.is_baseline}
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    return {
        r.spec.replicate: sign * (r.metrics[metric] - base[r.spec.replicate])
        for r in runs
        if r.spec.aux == (candidate,)
        and r.error is None
        and r.spec.replicate in base
        and math.isfinite(r.metrics[metric] - base[r.spec.replicate])
    }


def candidate_row(c: CandidateAdvice) -> dict[str, Any]:
    """One candidate as a row of :meth:`engine.ranking.Advice.to_frame`."""
    row: dict[str, Any] = {
        "rank": c.rank,
        "candidate": c.name,
        "column": c.column,
        "kind": c.kind,
        "gain": c.gain,
        "ci_low": c.ci_low,
        "ci_high": c.ci_high,
        "confidence": c.confidence,
        "rel_gain": c.rel_gain,
        "p_value": c.p_value,
        "q_value": c.q_value,
        "verdict": c.verdict,
        "seeds": c.seeds,
    }
    if c.secondary is not None:
        row[f"{c.secondary.metric}_gain"] = c.secondary.gain
        row["disagreement"] = c.disagreement
    if c.evidence is not None:
        row["labelled"] = c.evidence.labelled
        row["overlap"] = c.evidence.overlap
        row["label_correlation"] = c.evidence.correlation
        row["mutual_info"] = c.evidence.mutual_info
        row["evidence_disagrees"] = c.evidence_disagrees
    row.update(c.proxies)
    return row


def fraction_rows(
    order: Sequence[str], fractions: Sequence[FractionAdvice], hints: Sequence[MechanismHint]
) -> list[dict[str, Any]]:
    """One row per candidate and share: candidates in ``order`` (the headline
    ranking's), shares ascending; ``rank`` is the candidate's rank at that share."""
    position = {name: i for i, name in enumerate(order)}
    by_name = {h.name: h for h in hints}
    rows = []
    for i, fraction in enumerate(fractions):
        for c in fraction.candidates:
            row = {"main_train_fraction": fraction.main_train_fraction, **candidate_row(c)}
            hint = by_name.get(c.name)
            if hint is not None:
                row["train_overlap"] = hint.train_overlap[i]
                row["aux_only_rows"] = hint.aux_only[i]
                row["persists"] = hint.persists
                row["fade"] = hint.fade
                row["hint"] = hint.text
                if hint.gap_change:
                    row["gap_change"] = hint.gap_change[i]
            rows.append(row)
    rows.sort(key=lambda r: (position.get(r["candidate"], len(order)), r["main_train_fraction"]))
    return rows
