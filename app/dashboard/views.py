"""What the pages show, computed from the API's views: learning curves averaged over
replicates, chart data, and number formats. Pure functions (unit-tested)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, TypedDict

if TYPE_CHECKING:
    from app.jobs.views import ProbeRunList, RankingOut

VERDICTS = ("helpful", "inconclusive", "harmful")
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


def finite(value: object) -> float | None:
    """A number the page's JSON can carry (JSON has no NaN or infinity)."""
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int | float | str):
        raise TypeError(f"not a number: {value!r}")
    number = float(value)
    return number if math.isfinite(number) else None


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


AGREEMENT_MIN_N = 5
"""Fewest confirmed candidates for which the page gives the proxy agreement an interval
and a p-value: below it a rank correlation's Fisher-z interval is not worth reading
(with 4 candidates ρ = 1 happens by chance once in 12 orderings)."""

STOP_REASONS = {
    "no_helpful_candidate": (
        "no candidate was helpful on its own, so there was no set to start from"
    ),
    "no_improvement": "the best extension tried did not beat the current set beyond its interval",
    "budget": "it trained as many subsets as its budget allowed",
    "exhausted": "no candidate with a positive gain was left to add",
}


class AgreementView(TypedDict):
    proxy: str
    n: int
    rho: float | None
    low: float | None
    high: float | None
    p_value: float | None
    interval: bool
    confirmed: list[str]
    random: list[str]
    sentence: str


def _texts(value: object) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return []


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def agreement_view(agreement: Mapping[str, object] | None) -> AgreementView | None:
    """How well the screening proxy ranked the confirmed candidates, in one sentence
    with its n. An interval and a p-value only from AGREEMENT_MIN_N candidates on; at
    ρ = ±1 no Fisher-z interval (it collapses onto ±1) and the exact p-value of a
    perfect ordering, 2/n!, in place of the normal approximation's 0."""
    if not agreement:
        return None
    proxy = str(agreement.get("proxy") or "proxy")
    n = _count(agreement.get("n"))
    rho = finite(agreement.get("spearman"))
    low, high = finite(agreement.get("ci_low")), finite(agreement.get("ci_high"))
    p_value = finite(agreement.get("p_value"))
    confirmed, random = _texts(agreement.get("confirmed")), _texts(agreement.get("random"))
    drawn = f" ({len(random)} drawn at random)" if random else ""
    where = f"the n = {n} confirmed candidate{'s' if n != 1 else ''}{drawn}"
    interval = False
    if rho is None:
        sentence = (
            f"The {proxy} proxy's agreement with the probes could not be measured on {where}: "
            "it needs at least 3 candidates whose proxy scores and gains both vary."
        )
        p_value = None
    elif n < AGREEMENT_MIN_N:
        sentence = (
            f"The {proxy} proxy ranked {where} with Spearman ρ = {rho:.2f}. With fewer "
            f"than {AGREEMENT_MIN_N} candidates this is no evidence either way: "
            "no interval or p-value is given."
        )
        p_value = None
    elif abs(rho) >= 1 - 1e-9 or low is None or high is None:
        p_value = min(1.0, 2 / math.factorial(n))
        sentence = (
            f"The {proxy} proxy ranked {where} with Spearman ρ = {rho:.2f} "
            f"(exact p = {p_value:.2g} for a perfect ordering by chance; no interval: "
            "it would collapse onto ±1)."
        )
    else:
        interval = True
        sentence = (
            f"The {proxy} proxy ranked {where} with Spearman ρ = {rho:.2f}, "
            f"95% interval [{low:.2f}, {high:.2f}], p = {p_value:.2g}."
            if p_value is not None
            else f"The {proxy} proxy ranked {where} with Spearman ρ = {rho:.2f}, "
            f"95% interval [{low:.2f}, {high:.2f}]."
        )
    return {
        "proxy": proxy,
        "n": n,
        "rho": rho,
        "low": low if interval else None,
        "high": high if interval else None,
        "p_value": p_value,
        "interval": interval,
        "confirmed": confirmed,
        "random": random,
        "sentence": sentence,
    }


class SubsetStepView(TypedDict):
    step: int
    members: list[str]
    gain: float | None
    low: float | None
    high: float | None
    improvement: float | None
    improvement_low: float | None
    improvement_high: float | None
    accepted: bool


