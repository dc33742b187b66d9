"""What the pages show, computed from the API's views: learning curves averaged over
replicates, chart data, and number formats. Pure functions (unit-tested)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from app.jobs.views import ProbeRunList, RankingOut

VERDICTS = ("helpful", "inconclusive", "harmful")
BASELINE = "baseline (main task alone)"
# Curves beyond this many candidates start hidden (the legend toggles them).
CURVES_SHOWN = 8


class Series(TypedDict):
    name: str
    baseline: bool
    mean: list[float | None]
    n: list[int]
    hidden: bool


class Curves(TypedDict):
    metric: str
    series: list[Series]


class Point(TypedDict):
    name: str
    x: float | None
    y: float | None
    verdict: str


def mean_curves(runs: ProbeRunList, order: list[str] | None = None) -> Curves:
    """The main task's validation metric per epoch, averaged over replicates, for the
    baseline and each single-candidate probe. Probes stop early at different epochs,
    so each epoch's mean is over the replicates that reached it (``n`` says how many)."""
    groups: dict[str, list[list[float | None]]] = {}
    for run in runs.items:
        if run.error:
            continue
        label = " + ".join(run.candidates) if run.candidates else BASELINE
        groups.setdefault(label, []).append(run.curve)
    rank = {name: i for i, name in enumerate(order or [])}
    labels = sorted(
        groups, key=lambda k: (k != BASELINE, rank.get(k, len(rank)), k)
    )  # baseline first, then ranking order
    series: list[Series] = []
    for i, label in enumerate(labels):
        curves = groups[label]
        length = max((len(c) for c in curves), default=0)
        mean: list[float | None] = []
        count: list[int] = []
        for epoch in range(length):
            values = [
                v for v in (finite(c[epoch]) for c in curves if epoch < len(c)) if v is not None
            ]
            mean.append(sum(values) / len(values) if values else None)
            count.append(len(values))
        series.append(
            {
                "name": label,
                "baseline": label == BASELINE,
                "mean": mean,
                "n": count,
                "hidden": i > CURVES_SHOWN,
            }
        )
    return {"metric": runs.metric, "series": series}


def finite(value: object) -> float | None:
    """A number the page's JSON can carry (JSON has no NaN or infinity)."""
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int | float | str):
        raise TypeError(f"not a number: {value!r}")
    number = float(value)
    return number if math.isfinite(number) else None


def gain_chart(ranking: RankingOut) -> dict[str, object]:
    """Gains with their intervals, best first, coloured by verdict."""
    rows = [c for c in ranking.candidates if finite(c.gain) is not None]
    return {
        "metric": ranking.metric,
        "names": [c.name for c in rows],
        "gain": [finite(c.gain) for c in rows],
        "low": [finite(c.ci_low) for c in rows],
        "high": [finite(c.ci_high) for c in rows],
        "verdict": [c.verdict for c in rows],
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


def signed(value: float | None, digits: int = 4) -> str:
    """A gain with its sign; tiny values in scientific notation so they do not read 0."""
    if value is None or not math.isfinite(value):
        return "–"
    if value != 0 and abs(value) < 10 ** -(digits - 1):
        return f"{value:+.2e}"
    return f"{value:+.{digits}f}"


def number(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def percent(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value * 100:+.1f}%"


def safe_next(target: str | None) -> str:
    """A same-site path to go to after signing in; anything else goes to the jobs page
    (an absolute or protocol-relative URL would make sign-in an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
