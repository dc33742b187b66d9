"""Would a blend of the probe's gain and the zero-cost label evidence rank better?

python -m benchmarks.validity.blend OUT_DIR [OUT_DIR ...] [--method probe]
    [--weights 0,0.1,0.2,0.3,0.5] [--evidence label_correlation]

Advice v2 (issue 13) allows the ranking score to combine the probe's gain with
zero-cost evidence only if the combination beats the probe alone on the tune half *and*
holds on the report half. This rescores saved runs offline: per job, the blend
(1 − w) · rank(gain) + w · rank(|evidence|) (ranks within the job, so the two scales
need no calibration; a candidate without evidence ranks lowest on it), scored by
Spearman with the reference gains on the families with a reliable reference, the way
the benchmark scores a method (``agreement``). w = 0 is the probe alone, w = 1 the
evidence alone. Choose w on the tune half's runs; pass the report half's only to report.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmarks.reports import comma_list
from benchmarks.validity.agreement import agreement
from benchmarks.validity.rules import read_table


def blended(job: pd.DataFrame, weight: float, evidence: str) -> pd.Series:
    """One job's blend score per candidate (higher = more helpful)."""
    gain = job.gain.astype(float).rank()
    strength = job[evidence].astype(float).abs().fillna(0.0).rank()
    return pd.Series(((1 - weight) * gain + weight * strength).to_numpy(), index=job.candidate)


def compare(
    out_dirs: Sequence[Path], method: str, weights: Sequence[float], evidence: str
) -> pd.DataFrame:
    """Spearman with the reference per reliable family (mean over its jobs) and weight,
    with the mean over families as the last row."""
    predictions = pd.concat([pd.read_csv(d / "predictions.csv") for d in out_dirs])
    references = pd.concat([pd.read_csv(d / "references.csv") for d in out_dirs])
    classes = pd.concat([read_table(d / "families.csv") for d in out_dirs])
    reliable = set(classes.family[classes["class"] == "reliable"])
    chosen = predictions[(predictions.method == method) & predictions.family.isin(reliable)]
    table: dict[float, dict[str, float]] = {}
    for weight in weights:
        per_family: dict[str, float] = {}
        for family, rows in chosen.groupby("family"):
            truth = references[references.family == family].set_index("candidate")
            rhos = [
                agreement(blended(job, weight, evidence), truth)["spearman"]
                for _, job in rows.groupby("job")
            ]
            per_family[str(family)] = float(pd.Series(rhos).mean())
        per_family["mean"] = float(pd.Series(per_family).mean())
        table[weight] = per_family
    return pd.DataFrame(table).rename_axis(columns="weight")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("out_dirs", type=Path, nargs="+")
    parser.add_argument("--method", default="probe")
    parser.add_argument("--weights", default="0,0.1,0.2,0.3,0.5,1")
    parser.add_argument(
        "--evidence", default="label_correlation", help="label_correlation or mutual_info"
    )
    args = parser.parse_args(argv)
    weights = [float(w) for w in comma_list(args.weights)]
    if not all(0 <= w <= 1 for w in weights):
        parser.error("--weights: numbers in [0, 1], comma-separated")
    table = compare(args.out_dirs, args.method, weights, args.evidence)
    print(table.to_string(float_format=lambda v: "–" if math.isnan(v) else f"{v:.3f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
