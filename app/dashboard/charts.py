"""The job page's chart data, computed from the API's views: learning curves averaged
over replicates, gains with their intervals, proxy scores against gains, and each
candidate's colour. Pure functions (unit-tested)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Literal, TypedDict

from app.dashboard.views import finite

if TYPE_CHECKING:
    from app.jobs.views import ProbeRunList, RankingOut

BASELINE = "baseline (main task alone)"
# Curves beyond this many candidates start hidden (the legend toggles them).
CURVES_SHOWN = 8


PALETTE = (
    "#0072b2",
    "#d55e00",
    "#009e73",
    "#cc79a7",
    "#e69f00",
    "#56b4e9",
    "#8250df",
    "#9c755f",
    "#6b8e23",
    "#6e7781",
    "#b8336a",
    "#17becf",
)
"""Candidate colours, after Okabe and Ito's colour-blind safe set and a few more far
from them; the baseline is drawn in the text colour, dashed."""


def candidate_colour(name: str) -> str:
    """A candidate's colour from a hash of its name: the same name has the same colour
    on every job's page, whatever the other candidates or their order."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return PALETTE[int.from_bytes(digest[:4], "big") % len(PALETTE)]


class Series(TypedDict):
    name: str
    baseline: bool
    colour: str | None
    mean: list[float | None]
    low: list[float | None]
    high: list[float | None]
    n: list[int]
    replicates: int
    hidden: bool


class Curves(TypedDict):
    metric: str
    series: list[Series]
    main_train_fraction: float | None


class Point(TypedDict):
    name: str
    x: float | None
    y: float | None
    verdict: str


CurveField = Literal["curve", "train_loss", "aux_loss"]


def mean_curves(
    runs: ProbeRunList, order: list[str] | None = None, field: CurveField = "curve"
) -> Curves:
    """The main task's validation metric per epoch (or another of a run's curves:
    ``train_loss``, ``aux_loss``), averaged over replicates, for the baseline and each
    single-candidate probe. Probes stop early at different epochs,
    so each epoch's mean is over the replicates that reached it (``n`` says how many,
    of ``replicates``); ``low`` / ``high`` are the least and greatest of them (the band
    the page draws around the mean). Runs without that curve are left out."""
    groups: dict[str, list[list[float | None]]] = {}
    # A job at several shares of the main labels: the curves of its largest share, the
    # one its ranking answers for (each share trains every probe again).
    shares = [r.main_train_fraction for r in runs.items if r.main_train_fraction is not None]
    largest = max(shares, default=None)
    for run in runs.items:
        curve = getattr(run, field)
        if run.error or not curve or run.main_train_fraction != largest:
            continue
        label = " + ".join(run.candidates) if run.candidates else BASELINE
        groups.setdefault(label, []).append(curve)
    rank = {name: i for i, name in enumerate(order or [])}
    labels = sorted(
        groups, key=lambda k: (k != BASELINE, rank.get(k, len(rank)), k)
    )  # baseline first, then ranking order
    series: list[Series] = []
    for i, label in enumerate(labels):
        curves = groups[label]
        length = max((len(c) for c in curves), default=0)
        mean: list[float | None] = []
        low: list[float | None] = []
        high: list[float | None] = []
        count: list[int] = []
        for epoch in range(length):
            values = [
                v for v in (finite(c[epoch]) for c in curves if epoch < len(c)) if v is not None
            ]
            mean.append(sum(values) / len(values) if values else None)
            low.append(min(values) if values else None)
            high.append(max(values) if values else None)
            count.append(len(values))
        series.append(
            {
                "name": label,
                "baseline": label == BASELINE,
                "colour": None if label == BASELINE else candidate_colour(label),
                "mean": mean,
                "low": low,
                "high": high,
                "n": count,
                "replicates": len(curves),
                "hidden": i > CURVES_SHOWN,
            }
        )
    return {"metric": runs.metric, "series": series, "main_train_fraction": largest}


def gain_chart(ranking: RankingOut) -> dict[str, object]:
    """Gains with their intervals and each replicate's gain, best first, coloured by
    verdict."""
    rows = [c for c in ranking.candidates if finite(c.gain) is not None]
    return {
        "metric": ranking.metric,
        "names": [c.name for c in rows],
        "gain": [finite(c.gain) for c in rows],
        "low": [finite(c.ci_low) for c in rows],
        "high": [finite(c.ci_high) for c in rows],
        "verdict": [c.verdict for c in rows],
        # Each replicate's paired gain, drawn as points over the interval.
        "per_seed": [[v for v in map(finite, c.per_seed) if v is not None] for c in rows],
    }


def proxy_names(ranking: RankingOut) -> list[str]:
    """Proxy scores that at least one candidate has."""
    names: dict[str, None] = {}
    for c in ranking.candidates:
        for key, value in c.proxies.items():
            if finite(value) is not None:
                names.setdefault(key, None)
    return list(names)


def proxy_points(ranking: RankingOut) -> dict[str, list[Point]]:
    """Per proxy: one point per candidate with both a proxy score and a probe gain."""
    points: dict[str, list[Point]] = {}
    for key in proxy_names(ranking):
        points[key] = [
            {
                "name": c.name,
                "x": finite(c.proxies[key]),
                "y": finite(c.gain),
                "verdict": c.verdict,
            }
            for c in ranking.candidates
            if finite(c.proxies.get(key)) is not None and finite(c.gain) is not None
        ]
    return points
