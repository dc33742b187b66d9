"""Where along the data axis a candidate helps, on the synthetic family whose answer is
known: each candidate's gain at each share of the main task's training labels, with its
interval and verdict, and the paired fade (gain at the smallest share minus the largest).

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.fraction_curves [--rows 800]
        [--recipe quick] [--shares 0.1,0.25,0.5,1] [--seeds 0,1,2]

The family (``engine.make_task_family``) has six candidates related to the main task by
0.95 down to 0 and two noise columns; the most related one should help most where main
labels are few and least at the full share (implicit data augmentation and
regularisation, Ruder 2017 §4). One seeded job per ``--seeds`` entry; the last lines
count the seeds on which the most related candidate's curve fell (gain at the smallest
share above its gain at the full share). Not part of the test suite.
"""

from __future__ import annotations

import argparse

import pandas as pd

from benchmarks.reports import comma_list
from engine import advise, make_task_family


def curves(rows: int, recipe: str, shares: list[float], seed: int) -> pd.DataFrame:
    """One seeded job's gain per candidate (rows) and share (columns), with the fade."""
    family = make_task_family(n_rows=rows, seed=seed)
    advice = advise(
        family.frame,
        family.main,
        list(family.candidates),
        recipe=recipe,
        seed=seed,
        main_train_fractions=shares,
    )
    frame = advice.to_frame()
    cell = frame.gain.map("{:+.3f}".format) + " [" + frame.ci_low.map("{:+.3f}".format)
    marks = {"helpful": "helpful", "harmful": "harmful"}
    cell += ", " + frame.ci_high.map("{:+.3f}".format) + "] "
    cell += frame.verdict.map(lambda v: marks.get(v, "."))
    table = frame.assign(cell=cell).pivot(
        index="candidate", columns="main_train_fraction", values="cell"
    )
    fade = frame.groupby("candidate").fade.first()
    gains = frame.pivot(index="candidate", columns="main_train_fraction", values="gain")
    return table.assign(fade=fade.map("{:+.3f}".format), falls=gains[min(shares)] > gains[1.0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=800)
    parser.add_argument("--recipe", default="quick")
    parser.add_argument("--shares", default="0.1,0.25,0.5,1")
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args(argv)
    shares = sorted(float(s) for s in comma_list(args.shares))
    if shares[-1] != 1.0:
        parser.error("--shares: include 1 (the fade is measured against the full share)")
    fell = []
    for seed in (int(s) for s in comma_list(args.seeds)):
        table = curves(args.rows, args.recipe, shares, seed)
        text = table.to_string()
        print(f"seed {seed}: gain [interval] verdict ('.': inconclusive) at each share\n{text}\n")
        best = next(name for name in table.index if name.startswith("rel_0_"))
        fell.append(bool(table.loc[best, "falls"]))
    print(f"most related candidate's curve fell on {sum(fell)} of {len(fell)} seeds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
