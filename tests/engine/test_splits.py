"""Replicate splits are disjoint, stratified, reproducible, differ between replicates,
and keep auxiliary-only rows for training."""

import numpy as np
import pandas as pd
import pytest

from engine import TooFewRowsError, make_splits, prepare


def _problem(n=500, positive_rate=0.2, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positive_rate).astype(float)
    y[rng.random(n) < 0.1] = np.nan  # some rows carry no main label
    return prepare(
        pd.DataFrame({"x": rng.normal(size=n), "y": y, "aux": rng.normal(size=n)}), "y", ["aux"]
    )


def test_splits_are_disjoint_and_cover_labelled_rows():
    problem = _problem()
    splits = make_splits(problem, replicates=3, seed=0)
    labelled = set(np.flatnonzero(np.isfinite(problem.main.values)))
    for r in range(3):
        pool, val, test = set(splits.pool[r]), set(splits.val[r]), set(splits.test[r])
        assert not (pool & val)
        assert not (pool & test)
        assert not (val & test)
        assert val | test <= labelled
        # Every row without a main label stays available for auxiliary training.
        assert set(range(problem.n_rows)) - labelled <= pool
        assert pool | val | test == set(range(problem.n_rows))
        main_train = set(np.flatnonzero(splits.main_train[r]))
        assert main_train == pool & labelled


def test_splits_are_stratified():
    problem = _problem(n=1000, positive_rate=0.2)
    splits = make_splits(problem, replicates=2, seed=1)
    y = problem.main.values
    overall = np.nanmean(y)
    for part in (splits.val, splits.test):
        assert abs(y[part[0]].mean() - overall) < 0.01


def test_replicates_differ_and_seed_reproduces():
    problem = _problem()
    a = make_splits(problem, replicates=2, seed=7)
    b = make_splits(problem, replicates=2, seed=7)
    c = make_splits(problem, replicates=2, seed=8)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.test[0], a.test[1])
    assert not np.array_equal(a.test, c.test)


def test_main_train_fraction_keeps_a_share_of_main_labels():
    problem = _problem(n=1000)
    full = make_splits(problem, replicates=1, seed=0)
    tenth = make_splits(problem, replicates=1, seed=0, main_train_fraction=0.1)
    assert tenth.n_main_train == pytest.approx(0.1 * full.n_main_train, abs=2)
    # Rows whose main label is dropped still train the auxiliary tasks.
    np.testing.assert_array_equal(tenth.pool, full.pool)
    np.testing.assert_array_equal(tenth.test, full.test)


def test_too_few_labelled_rows_is_an_error():
    frame = pd.DataFrame({"x": range(20), "y": [0, 1] * 10, "aux": range(20)})
    with pytest.raises(TooFewRowsError, match="'y' has 20 labelled rows; at least 30"):
        make_splits(prepare(frame, "y", ["aux"]), replicates=1, seed=0)
