"""A job at several shares of the main task's training labels
(``budget.main_train_fractions``, run by :mod:`engine.fractions`) in the service.

Each share is its own racing run on its own splits, so the same probe (replicate,
candidates) trains once per share: its stored key carries the share, ``f0.25/r0:c1``
(the engine's key of a probe at a share, ``ProbeSpec.key``). A job without shares keeps
the engine's key as it is (``r0:c1``), so jobs and runs stored before shares read back
unchanged. The worker trains the shares together (:func:`engine.race_shares`): each
racing round's probes of every share still racing in one set of chunks, cut by
replicate, so the first chunk stored holds every share's first replicate and the
provisional ranking answers for all the labels, with every share, from it on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

import engine
from app.jobs.context import JobContext

MAX_SHARES = 6
"""Most shares a job may list (each share is a whole job's training)."""

SHARES_DOC = (
    "Shares of the main task's training labels to run the job at (2 to "
    f"{MAX_SHARES}, each in (0, 1], 1 included, each listed once): one racing run per share on "
    "nested, paired splits; the ranking is the answer at 1 (all labels), with each "
    "candidate's gain at every share. Method probe only, no subset search; leave "
    "main_train_fraction at 1."
)


def share_prefix(share: float | None) -> str:
    """The key prefix of a share's probe runs; none for a job without shares."""
    return "" if share is None else f"f{share!r}/"


def share_of(key: str) -> float | None:
    """The share a stored probe-run key names (None: a job without shares)."""
    head, sep, _ = key.partition("/")
    if not sep or not head.startswith("f"):
        return None
    try:
        return float(head[1:])
    except ValueError:
        return None


def check_shares(value: list[float]) -> list[float]:
    """``budget.main_train_fractions`` as a job may set it, sorted (the engine's
    bounds on each item are checked by the schema)."""
    if not value:
        return value
    if len(value) > MAX_SHARES:
        raise ValueError(
            f"Lists {len(value)} shares; at most {MAX_SHARES} (each one trains the whole "
            "job again). Keep fewer, e.g. [0.1, 0.25, 0.5, 1]."
        )
    if len(set(value)) != len(value):
        raise ValueError("Lists a share twice; list each share once.")
    if 1.0 not in value or len(value) < 2:
        raise ValueError(
            "Must include 1 (all the main labels, the ranking's answer) and at least one "
            "share below it, e.g. [0.1, 0.25, 0.5, 1]."
        )
    return sorted(value)


def share_problems(method: str, budget: engine.Budget) -> list[str]:
    """Why a job with shares cannot run as set (empty: it can). Each share's runs are
    stored per probe; screening and the subset search store runs the shares would
    share, so a job with shares probes every candidate, searches no subsets."""
    if not budget.main_train_fractions:
        return []
    problems = []
    if method != "probe":
        problems.append(
            f"Runs with method 'probe' only (this job's method is {method!r}); set method "
            "to probe, or leave main_train_fractions out."
        )
    if budget.subset_search:
        problems.append(
            "Cannot run with subset_search; turn subset_search off, or leave "
            "main_train_fractions out."
        )
    return problems


def share_contexts(context: JobContext) -> list[tuple[float, JobContext]]:
    """The job at each of its shares, ascending: the share's budget and its splits
    (nested and paired, :mod:`engine.fractions`). Too few rows at a share is a
    SpecError of ``budget.main_train_fractions``."""
    plan = context.budget
    return [
        (
            share,
            replace(
                context,
                budget=engine.share_budget(plan, share),
                splits=engine.splits_at(context.problem, plan, share, context.seed),
            ),
        )
        for share in plan.main_train_fractions
    ]


def batched_context(context: JobContext, shares: Sequence[tuple[float, JobContext]]) -> JobContext:
    """The job's context that trains every share's probes (``share_contexts``) together:
    the largest share's splits, with every share's."""
    return replace(
        context,
        splits=shares[-1][1].splits,
        shares=tuple((share, ctx.splits) for share, ctx in shares),
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def fraction_details(advice: engine.Advice) -> dict[str, dict[str, object]]:
    """Per candidate name, what its ranking row keeps of the shares: ``fractions``
    (its gain, interval and verdict at each share, ascending) and ``hint`` (the
    engine's mechanism hint). Empty for a job without shares."""
    out: dict[str, dict[str, object]] = {}
    for fraction in advice.fractions:
        for c in fraction.candidates:
            row = {
                "main_train_fraction": fraction.main_train_fraction,
                "main_train": fraction.main_train,
                "rank": c.rank,
                "gain": _finite(c.gain),
                "ci_low": _finite(c.ci_low),
                "ci_high": _finite(c.ci_high),
                "p_value": _finite(c.p_value),
                "q_value": _finite(c.q_value),
                "verdict": c.verdict,
                "seeds": c.seeds,
            }
            entry = out.setdefault(c.name, {"fractions": [], "hint": None})
            shares = entry["fractions"]
            assert isinstance(shares, list)
            shares.append(row)
    for hint in advice.hints:
        if hint.name in out:
            out[hint.name]["hint"] = engine.json_safe(
                {
                    "helps_at": list(hint.helps_at),
                    "persists": hint.persists,
                    "aux_only": list(hint.aux_only),
                    "fade": hint.fade,
                    "fade_ci_low": hint.fade_ci_low,
                    "fade_ci_high": hint.fade_ci_high,
                    "fade_n": hint.fade_n,
                    "text": hint.text,
                    "gap_base": list(hint.gap_base),
                    "gap_with": list(hint.gap_with),
                    "gap_change": list(hint.gap_change),
                    "gap_change_ci_low": list(hint.gap_change_ci_low),
                    "gap_change_ci_high": list(hint.gap_change_ci_high),
                    "gap_text": hint.gap_text,
                }
            )
    return out


def percent_share(share: float) -> str:
    return f"{share * 100:.4g}%"


def _listed(shares: Sequence[float], joiner: str = "and") -> str:
    words = [percent_share(s) for s in shares]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {joiner} {words[-1]}"


def fraction_sentence(rows: Sequence[Mapping[str, object]]) -> str | None:
    """Where along the data axis a candidate helps, in one sentence, from its rows
    (one per share, ascending; each with ``main_train_fraction`` and ``verdict``):
    e.g. "Helpful at 10% and 25% of the main labels; not at 100%: a small-data
    helper." None without rows."""
    if not rows:
        return None
    shares = [float(str(r["main_train_fraction"])) for r in rows]
    helpful = [s for s, r in zip(shares, rows, strict=True) if r["verdict"] == "helpful"]
    harmful = [s for s, r in zip(shares, rows, strict=True) if r["verdict"] == "harmful"]
    rest = [s for s in shares if s not in helpful]
    harm = f"; harmful at {_listed(harmful)}" if harmful else ""
    if not helpful:
        return f"Not helpful at any share measured ({_listed(shares)} of the main labels){harm}."
    if not rest:
        return f"Helpful at every share measured ({_listed(shares)} of the main labels)."
    small = shares[-1] not in helpful
    return (
        f"Helpful at {_listed(helpful)} of the main labels; not at {_listed(rest, 'or')}"
        f"{harm}" + (": a small-data helper." if small else ".")
    )
