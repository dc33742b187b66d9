"""Compare verdict rules offline, on the per-replicate gains a benchmark run saved.

python -m benchmarks.validity.rules OUT_DIR [OUT_DIR ...] [--method probe]

Every ``predictions.csv`` row of a v2 run keeps a job's per-replicate gains
(``per_seed``), the hold-out ratio of its corrected interval and the confidence it used;
``references.csv`` and ``families.csv`` keep the reference gains, their signs and each
family's class. This recomputes every job's intervals and verdicts under other rules —
with the engine's own scoring functions — and scores them against the references the
way the benchmark does (``agreement``): helpful precision and recall on reliable
families, claims on null families, and how often the interval covers the reference gain.

Offline, each candidate keeps the replicates it got under the rule the job ran (racing
decided them), so a rule that would have stopped a candidate earlier or later is
approximated. Choose rules on the tune half; run the report half only to report.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.validity.agreement import agreement, ratio
from engine.budget import FdrMethod
from engine.racing import ALPHA
from engine.scoring import (
    Q_LEVEL,
    IntervalMethod,
    gated_verdict,
    paired_gain,
    q_values,
    verdict,
)


@dataclass(frozen=True)
class Rule:
    """A verdict rule: the interval, whether the error rate is spread over the job's
    looks, and whether a verdict also needs its BH q-value at the (spread) level."""

    name: str
    interval: IntervalMethod
    spread_over_looks: bool = True
    q_gate: bool = True
    fdr: FdrMethod = "bh"  # the q-values' method (engine.scoring.q_values)


RULES = (
    Rule("corrected, spread over looks, q-gated (default before 2026-12-02)", "corrected"),
    Rule("naive, spread over looks, q-gated (engine default until 2026-12-03)", "naive"),
    Rule("naive, 95% at every look, q-gated", "naive", spread_over_looks=False),
    Rule("naive, spread over looks, interval only", "naive", q_gate=False),
    Rule("naive, 95% at every look, interval only", "naive", False, False),
    Rule("corrected, 95% at every look, interval only", "corrected", False, False),
    Rule("naive, spread over looks, Storey-q-gated (engine default)", "naive", fdr="storey"),
)


def read_table(path: Path) -> pd.DataFrame:
    """A CSV the benchmark wrote. Only empty cells are missing: pandas would otherwise
    read the family class "null" as a missing value."""
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def rescore(job: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """One job's candidates (rows of predictions.csv) under ``rule``: gain, interval, verdict."""
    # Each candidate's share of the error rate: its racing look's (1 − its confidence,
    # of 0.05; the same for every candidate under Bonferroni over looks), or all of it.
    spread = (1 - job.confidence.astype(float)) / ALPHA
    levels = spread if rule.spread_over_looks else pd.Series(1.0, index=spread.index)
    stats = []
    for text, ratio_, level in zip(job.per_seed, job.test_train_ratio, levels, strict=True):
        gains = [float(g) for g in str(text).split()] if isinstance(text, str) else []
        # paired_gain takes the two arms; the saved gains are already signed so that
        # positive is helpful, so pair them with zeros on a higher-is-better metric.
        stats.append(
            paired_gain(
                [0.0] * len(gains),
                gains,
                "r2",
                test_train_ratio=float(ratio_),
                interval=rule.interval,
                confidence=1 - 0.05 * level,
            )
        )
    qs = q_values([s.p_value for s in stats], rule.fdr)
    verdicts = [
        gated_verdict(verdict(s.ci_low, s.ci_high), q, Q_LEVEL * level)
        if rule.q_gate
        else verdict(s.ci_low, s.ci_high)
        for s, q, level in zip(stats, qs, levels, strict=True)
    ]
    return pd.DataFrame(
        {
            "gain": [s.gain for s in stats],
            "ci_low": [s.ci_low for s in stats],
            "ci_high": [s.ci_high for s in stats],
            "verdict": verdicts,
        },
        index=job.candidate.to_numpy(),
    )


def compare(out_dirs: Sequence[Path], method: str, rules: Sequence[Rule] = RULES) -> pd.DataFrame:
    """One row per rule: pooled verdict scores and coverage over every run in ``out_dirs``."""
    predictions = pd.concat([pd.read_csv(d / "predictions.csv") for d in out_dirs])
    references = pd.concat([pd.read_csv(d / "references.csv") for d in out_dirs])
    classes = pd.concat([read_table(d / "families.csv") for d in out_dirs])
    label = dict(zip(classes.family, classes["class"], strict=True))
    predictions = predictions[predictions.method == method]
    rows = []
    for rule in rules:
        totals = dict.fromkeys(
            ("helpful_called", "helpful_right", "truly_helpful", "wrong_direction"), 0
        )
        null_claims = covered = intervals = jobs = null_candidates = 0
        for (family, _job), job in predictions.groupby(["family", "job"]):
            truth = references[references.family == family].set_index("candidate")
            scored = rescore(job, rule)
            jobs += 1
            if label[family] == "null":
                null_claims += int((scored.verdict != "inconclusive").sum())
                null_candidates += len(scored)
                continue
            if label[family] != "reliable":
                continue
            row = agreement(scored.gain, truth, scored.verdict)
            for key in totals:
                totals[key] += row[key]
            ref = truth.loc[scored.index, "gain"]
            finite = np.isfinite(scored.ci_low) & np.isfinite(scored.ci_high)
            covered += int(((scored.ci_low <= ref) & (ref <= scored.ci_high) & finite).sum())
            intervals += int(finite.sum())
        rows.append(
            {
                "rule": rule.name,
                "jobs": jobs,
                "helpful calls": totals["helpful_called"],
                "helpful precision": ratio(totals["helpful_right"], totals["helpful_called"]),
                "helpful recall": ratio(totals["helpful_right"], totals["truly_helpful"]),
                "wrong sign": totals["wrong_direction"],
                "null-family claims / candidates": ratio(null_claims, null_candidates),
                "covers the reference gain": ratio(covered, intervals),
            }
        )
    return pd.DataFrame(rows).set_index("rule")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("out_dirs", type=Path, nargs="+")
    parser.add_argument("--method", default="probe")
    args = parser.parse_args(argv)
    table = compare(args.out_dirs, args.method)
    print(table.to_string(float_format=lambda v: "–" if math.isnan(v) else f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
