"""python -m benchmarks.validity --half tune|report [--quick] [--build-references]
[--reference-cache DIR] [--families a,b] [--recipe hidden=256,64+dropout=0.1]
[--reference-sharing hard,soft_l2,soft_trace --reference-coupling 0.1] ...

With --half: validity benchmark v2 (benchmarks/validity/v2.py): the families of that
half (benchmarks/validity/halves.json), references grown to 40 replicates and labelled
by their reliability (0.6: reliable), the engine's default and the baselines scored;
writes report.md, scores.csv, families.csv, predictions.csv, references.csv and
config.json under --out (default artifacts/validity/v2-<half>); with several reference
sharings also references_<sharing>.csv and sharing.csv (the soft-sharing table).

Without --half: the v1 study (python -m benchmarks.validity --seed 0 [--quick] ...).

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
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.reports import comma_list
from benchmarks.validity.report import predictions_frame, render, scores_frame, truth_frame
from benchmarks.validity.scenarios import SCENARIOS
from benchmarks.validity.study import VARIANTS, StudyConfig, config_dict, run_study


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a == "--half" or a.startswith("--half=") for a in argv):
        return main_v2(argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.validity", description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few-minute version")
    parser.add_argument("--scenarios", type=comma_list, default=tuple(SCENARIOS))
    parser.add_argument(
        "--methods",
        type=comma_list,
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


def main_v2(argv: list[str]) -> int:
    import pandas as pd

    from benchmarks.validity import v2
    from benchmarks.validity.references import ReferencePlan
    from benchmarks.validity.sharing import sharing_table

    parser = argparse.ArgumentParser(prog="python -m benchmarks.validity", description=__doc__)
    parser.add_argument("--half", choices=("tune", "report"), required=True)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few minutes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--families", type=comma_list, default=None, help="only these families")
    parser.add_argument("--sanity", action="store_true", help="also the synthetic family")
    parser.add_argument("--methods", type=comma_list, default=None)
    parser.add_argument("--previous", default="probe@quick", help="the previous default method")
    parser.add_argument("--jobs", type=int, default=None, help="advise() jobs per family")
    parser.add_argument("--recipe", default="", help="reference recipe knobs, '+'-joined")
    parser.add_argument(
        "--reference-sharing",
        type=comma_list,
        default=None,
        help="the references' parameter sharing: hard, soft_l2, soft_trace, or several "
        "(hard,soft_trace: every method is scored against each; the first is the one the "
        "half's tables use)",
    )
    parser.add_argument(
        "--reference-coupling",
        type=float,
        default=None,
        help="the soft reference's coupling (default 0.1, the engine's default)",
    )
    parser.add_argument("--max-replicates", type=int, default=None)
    parser.add_argument(
        "--reference-min-replicates",
        type=int,
        default=None,
        help="grow every reference to at least this many replicates, past the reliability "
        "target (default: the cap, 40, for per-candidate intervals; 0: stop at the target)",
    )
    parser.add_argument("--reference-cache", type=Path, default=v2.DEFAULT_CACHE)
    parser.add_argument(
        "--build-references", action="store_true", help="recompute cached references"
    )
    parser.add_argument(
        "--references-only", action="store_true", help="build references, score nothing"
    )
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="score only families with a cached reference, using the batches cached",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    options = {
        "cached_only": args.cached_only,
        "half": args.half,
        "quick": args.quick,
        "seed": args.seed,
        "families": args.families,
        "sanity": args.sanity,
        "methods": args.methods,
        "previous": args.previous,
        "jobs": args.jobs,
        "reference_cache": args.reference_cache,
        "build_references": args.build_references,
        "references_only": args.references_only,
    }
    recipe = v2.BenchConfig.make(quick=args.quick).recipe
    if args.recipe:
        recipe = v2.parse_recipe(args.recipe, recipe)
    if args.reference_coupling is not None:
        recipe = replace(recipe, coupling=args.reference_coupling)
    if args.reference_sharing:
        options["reference_sharings"] = args.reference_sharing
        recipe = replace(recipe, sharing=args.reference_sharing[0])
    try:
        options["recipe"] = replace(recipe)  # checks the sharing and the coupling
        for sharing in args.reference_sharing or ():
            replace(recipe, sharing=sharing)  # and every other reference's sharing
    except ValueError as error:
        parser.error(str(error))
    plan_changes = {
        name: value
        for name, value in (
            ("max_replicates", args.max_replicates),
            ("min_replicates", args.reference_min_replicates),
        )
        if value is not None
    }
    if plan_changes:
        base_plan = v2.BenchConfig.make(quick=args.quick).plan
        options["plan"] = ReferencePlan(**(vars(base_plan) | plan_changes))
    config = v2.BenchConfig.make(**options)
    out = args.out or Path("artifacts/validity") / f"v2-{args.half}{'-quick' if args.quick else ''}"
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    failed: list[str] = []
    results = v2.run_half(config, failed=failed)
    seconds = time.perf_counter() - started
    report = v2.render(results, config, seconds)
    (out / "report.md").write_text(report)
    v2.family_table(results).to_csv(out / "families.csv", index=False)
    v2.per_family(results).to_csv(out / "per_family.csv", index=False)
    frames = [f for r in results for f in (r.scores, r.other_scores) if not f.empty]
    if frames:
        pd.concat(frames).to_csv(out / "scores.csv", index=False)
        pd.concat([r.predictions for r in results]).to_csv(out / "predictions.csv", index=False)
    pd.concat(
        [
            r.reference.summary.assign(family=r.family).rename_axis("candidate").reset_index()
            for r in results
        ]
    ).to_csv(out / "references.csv", index=False)
    for sharing in config.sharings[1:]:  # references.csv: the first sharing's
        pd.concat(
            [
                r.other_references[sharing]
                .summary.assign(family=r.family)
                .rename_axis("candidate")
                .reset_index()
                for r in results
            ]
        ).to_csv(out / f"references_{sharing}.csv", index=False)
    sharing_table(results).to_csv(out / "sharing.csv", index=False)
    body = v2.config_dict(config) | {"seconds": seconds, "torch": torch.__version__}
    (out / "config.json").write_text(json.dumps(body, indent=2, default=str))
    print(report)
    print(f"results in {out}", file=sys.stderr)
    if failed:  # CI's smoke run must not pass with a broken family
        print(f"FAILED families: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
