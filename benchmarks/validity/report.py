"""Turn the study's raw results into the tables of docs/validity.md."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.validity.agreement import covered, pooled_rates
from benchmarks.validity.study import ScenarioResult, StudyConfig
from benchmarks.validity.truth import split_half_reliability


def scores_frame(results: Sequence[ScenarioResult]) -> pd.DataFrame:
    frames = [r.scores.assign(real=r.real) for r in results]
    return pd.concat(frames, ignore_index=True)


def predictions_frame(results: Sequence[ScenarioResult]) -> pd.DataFrame:
    return pd.concat([r.predictions for r in results], ignore_index=True)


def truth_frame(results: Sequence[ScenarioResult]) -> pd.DataFrame:
    return pd.concat(
        [
            r.truth.summary.assign(scenario=r.scenario).rename_axis("candidate").reset_index()
            for r in results
        ],
        ignore_index=True,
    )


def per_scenario(results: Sequence[ScenarioResult]) -> pd.DataFrame:
    """Default budget vs the correlation baseline, scenario by scenario."""
    rows = []
    for r in results:
        s = r.scores
        probe = s[(s.method == "probe") & (s.budget == "default")]
        corr = s[s.method == "correlation"]
        names = list(r.truth.summary.index)
        signs = r.truth.summary["sign"]
        rows.append(
            {
                "scenario": r.scenario,
                "real": r.real,
                "candidates": len(names),
                "truly helpful": int((signs > 0).sum()),
                "truly harmful": int((signs < 0).sum()),
                "reference reliability": split_half_reliability(r.truth.runs, names),
                "probe spearman": probe.spearman.mean(),
                "probe spearman sd": probe.spearman.std(ddof=1),
                "probe kendall": probe.kendall.mean(),
                "probe top3": probe.top3.mean(),
                "corr spearman": corr.spearman.mean(),
                "corr kendall": corr.kendall.mean(),
                "corr top3": corr.top3.mean(),
                "probe s/job": r.timings.get("probe:default", math.nan),
                "reference s": r.truth.seconds,
                "compute ratio": r.timings.get("probe:default", math.nan) / r.truth.seconds,
            }
        )
    return pd.DataFrame(rows)


def tradeoff(results: Sequence[ScenarioResult], *, method: str = "probe") -> pd.DataFrame:
    """Agreement vs cost per budget: scenario means over jobs, then the mean over the
    real scenarios (and over all); cost relative to the default job, summed over the
    real scenarios; verdict rates pooled over every job of the real scenarios."""
    scores = scores_frame(results)
    scores = scores[scores.method == method]
    per = scores.groupby(["budget", "scenario", "real"], as_index=False)[
        ["spearman", "kendall", "top3", "seconds", "coverage", "naive_coverage"]
    ].mean()
    rows = []
    default_cost = per[(per.budget == "default") & per.real].seconds.sum()
    for budget, group in per.groupby("budget"):
        real = group[group.real]
        jobs = scores[(scores.budget == budget) & scores.real]
        row: dict[str, Any] = {
            "budget": budget,
            "jobs/scenario": int(scores[scores.budget == budget].groupby("scenario").size().min()),
            "spearman (real)": real.spearman.mean(),
            "kendall (real)": real.kendall.mean(),
            "top3 (real)": real.top3.mean(),
            "spearman (all)": group.spearman.mean(),
            "cost": real.seconds.sum() / default_cost if default_cost else math.nan,
            "coverage": real.coverage.mean(),
            "naive coverage": real.naive_coverage.mean(),
        }
        row |= {k: v for k, v in pooled_rates(jobs).items() if not k.startswith(("helpful_c",))}
        rows.append(row)
    return pd.DataFrame(rows).sort_values("cost").reset_index(drop=True)


def coverage(results: Sequence[ScenarioResult]) -> pd.DataFrame:
    """How often the 95% intervals of one job hold (a) the reference's gain and (b) the
    probe's own expected gain (mean over the replicates outside the job), by seeds."""
    predictions = predictions_frame(results)
    truth = truth_frame(results).set_index(["scenario", "candidate"])["gain"]
    p = predictions[predictions.method == "probe"].copy()
    p = p[p.budget.str.startswith("seeds=") | (p.budget == "default")]
    p["truth"] = truth.reindex(pd.MultiIndex.from_frame(p[["scenario", "candidate"]])).to_numpy()
    real = {r.scenario: r.real for r in results}
    p["real"] = p.scenario.map(real)
    p = p[p.ci_low.notna()]  # one-seed jobs have no interval
    rows = []
    for budget, group in p.groupby("budget"):
        for subset, part in (("real", group[group.real]), ("all", group)):
            row = {
                "budget": budget,
                "scenarios": subset,
                "intervals": len(part),
                "corrected: holds reference": covered(part.ci_low, part.ci_high, part.truth).mean(),
                "naive: holds reference": covered(
                    part.naive_low, part.naive_high, part.truth
                ).mean(),
                "corrected width": (part.ci_high - part.ci_low).median(),
                "naive width": (part.naive_high - part.naive_low).median(),
            }
            if "probe_mean_other" in part and part.probe_mean_other.notna().any():
                own = part.probe_mean_other
                row["corrected: holds probe mean"] = covered(part.ci_low, part.ci_high, own).mean()
                row["naive: holds probe mean"] = covered(
                    part.naive_low, part.naive_high, own
                ).mean()
            rows.append(row)
    return pd.DataFrame(rows)


