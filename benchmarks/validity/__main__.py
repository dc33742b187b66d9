"""python -m benchmarks.validity --seed 0 [--quick] [--scenarios tox21,student] ...

Runs the validity study and writes, under --out (default artifacts/validity/seed<N>):
report.md (the tables of docs/validity.md), scores.csv (agreement per job),
predictions.csv (every candidate of every job), truth.csv and truth_runs.csv (the
reference), config.json. One BLAS thread is used whatever OMP_NUM_THREADS says.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from benchmarks.validity.report import predictions_frame, render, scores_frame, truth_frame
from benchmarks.validity.scenarios import SCENARIOS
from benchmarks.validity.study import VARIANTS, StudyConfig, config_dict, run_study


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.validity", description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few-minute version")
    parser.add_argument("--scenarios", type=_names, default=tuple(SCENARIOS))
    parser.add_argument(
        "--methods",
        type=_names,
        default=("probe", "correlation"),
        help="probe, correlation, or an engine.advise method (e.g. screen); "
        "methods this engine lacks are skipped",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        help=f"budget variants: {', '.join(VARIANTS)}, or knobs such as hidden=64,64+lr=1e-2",
    )
    parser.add_argument("--repeats", type=int, default=None, help="jobs per non-default budget")
    parser.add_argument(
        "--curves", nargs="+", default=None, help="budgets whose seeds curve is measured"
    )
    parser.add_argument("--truth-seeds", type=int, default=None)
    parser.add_argument(
        "--reference-cache",
        type=Path,
        default=None,
        help="store references here and reuse them when scenario, seed and recipe match",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
    options = {
        "seed": args.seed,
        "quick": args.quick,
        "scenarios": args.scenarios,
        "methods": args.methods,
        "truth_seeds": args.truth_seeds,
        "reference_cache": args.reference_cache,
    }
    if args.variants is not None:
        options["variants"] = tuple(args.variants)
    if args.curves is not None:
        options["curves"] = tuple(args.curves)
    if args.repeats is not None:
        options["variant_repeats"] = args.repeats
    config = StudyConfig.make(**options)
    out = (
        args.out or Path("artifacts/validity") / f"seed{args.seed}{'-quick' if args.quick else ''}"
    )
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    results = run_study(config)
    seconds = time.perf_counter() - started
    report = render(results, config, seconds)
    (out / "report.md").write_text(report)
    scores_frame(results).to_csv(out / "scores.csv", index=False)
    predictions_frame(results).to_csv(out / "predictions.csv", index=False)
    truth_frame(results).to_csv(out / "truth.csv", index=False)
    runs = [r.truth.runs.assign(scenario=r.scenario) for r in results]
    import pandas as pd

    pd.concat(runs).to_csv(out / "truth_runs.csv", index=False)
    body = config_dict(config) | {"seconds": seconds, "torch": torch.__version__}
    (out / "config.json").write_text(json.dumps(body, indent=2, default=str))
    print(report)
    print(f"results in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
