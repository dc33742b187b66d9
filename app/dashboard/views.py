"""What the pages show, computed from the API's views: the screening proxy's agreement
and the subset search in words, the data set and provenance a job ran with, number and
duration formats, and where sign-in may go next. Chart data is in
app/dashboard/charts.py. Pure functions (unit-tested)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypedDict

VERDICTS = ("helpful", "inconclusive", "harmful")


def finite(value: object) -> float | None:
    """A number the page's JSON can carry (JSON has no NaN or infinity)."""
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int | float | str):
        raise TypeError(f"not a number: {value!r}")
    number = float(value)
    return number if math.isfinite(number) else None


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
