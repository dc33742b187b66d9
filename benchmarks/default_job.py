"""The default job's wall time on the issue's shape: a 2,500-row, 100-feature synthetic
table with 14 candidates (12 of graded relatedness, 2 noise).

python -m benchmarks.default_job [--recipe full|quick] [--threads 2] [--max-replicates N]

Prints wall and CPU seconds, the probes trained, the racing rounds and the ranking.
Wall times depend on the machine and what runs beside it; compare runs made side by side.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

import engine

RELATEDNESS = (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--recipe", choices=engine.RECIPE_NAMES, default=engine.DEFAULT_RECIPE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-replicates", type=int, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    family = engine.make_task_family(n_rows=2500, n_features=100, relatedness=RELATEDNESS, seed=0)
    budget: dict[str, Any] = {}
    if args.max_replicates is not None:
        budget["max_replicates"] = args.max_replicates
    wall, cpu = time.perf_counter(), time.process_time()
    advice = engine.advise(
        family.frame, family.main, list(family.candidates), recipe=args.recipe, seed=0, **budget
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{advice.recipe_text}")
    print(
        f"wall {wall:.1f} s, CPU {cpu:.1f} s, {len(advice.runs)} probes, "
        f"{advice.rounds} round(s), {advice.chunks} chunk(s)"
    )
    columns = ["candidate", "gain", "ci_low", "ci_high", "q_value", "verdict", "seeds"]
    print(advice.to_frame()[columns].to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
