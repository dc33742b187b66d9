"""python -m benchmarks.validity.coupling --families enb,medical --couplings 0.01,0.1,1,10
[--replicates 3] [--sharing soft_l2] [--seed 0] [--recipe KNOBS] [--out DIR]

Which soft-sharing coupling would a user pick? Per tune-half family and coupling, the
full-training reference recipe of ``truth.py`` (soft sharing, ``--sharing``) trains the
main task with each candidate and alone; the main task's test loss *relative to the
main-alone model* (loss / loss alone − 1, mean over candidates, then over replicates,
with a t-interval over replicates) says how much soft sharing at that coupling helps
the main task. The main-alone model does not depend on the coupling (its candidate trunk
has no task and no penalty), and every coupling trains the same replicates (splits,
initialisation, batch order from (seed, replicate)), so couplings are compared paired:
``vs best`` is the paired difference from the best coupling over every (family,
replicate), with its t-interval. Also per coupling: the Spearman of the soft
reference's candidate gains with the hard reference's (same replicates). Hard sharing
itself is the row of coupling ``inf`` (soft_l2's limit; never the chosen coupling).

Only tune-half families (``halves.json``) are accepted: the choice tunes a default.
Writes runs.csv (every model's test loss), summary.csv and report.md under ``--out``
(default artifacts/validity/coupling). One BLAS thread.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from benchmarks.reports import comma_list
from benchmarks.validity import halves
from benchmarks.validity.report import markdown
from benchmarks.validity.scenarios import Scenario
from benchmarks.validity.sharing import spearman
from benchmarks.validity.truth import TruthConfig, full_training

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def coupling_runs(
    scenario: Scenario,
    couplings: Sequence[float],
    *,
    recipe: TruthConfig,
    seed: int = 0,
    log: Log = _stderr,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, references) of one family. runs: one row per (coupling, replicate,
    candidate) with the main task's test loss paired and alone; references: per
    coupling the candidates' gains and the CPU seconds. Hard sharing (the hard
    reference, trained on the same replicates) is the rows of coupling ``inf``."""
    frames, refs = [], []
    for coupling in [math.inf, *couplings]:
        hard = coupling == math.inf
        config = replace(recipe, sharing="hard") if hard else replace(recipe, coupling=coupling)
        result = full_training(scenario, seed=seed, config=config)
        what = "hard sharing" if hard else f"{recipe.sharing} coupling {coupling:g}"
        log(f"[{scenario.name}] {what}: {result.seconds:.0f} CPU s")
        table = result.runs.pivot(index="replicate", columns="config", values="loss")
        paired = table[scenario.candidate_names].melt(ignore_index=False, value_name="loss")
        paired = paired.rename(columns={"config": "candidate"}).reset_index()
        paired["alone"] = table[""].reindex(paired.replicate).to_numpy()
        frames.append(paired.assign(family=scenario.name, coupling=coupling))
        refs.append(result.summary.assign(coupling=coupling, seconds=result.seconds))
    references = pd.concat(refs).rename_axis("candidate").reset_index()
    return pd.concat(frames, ignore_index=True), references.assign(family=scenario.name)


def _t_interval(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high) of the 95% t-interval; NaN bounds with fewer than 2 values."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def summarise(runs: pd.DataFrame, references: pd.DataFrame) -> pd.DataFrame:
    """One row per (family, coupling), then one per coupling over all families
    (family "all"); relative losses in percent, negative = sharing helps. ``vs best``:
    the paired difference from the soft coupling best over all families. Hard sharing
    is the row of coupling ``inf``."""
    runs = runs.assign(relative=100 * (runs.loss / runs.alone - 1))
    # Per (family, coupling, replicate): the mean over candidates.
    per_rep = runs.groupby(["family", "coupling", "replicate"]).relative.mean().reset_index()
    soft = per_rep[np.isfinite(per_rep.coupling)]  # the best soft coupling, not hard sharing
    best = soft.groupby("coupling").relative.mean().idxmin()
    by_key = per_rep.set_index(["family", "replicate", "coupling"]).relative.unstack("coupling")
    rows = []
    for family, coupling in [
        *per_rep[["family", "coupling"]].drop_duplicates().itertuples(index=False),
        *[("all", c) for c in sorted(set(per_rep.coupling))],
    ]:
        keep = by_key if family == "all" else by_key.loc[[family]]
        mean, low, high = _t_interval(keep[coupling].to_numpy())
        diff, diff_low, diff_high = _t_interval((keep[coupling] - keep[best]).to_numpy())
        refs = references if family == "all" else references[references.family == family]
        rhos = [
            spearman(
                paired.set_index("candidate").gain,
                refs[(refs.family == f) & (refs.coupling == math.inf)].set_index("candidate").gain,
            )
            for f, paired in refs[refs.coupling == coupling].groupby("family")
            if coupling != math.inf
        ]
        finite = [r for r in rhos if math.isfinite(r)]  # NaN: a reference without spread
        seconds = refs[refs.coupling == coupling].drop_duplicates("family").seconds.sum()
        rows.append(
            {
                "family": family,
                "sharing": "hard" if coupling == math.inf else "soft",
                "coupling": coupling,
                "relative test loss %": mean,
                "ci low": low,
                "ci high": high,
                "vs best %": diff,
                "vs best ci low": diff_low,
                "vs best ci high": diff_high,
                "spearman soft vs hard reference": float(np.mean(finite)) if finite else math.nan,
                "replicates": len(keep),
                "CPU s": float(seconds),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.validity.families import FAMILIES
    from benchmarks.validity.v2 import parse_recipe

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.validity.coupling", description=__doc__
    )
    parser.add_argument("--families", type=comma_list, required=True, help="tune-half families")
    parser.add_argument("--couplings", type=comma_list, default=("0.01", "0.1", "1", "10"))
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--sharing", choices=("soft_l2", "soft_trace"), default="soft_l2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipe", default="", help="reference recipe knobs, '+'-joined")
    parser.add_argument("--out", type=Path, default=Path("artifacts/validity/coupling"))
    args = parser.parse_args(argv)

    tune = halves.families_of("tune")
    wrong = [f for f in args.families if f not in tune]
    if wrong:
        parser.error(f"family {wrong[0]!r} is not in the tune half; tune: {', '.join(tune)}")
    try:
        couplings = [float(c) for c in args.couplings]
        recipe = parse_recipe(args.recipe, TruthConfig(seeds=args.replicates))
        recipe = replace(recipe, sharing=args.sharing)
    except ValueError as error:
        parser.error(str(error))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    runs, references = [], []
    for name in args.families:
        scenario = FAMILIES[name].load(seed=args.seed, quick=False)
        r, ref = coupling_runs(scenario, couplings, recipe=recipe, seed=args.seed)
        runs.append(r)
        references.append(ref)
        args.out.mkdir(parents=True, exist_ok=True)  # written after every family
        pd.concat(runs).to_csv(args.out / "runs.csv", index=False)
        pd.concat(references).to_csv(args.out / "references.csv", index=False)
    summary = summarise(pd.concat(runs), pd.concat(references))
    summary.to_csv(args.out / "summary.csv", index=False)
    report = (
        f"Coupling study: {args.sharing}, seed {args.seed}, {args.replicates} replicates, "
        f"recipe {args.recipe or 'default'}\n\n{markdown(summary)}\n"
    )
    (args.out / "report.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