class SubsetView(TypedDict):
    members: list[str]
    gain: float | None
    low: float | None
    high: float | None
    verdict: str
    evaluated: int
    budget: int
    stop_reason: str
    stop_text: str
    steps: list[SubsetStepView]


def subset_view(subset: Mapping[str, object] | None) -> SubsetView | None:
    """The subset search as a recommendation and a table of the sets it trained."""
    if not subset:
        return None
    path = subset.get("path")
    steps: list[SubsetStepView] = []
    for i, step in enumerate(path if isinstance(path, list) else [], start=1):
        if not isinstance(step, Mapping):
            continue
        steps.append(
            {
                "step": i,
                "members": _texts(step.get("members")),
                "gain": finite(step.get("gain")),
                "low": finite(step.get("ci_low")),
                "high": finite(step.get("ci_high")),
                "improvement": finite(step.get("improvement")),
                "improvement_low": finite(step.get("improvement_ci_low")),
                "improvement_high": finite(step.get("improvement_ci_high")),
                "accepted": step.get("accepted") is True,
            }
        )
    reason = str(subset.get("stop_reason") or "")
    return {
        "members": _texts(subset.get("members")),
        "gain": finite(subset.get("gain")),
        "low": finite(subset.get("ci_low")),
        "high": finite(subset.get("ci_high")),
        "verdict": str(subset.get("verdict") or "inconclusive"),
        "evaluated": _count(subset.get("evaluated")),
        "budget": _count(subset.get("budget")),
        "stop_reason": reason,
        "stop_text": STOP_REASONS.get(reason, reason.replace("_", " ")),
        "steps": steps,
    }


class DatasetRef(TypedDict):
    id: str | None
    name: str
    sha256: str | None
    deleted: bool


def dataset_ref(
    spec_dataset_id: str | None,
    live: tuple[str, str, str] | None,
    result: Mapping[str, object] | None,
) -> DatasetRef:
    """The data set a job ran on: the live one (id, name, sha256) while it exists, else
    the identity its result kept (at deletion, or the worker's provenance record)."""
    if live is not None:
        return {"id": live[0], "name": live[1], "sha256": live[2], "deleted": False}
    stored = result or {}
    at_deletion = _mapping(stored.get("dataset"))
    kept = at_deletion or _mapping(_mapping(stored.get("provenance")).get("dataset"))
    sha = kept.get("sha256")
    return {
        "id": spec_dataset_id,
        "name": str(kept.get("name") or spec_dataset_id or "unknown data set"),
        "sha256": sha if isinstance(sha, str) else None,
        "deleted": True,
    }


NOT_RECORDED = "not recorded (job from before provenance)"


def provenance_rows(
    dataset: DatasetRef, result: Mapping[str, object] | None, recipe_text: str, seed: int
) -> list[tuple[str, str, str]]:
    """The job page's provenance block: (id, label, value) rows. The versions are those
    the worker recorded when it finished the job (none for a job that did not succeed,
    or that ran before they were recorded)."""
    record = _mapping((result or {}).get("provenance"))

    def version(key: str) -> str:
        value = record.get(key)
        return str(value) if value else NOT_RECORDED

    return [
        ("data", "Data set", dataset["name"] + (" (deleted)" if dataset["deleted"] else "")),
        ("sha256", "Data sha256", dataset["sha256"] or NOT_RECORDED),
        ("auxsel", "auxsel version", version("auxsel")),
        ("torch", "torch version", version("torch")),
        ("python", "Python version", version("python")),
        ("recipe", "Recipe", recipe_text),
        ("seed", "Seed", str(seed)),
    ]


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


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


def duration_s(
    started: datetime | None, finished: datetime | None, now: datetime | None = None
) -> float | None:
    """Seconds a job ran: from its start to its end, or to now while it runs; None
    before it started."""
    if started is None:
        return None
    end = finished or now or datetime.now(UTC)
    return max((end - started).total_seconds(), 0.0)


def duration(seconds: float | None) -> str:
    """A duration as people read it: 42 s, 3 min 5 s, 2 h 7 min (jobs.js writes the same)."""
    if seconds is None:
        return "–"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"
