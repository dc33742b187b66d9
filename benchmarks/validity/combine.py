"""Means and paired bootstrap intervals over several runs of the same half.

python -m benchmarks.validity.combine OUT_DIR [OUT_DIR ...] [--previous probe@quick]

Families are often run in separate processes (one per core, ``--families``); each run's
``per_family.csv`` holds its families' scores, and this scores them together exactly as
one run over all of them would (``v2.summarise_half``); the soft-sharing tables
(``sharing.csv``) of runs that have one are printed together after them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmarks.validity.rules import read_table
from benchmarks.validity.v2 import summarise_half


def combined(
    out_dirs: Sequence[Path], previous: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per-family rows, means per method, bootstrap differences) over ``out_dirs``."""
    table = pd.concat([read_table(d / "per_family.csv") for d in out_dirs])
    twice = table[table.duplicated(["family", "method"])]
    if not twice.empty:
        raise ValueError(f"scored in more than one run: {sorted(set(twice.family))}")
    means, diffs = summarise_half(table, previous=previous)
    return table, means, diffs


def _has_rows(path: Path) -> bool:
    """A run without soft sharing writes an empty sharing.csv (or, before it, none)."""
    return path.exists() and len(path.read_text().splitlines()) > 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("out_dirs", type=Path, nargs="+")
    parser.add_argument("--previous", default="probe@quick")
    args = parser.parse_args(argv)
    try:
        table, means, diffs = combined(args.out_dirs, args.previous)
    except ValueError as error:
        parser.error(str(error))

    def fmt(v: float) -> str:
        return "–" if math.isnan(v) else f"{v:.2f}"

    spearman = table.pivot(index="family", columns="method", values="spearman")
    print(spearman.to_string(float_format=fmt))
    print()
    print(means.to_string(float_format=fmt, index=False))
    print()
    print(diffs.to_string(float_format=fmt, index=False))
    soft = [d / "sharing.csv" for d in args.out_dirs if _has_rows(d / "sharing.csv")]
    if soft:  # the soft-sharing table of runs with several reference sharings
        print()
        print(pd.concat([read_table(f) for f in soft]).to_string(float_format=fmt, index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
