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
                "probe CPU s/job": r.timings.get("probe:default", math.nan),
                "reference CPU s": r.truth.seconds,
                "compute ratio": r.timings.get("probe:default", math.nan) / r.truth.seconds,
            }
            | _engine_methods(s)
        )
    return pd.DataFrame(rows)


def _engine_methods(scores: pd.DataFrame) -> dict[str, float]:
    """Agreement and CPU cost of the engine's other methods (e.g. screen+probe), scored
    by their ranking, default budget."""
    columns: dict[str, float] = {}
    for method, jobs in scores[~scores.method.isin(["probe", "correlation"])].groupby("method"):
        columns[f"{method} spearman"] = jobs.spearman.mean()
        columns[f"{method} top3"] = jobs.top3.mean()
        columns[f"{method} CPU s/job"] = jobs.seconds.mean()
    return columns


def tradeoff(results: Sequence[ScenarioResult], *, method: str = "probe") -> pd.DataFrame:
    """Agreement vs cost per budget: scenario means over jobs, then the mean over the
    real scenarios (and over all); cost = CPU seconds of one job summed over the real
    scenarios, and relative to the default's; verdict rates pooled over every job of
    the real scenarios; coverage of the reference gain by the reported interval."""
    scores = scores_frame(results)
    scores = scores[scores.method == method]
    metrics = ["spearman", "kendall", "top3", "seconds", "coverage"]
    per = scores.groupby(["budget", "scenario", "real"], as_index=False)[metrics].mean()
    rows = []
    default_cost = per[(per.budget == "default") & per.real].seconds.sum()
    for budget, group in per.groupby("budget"):
        real = group[group.real]
        jobs = scores[(scores.budget == budget) & scores.real]
        rates = pooled_rates(jobs)
        rows.append(
            {
                "budget": budget,
                "jobs": int(scores[scores.budget == budget].groupby("scenario").size().min()),
                "Spearman (real)": real.spearman.mean(),
                "Kendall (real)": real.kendall.mean(),
                "top-3 (real)": real.top3.mean(),
                "Spearman (all)": group.spearman.mean(),
                "CPU s (real)": real.seconds.sum(),
                "cost": real.seconds.sum() / default_cost if default_cost else math.nan,
                "helpful precision": rates["helpful_precision"],
                "helpful recall": rates["helpful_recall"],
                "harmful flagged": rates["harmful_flagged"],
                "wrong direction": rates["wrong_direction"],
                "coverage": real.coverage.mean(),
            }
        )
    return pd.DataFrame(rows).sort_values("cost").reset_index(drop=True)


INTERVAL_NAMES = {"": "corrected", "pool_": "corrected 0.1", "naive_": "naive"}


def coverage(
    results: Sequence[ScenarioResult], curves: Sequence[str] = ("default",)
) -> pd.DataFrame:
    """How often the 95% intervals of one job hold (a) the reference's gain and (b) the
    probe's own expected gain (mean over the replicates outside the job), by budget and
    seeds, for auxsel's corrected interval, auxsel 0.1's and the naive one."""
    predictions = predictions_frame(results)
    truth = truth_frame(results).set_index(["scenario", "candidate"])["gain"]
    p = predictions[predictions.method == "probe"].copy()
    p = p[p.budget.str.contains("seeds=", regex=False) | p.budget.isin(curves)]
    p["truth"] = truth.reindex(pd.MultiIndex.from_frame(p[["scenario", "candidate"]])).to_numpy()
    real = {r.scenario: r.real for r in results}
    p["real"] = p.scenario.map(real)
    p = p[p.ci_low.notna()]  # one-seed jobs have no interval
    rows = []
    for budget, group in p.groupby("budget", sort=False):
        part = group[group.real]
        row: dict[str, Any] = {"budget": budget, "intervals (real)": len(part)}
        for prefix, name in INTERVAL_NAMES.items():
            low, high = part[f"{prefix}ci_low"], part[f"{prefix}ci_high"]
            row[f"{name}: holds reference"] = covered(low, high, part.truth).mean()
        for prefix, name in INTERVAL_NAMES.items():
            if "probe_mean_other" in part and part.probe_mean_other.notna().any():
                low, high = part[f"{prefix}ci_low"], part[f"{prefix}ci_high"]
                row[f"{name}: holds probe mean"] = covered(low, high, part.probe_mean_other).mean()
        row["corrected: width"] = (part.ci_high - part.ci_low).median()
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
        f"Wall time {seconds / 60:.1f} min. Each budget is scored on independent jobs "
        f"({config.default_repeats} per scenario for {', '.join(config.curves)}, with its "
        f"seeds curve; {config.variant_repeats} for the others). Costs are CPU seconds "
        "(one thread) of one standalone job.",
        "",
        "## Default budget vs the correlation baseline",
        "",
        markdown(scenarios),
        "",
        f"Mean over real scenarios: probe Spearman {real['probe spearman'].mean():.2f}, "
        f"Kendall {real['probe kendall'].mean():.2f}; correlation baseline Spearman "
        f"{real['corr spearman'].mean():.2f}, Kendall {real['corr kendall'].mean():.2f}"
        + "".join(
            f"; {c.removesuffix(' spearman')} Spearman {real[c].mean():.2f}"
            for c in real.columns
            if c.endswith(" spearman") and c not in ("probe spearman", "corr spearman")
        )
        + ".",
        "",
    ]
    if "probe" in config.methods:  # the budget tables are about the probes
        parts += [
            "## Agreement vs cost, by budget",
            "",
            markdown(tradeoff(results)),
            "",
            "## Interval coverage (95% nominal)",
            "",
            markdown(coverage(results, config.curves)),
            "",
            "## Gain scale: probe vs reference (default budget)",
            "",
            markdown(scale_check(results), digits=3),
            "",
        ]
    return "\n".join(parts)
