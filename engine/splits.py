"""Replicate splits: each replicate draws its own train / validation / test split of the
main task's labelled rows (repeated stratified sub-sampling), from the job seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import TooFewRowsError
from engine.problem import Problem
from engine.seeding import derive_seed

# Fewer labelled main rows than this cannot give a validation and a test set that say
# anything; the check names the limit so users know what to add.
MIN_LABELLED_ROWS = 30


@dataclass(frozen=True)
class Splits:
    """Row indices per replicate; every replicate has the same split sizes.

    ``pool`` is every row a replicate may train on: its main-task training rows plus
    all rows without a main label (auxiliary-only rows). ``main_train`` marks, per
    replicate and row, whether the main label is used in training (False for held-out
    rows and for rows dropped by ``main_train_fraction``).
    """

    pool: np.ndarray  # [R, n_pool] int64
    val: np.ndarray  # [R, n_val] int64
    test: np.ndarray  # [R, n_test] int64
    main_train: np.ndarray  # [R, N] bool

    @property
    def replicates(self) -> int:
        return int(self.pool.shape[0])

    @property
    def n_main_train(self) -> int:
        return int(self.main_train[0].sum())


def make_splits(
    problem: Problem,
    *,
    replicates: int,
    seed: int,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    main_train_fraction: float = 1.0,
) -> Splits:
    main = problem.main
    labelled = np.flatnonzero(np.isfinite(main.values))
    if labelled.size < MIN_LABELLED_ROWS:
        raise TooFewRowsError(
            f"Main task {main.column!r} has {labelled.size} labelled rows; at least "
            f"{MIN_LABELLED_ROWS} are needed to hold out validation and test rows.",
            field="main_task.column",
            hint="Upload more labelled rows.",
        )
    # Strata: classes for classification, one stratum for regression.
    if main.kind == "regression":
        strata = [labelled]
    else:
        codes = main.values[labelled]
        strata = [labelled[codes == c] for c in np.unique(codes)]

    n = problem.n_rows
    pools, vals, tests, trains = [], [], [], []
    for r in range(replicates):
        rng = np.random.default_rng(derive_seed(seed, "split", r))
        val_parts, test_parts, train_parts = [], [], []
        for stratum in strata:
            rows = rng.permutation(stratum)
            n_test = round(test_fraction * rows.size)
            n_val = round(val_fraction * rows.size)
            test_parts.append(rows[:n_test])
            val_parts.append(rows[n_test : n_test + n_val])
            train_rows = rows[n_test + n_val :]
            keep = round(main_train_fraction * train_rows.size)
            train_parts.append(train_rows[:keep])
        val = np.sort(np.concatenate(val_parts))
        test = np.sort(np.concatenate(test_parts))
        held_out = np.zeros(n, dtype=bool)
        held_out[val] = True
        held_out[test] = True
        main_train = np.zeros(n, dtype=bool)
        main_train[np.concatenate(train_parts)] = True
        pools.append(np.flatnonzero(~held_out))
        vals.append(val)
        tests.append(test)
        trains.append(main_train)

    if vals[0].size < 2 or tests[0].size < 2 or trains[0].sum() < 2:
        raise TooFewRowsError(
            f"Main task {main.column!r}: the split leaves {trains[0].sum()} training, "
            f"{vals[0].size} validation and {tests[0].size} test rows.",
            # Too few training labels is main_train_fraction's doing; held-out sets too
            # small, the data's (or the validation/test fractions').
            field="budget.main_train_fraction" if trains[0].sum() < 2 else "budget",
            hint="Raise main_train_fraction or the validation/test fractions, or add rows.",
        )
    return Splits(
        pool=np.stack(pools).astype(np.int64),
        val=np.stack(vals).astype(np.int64),
        test=np.stack(tests).astype(np.int64),
        main_train=np.stack(trains),
    )