def scale_check(results: Sequence[ScenarioResult]) -> pd.DataFrame:
    """Probe gains against reference gains: slope of a least-squares line through the
    origin (1 = same scale) and the correlation, per scenario (default budget)."""
    predictions = predictions_frame(results)
    truth = truth_frame(results).set_index(["scenario", "candidate"])["gain"]
    rows = []
    for r in results:
        p = predictions[
            (predictions.scenario == r.scenario)
            & (predictions.method == "probe")
            & (predictions.budget == "default")
        ]
        mean = p.groupby("candidate")["gain"].mean()
        t = truth.loc[r.scenario].reindex(mean.index)
        rows.append(
            {
                "scenario": r.scenario,
                "slope": float((mean * t).sum() / (t * t).sum()),
                "pearson": float(np.corrcoef(mean, t)[0, 1]),
                "mean abs probe gain": float(mean.abs().mean()),
                "mean abs reference gain": float(t.abs().mean()),
            }
        )
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame, digits: int = 2) -> str:
    """A GitHub table without extra dependencies."""

    def cell(value: Any) -> str:
        if isinstance(value, bool | np.bool_):
            return "yes" if value else "no"
        if isinstance(value, float | np.floating):
            if not math.isfinite(value):
                return "–"
            if abs(value) >= 100:
                return f"{value:.0f}"
            if abs(value) < 0.01 and value != 0:
                return f"{value:.2g}"
            return f"{value:.{digits}f}"
        return str(value)

    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([head, rule, *body])


def render(results: Sequence[ScenarioResult], config: StudyConfig, seconds: float) -> str:
    scenarios = per_scenario(results)
    real = scenarios[scenarios.real]
    parts = [
        f"# auxsel validity study (seed {config.seed}{', quick' if config.quick else ''})",
        "",
        f"Wall time {seconds / 60:.1f} min. Probe jobs: {config.seeds} seeds; default budget "
        f"scored on {config.default_repeats} independent jobs per scenario, other budgets on "
        f"{config.variant_repeats}.",
        "",
        "## Default budget vs the correlation baseline",
        "",
        markdown(scenarios),
        "",
        f"Mean over real scenarios: probe Spearman {real['probe spearman'].mean():.2f}, "
        f"Kendall {real['probe kendall'].mean():.2f}; correlation baseline Spearman "
        f"{real['corr spearman'].mean():.2f}, Kendall {real['corr kendall'].mean():.2f}.",
        "",
        "## Agreement vs cost, by budget",
        "",
        markdown(tradeoff(results)),
        "",
        "## Interval coverage (95% nominal)",
        "",
        markdown(coverage(results)),
        "",
        "## Gain scale: probe vs reference (default budget)",
        "",
        markdown(scale_check(results), digits=3),
        "",
    ]
    return "\n".join(parts)
