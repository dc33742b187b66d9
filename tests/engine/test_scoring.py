"""Gains, intervals, p-values, q-values and verdicts have their textbook values."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from engine import benjamini_hochberg, make_splits, paired_gain, prepare
from engine.pipeline import holdout_ratio
from engine.scoring import adaptive_q_values, null_share, verdict


def test_naive_interval_is_the_paired_t_interval():
    base = [0.50, 0.52, 0.47, 0.55, 0.49]
    cand = [0.45, 0.50, 0.46, 0.50, 0.44]
    s = paired_gain(base, cand, "loss", test_train_ratio=0.5, interval="naive")
    diff = np.array(base) - np.array(cand)  # loss: lower is better
    assert s.gain == pytest.approx(diff.mean())
    ttest = stats.ttest_rel(base, cand)
    assert s.p_value == pytest.approx(ttest.pvalue)
    ci = stats.t.interval(0.95, 4, loc=diff.mean(), scale=stats.sem(diff))
    assert (s.ci_low, s.ci_high) == pytest.approx(ci)
    assert s.verdict == "helpful"


def test_corrected_interval_widens_by_nadeau_bengio_factor():
    base = [0.8, 0.82, 0.79, 0.81]
    cand = [0.81, 0.84, 0.79, 0.83]
    naive = paired_gain(base, cand, "auroc", test_train_ratio=0.25, interval="naive")
    corrected = paired_gain(base, cand, "auroc", test_train_ratio=0.25, interval="corrected")
    assert corrected.gain == naive.gain == pytest.approx(0.0125)
    assert corrected.se / naive.se == pytest.approx(math.sqrt((1 / 4 + 0.25) / (1 / 4)))
    assert corrected.p_value > naive.p_value


def test_orientation_makes_positive_mean_better():
    worse = paired_gain([0.9, 0.91, 0.9], [0.8, 0.82, 0.8], "auroc", test_train_ratio=0.2)
    assert worse.gain < 0
    assert worse.verdict == "harmful"
    better_loss = paired_gain([0.5, 0.5, 0.5], [0.4, 0.41, 0.4], "loss", test_train_ratio=0.2)
    assert better_loss.gain > 0
    assert better_loss.verdict == "helpful"


def test_missing_replicates_are_dropped_and_one_replicate_has_no_interval():
    s = paired_gain([0.5, math.nan, 0.4], [0.4, 0.3, math.nan], "loss", test_train_ratio=0.2)
    assert s.n == 1
    assert s.gain == pytest.approx(0.1)
    assert math.isnan(s.ci_low)
    assert s.verdict == "inconclusive"


def test_benjamini_hochberg_matches_definition():
    p = [0.01, 0.04, 0.03, 0.20, math.nan]
    q = benjamini_hochberg(p)
    # sorted p: .01 .03 .04 .20 -> p*m/rank: .04 .06 .0533 .20 -> cumulative min from top
    assert q[:4] == pytest.approx([0.04, 0.0533333, 0.0533333, 0.20], abs=1e-6)
    assert math.isnan(q[4])


def test_storeys_adaptive_q_values_scale_bh_by_the_estimated_null_share():
    # 8 finite p-values, 2 above lambda 0.5: pi0 = (1 + 2) / (8 * 0.5) = 0.75.
    p = [0.001, 0.004, 0.01, 0.02, 0.03, 0.04, 0.6, 0.9, math.nan]
    assert null_share(p) == pytest.approx(0.75)
    bh = benjamini_hochberg(p)
    q = adaptive_q_values(p)
    assert q[:8] == pytest.approx([0.75 * v for v in bh[:8]])
    assert math.isnan(q[8])
    # Where most candidates carry an effect, more pass a 0.05 gate than under BH ...
    assert sum(v <= 0.05 for v in q[:8]) > sum(v <= 0.05 for v in bh[:8])
    # ... and where most p-values look null the share is capped at 1: BH exactly.
    flat = [0.01, 0.3, 0.6, 0.7, 0.8, 0.95]
    assert null_share(flat) == 1.0
    assert adaptive_q_values(flat) == benjamini_hochberg(flat)
    assert null_share([]) == 1.0


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0.1, 0.2, "helpful"), (-0.2, -0.1, "harmful"), (-0.1, 0.1, "inconclusive")],
)
def test_verdict(low, high, expected):
    assert verdict(low, high) == expected


def test_holdout_ratio_counts_the_main_tasks_labelled_training_rows():
    """The correction is about which main-labelled rows a replicate holds out: rows
    without a main label are never held out and must not dilute it, and rows whose
    label main_train_fraction drops still rotate between train and test."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=200), "aux": rng.normal(size=200)})
    frame["y"] = np.where(np.arange(200) < 100, frame["x"] + rng.normal(size=200), np.nan)
    problem = prepare(frame, "y", ["aux"])
    for fraction in (1.0, 0.5):
        splits = make_splits(problem, replicates=2, seed=0, main_train_fraction=fraction)
        assert holdout_ratio(splits, problem) == pytest.approx(20 / 60)
