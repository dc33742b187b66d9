"""A job at several shares of the main labels, two ways in one run: the shares trained
together (``engine.fractions.race_shares``, what ``advise`` does) against one whole run
per share after another (``engine.fractions.share_by_share``, the reference), taking
turns so that a busy machine slows both alike. Prints each run's wall and CPU time and
the ratio of the fastest of each. Not part of the test suite.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.fractions_speed --epochs 20 --reps 3
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import engine.fractions as fractions
from engine import Advice, advise, make_task_family


def per_share(problem: Any, plan: Any, *, seed: int, **options: Any) -> Advice:
    """``advise_fractions`` as one run per share (the reference path)."""
    shares = [(s, fractions.splits_at(problem, plan, s, seed)) for s in plan.main_train_fractions]
    return fractions.share_by_share(problem, plan, shares, seed=seed, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--recipe", default="full")
    parser.add_argument("--shares", default="0.1,0.25,0.5,1.0")
    args = parser.parse_args()
    family = make_task_family(n_rows=args.rows, seed=0)  # 6 related + 2 noise candidates
    shares = [float(s) for s in args.shares.split(",")]
    together = fractions.advise_fractions
    times: dict[str, list[tuple[float, float]]] = {"together": [], "per share": []}
    for i in range(args.reps):
        for mode in ("per share", "together")[:: 1 if i % 2 == 0 else -1]:
            fractions.advise_fractions = per_share if mode == "per share" else together
            wall, cpu = time.perf_counter(), time.process_time()
            advice = advise(
                family.frame,
                family.main,
                list(family.candidates),
                seed=0,
                main_train_fractions=shares,
                epochs=args.epochs,
                recipe=args.recipe,
            )
            times[mode].append((time.perf_counter() - wall, time.process_time() - cpu))
            runs = [len(f.runs) for f in advice.fractions]
            print(
                f"{mode}: wall {times[mode][-1][0]:.1f} s, cpu {times[mode][-1][1]:.1f} s, "
                f"{advice.chunks} chunks, runs per share {runs}",
                flush=True,
            )
    fractions.advise_fractions = together
    for k, name in enumerate(("wall", "cpu")):
        old = min(t[k] for t in times["per share"])
        new = min(t[k] for t in times["together"])
        print(
            f"{name}: per share {old:.1f} s, together {new:.1f} s (fastest runs), "
            f"ratio {new / old:.2f}"
        )


if __name__ == "__main__":
    main()
