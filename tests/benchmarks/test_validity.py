"""The validity study's code: agreement metrics on hand-made examples, the correlation
baseline, the reference trainer and the runner end to end on a tiny scenario."""

import math

import numpy as np
import pandas as pd
import pytest

from benchmarks.validity.agreement import (
    agreement,
    covered,
    label_correlation,
    pooled_rates,
    top_k_overlap,
)
from benchmarks.validity.report import coverage, per_scenario, render, tradeoff
from benchmarks.validity.scenarios import Scenario
from benchmarks.validity.study import StudyConfig, parse_variant, run_scenario
from benchmarks.validity.truth import (
    TruthConfig,
    encode,
    full_training,
    split,
    split_half_reliability,
)
from engine import SpecError, TaskSpec, advise, make_task_family

PREDICTED = pd.Series({"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.0, "e": -1.0})
TRUTH = pd.DataFrame(
    {"gain": [0.3, 0.1, -0.1, 0.2, -0.2], "sign": [1, 0, -1, 1, -1]}, index=list("abcde")
)
VERDICTS = pd.Series(
    {"a": "helpful", "b": "helpful", "c": "harmful", "d": "inconclusive", "e": "helpful"}
)


def test_agreement_on_a_hand_made_example():
    row = agreement(PREDICTED, TRUTH, VERDICTS)
    # Ranks 5 4 3 2 1 vs 5 3 2 4 1: sum d^2 = 6, rho = 1 - 6*6/(5*24).
    assert row["spearman"] == pytest.approx(0.7)
    # 8 concordant, 2 discordant pairs (b-d, c-d).
    assert row["kendall"] == pytest.approx(0.6)
    # Predicted top 3 {a, b, c}, true top 3 {a, d, b}.
    assert row["top3"] == pytest.approx(2 / 3)
    assert (row["helpful_called"], row["helpful_right"], row["truly_helpful"]) == (3, 1, 2)
    assert (row["harmful_called"], row["harmful_right"], row["truly_harmful"]) == (1, 1, 2)
    assert row["wrong_direction"] == 1  # e: called helpful, truly harmful
    rates = pooled_rates(pd.DataFrame([row, row]))
    assert rates["helpful_precision"] == pytest.approx(1 / 3)
    assert rates["helpful_recall"] == pytest.approx(1 / 2)
    assert rates["harmful_flagged"] == pytest.approx(1 / 2)


def test_agreement_ignores_missing_predictions_and_handles_ties():
    predicted = PREDICTED.copy()
    predicted["e"] = math.nan
    row = agreement(predicted, TRUTH)
    assert row["n_candidates"] == 4
    assert "helpful_called" not in row
    flat = agreement(pd.Series(1.0, index=list("abcde")), TRUTH)
    assert math.isnan(flat["spearman"])
    assert top_k_overlap(PREDICTED, TRUTH["gain"], k=1) == 1.0
    assert top_k_overlap(PREDICTED, TRUTH["gain"], k=10) == 1.0  # k capped at the count


def test_coverage_counts_missing_intervals_as_misses():
    low = pd.Series([0.0, 0.0, math.nan])
    high = pd.Series([1.0, 0.5, math.nan])
    assert list(covered(low, high, pd.Series([0.7, 0.7, 0.0]))) == [True, False, False]


def test_label_correlation_baseline():
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=400),
            "y": y,
            "same": 2 * y + 1,
            "neg": -y + 0.01 * rng.normal(size=400),
            "cls": np.where(y > 0, "hi", "lo"),
            "grp": (np.arange(400) % 4).astype(str),
        }
    )
    frame.loc[:99, "same"] = np.nan
    other = frame[["x"]].assign(label=frame["y"]).iloc[::-1]
    scenario = _scenario(
        frame,
        [
            TaskSpec("same", "regression"),
            TaskSpec("neg", "regression"),
            TaskSpec("cls", "binary"),
            TaskSpec("grp", "multiclass"),
            TaskSpec("label", "regression", name="other", source="t"),
        ],
        tables={"t": other},
        match_on=("x",),
    )
    scores = label_correlation(scenario)
    assert scores["same"] == pytest.approx(1.0)
    assert scores["neg"] == pytest.approx(1.0, abs=1e-3)
    assert 0.7 < scores["cls"] < 0.9  # point-biserial of a median split
    assert scores["grp"] < 0.2  # unrelated groups: small correlation ratio
    assert scores["other"] == pytest.approx(1.0)  # matched on x across tables


def _scenario(frame, candidates, **kwargs):
    return Scenario(
        name="tiny",
        description="tiny",
        frame=frame,
        main=TaskSpec("y", "regression"),
        candidates=tuple(candidates),
        features=("x",),
        main_train_fraction=1.0,
        real=False,
        truth_seeds=2,
        **kwargs,
    )


def _family_scenario(n_rows=500):
    family = make_task_family(
        n_rows=n_rows, n_features=8, relatedness=(0.95, 0.0), n_noise=1, seed=3
    )
    return Scenario(
        name="tiny",
        description="tiny family",
        frame=family.frame,
        main=TaskSpec("y", "regression"),
        candidates=tuple(TaskSpec(c, "regression") for c in family.candidates),
        features=tuple(f"x{i}" for i in range(8)),
        main_train_fraction=0.2,
        real=True,
        truth_seeds=4,
    )


def test_reference_splits_encode_and_reliability():
    frame = pd.DataFrame(
        {
            "x": np.arange(100.0),
            "t": ["u", "v"] * 50,
            "y": [0, 1, 1, 1] * 25,
            "aux": np.r_[np.arange(50.0), [np.nan] * 50],
        }
    )
    scenario = Scenario(
        name="s",
        description="s",
        frame=frame,
        main=TaskSpec("y", "binary"),
        candidates=(TaskSpec("aux", "regression"),),
        features=("x", "t"),
        main_train_fraction=0.5,
        real=False,
        truth_seeds=2,
    )
    enc = encode(scenario)
    assert enc.x.shape == (100, 3)  # x plus one-hot t=u, t=v
    assert list(enc.scale) == [True, False, False]
    assert enc.kinds == ["binary", "regression"]
    pool, val, test, train = split(enc, np.random.default_rng(0), TruthConfig(), 0.5)
    assert len(val) == len(test) == 20
    assert enc.y[test, 0].mean() == pytest.approx(0.75)  # stratified
    assert set(train) <= set(pool)
    assert len(train) == 30  # half of the 60 training rows
    assert not set(pool) & (set(val) | set(test))
    # A reference whose replicates all agree is perfectly reliable.
    runs = pd.DataFrame(
        [
            (r, c, loss)
            for r in range(6)
            for c, loss in [("", 1.0), ("a", 0.5), ("b", 0.9), ("c", 1.2)]
        ],
        columns=["replicate", "config", "loss"],
    )
    runs["loss"] += np.repeat(np.random.default_rng(1).normal(0, 0.01, 6), 4)
    assert split_half_reliability(runs, ["a", "b", "c"]) == pytest.approx(1.0)


def test_reference_finds_the_related_candidate():
    scenario = _family_scenario()
    truth = full_training(
        scenario, seed=0, config=TruthConfig(seeds=4, hidden=(32, 16), max_epochs=40, patience=5)
    )
    assert len(truth.runs) == 4 * 4
    summary = truth.summary
    assert summary["gain"].idxmax() == "rel_0_0.95"
    # The sign is that of a significant interval, and the gain is the paired mean.
    assert (summary.sign == np.select([summary.ci_low > 0, summary.ci_high < 0], [1, -1], 0)).all()
    loss = truth.runs.pivot(index="replicate", columns="config", values="loss")
    expected = (loss[""] - loss["noise_0"]).mean()
    assert summary.loc["noise_0", "gain"] == pytest.approx(expected)


def test_runner_end_to_end_on_a_tiny_scenario():
    scenario = _family_scenario()
    config = StudyConfig.make(
        variants=("default", "cheap"),
        extra_variants={"cheap": {"epochs": 5}},
        default_repeats=2,
        variant_repeats=1,
        truth=TruthConfig(hidden=(32, 16), max_epochs=30, patience=5),
    )
    result = run_scenario(scenario, config, log=lambda _: None)
    scores = result.scores
    jobs = scores.groupby(["method", "budget"]).size().to_dict()
    assert jobs[("probe", "default")] == 2
    assert jobs[("probe", "cheap")] == 1
    assert jobs[("probe", "seeds=1")] == 10  # the seeds curve comes from the same replicates
    assert jobs[("correlation", "-")] == 1
    default = scores[scores.budget == "default"]
    assert default.spearman.between(-1, 1).all()
    assert default.coverage.between(0, 1).all()

    # The first default job is exactly the job a user runs with this seed.
    advice = advise(
        scenario.frame,
        scenario.main,
        list(scenario.candidates),
        seed=0,
        features=list(scenario.features),
        main_train_fraction=scenario.main_train_fraction,
    )
    first = result.predictions.query("method == 'probe' and budget == 'default' and repeat == 0")
    ours = first.set_index("candidate")["gain"]
    theirs = advice.to_frame().set_index("candidate")["gain"]
    pd.testing.assert_series_equal(
        ours.sort_index(), theirs.sort_index(), check_names=False, atol=1e-5
    )

    table = per_scenario([result])
    assert table.loc[0, "candidates"] == 3
    assert {"default", "cheap", "seeds=1", "seeds=10"} <= set(tradeoff([result]).budget)
    table = coverage([result])
    assert set(table.budget) >= {"default", "seeds=2"}
    shares = table.filter(like="holds").to_numpy(dtype=float).ravel()
    shares = shares[np.isfinite(shares)]
    assert shares.size
    assert ((shares >= 0) & (shares <= 1)).all()
    assert "Default budget vs the correlation baseline" in render([result], config, 1.0)


def test_budget_variants_parse_and_are_checked():
    assert parse_variant("hidden=64,32+lr=1e-2+seeds=5") == {
        "hidden": (64, 32),
        "lr": 0.01,
        "seeds": 5,
    }
    with pytest.raises(ValueError, match="knob=value"):
        parse_variant("hidden")
    with pytest.raises(SpecError, match="Unknown budget option 'widht'"):
        parse_variant("widht=3")


def test_screening_methods_are_scored_and_unknown_methods_skipped():
    scenario = _family_scenario(300)
    config = StudyConfig.make(
        methods=("correlation", "screen", "magic"),
        truth=TruthConfig(seeds=2, hidden=(8,), max_epochs=3, patience=1),
        default_repeats=1,
    )
    messages = []
    result = run_scenario(scenario, config, log=messages.append)
    assert set(result.scores.method) == {"correlation", "screen"}
    screen = result.predictions[result.predictions.method == "screen"]
    # Scored by its ranking: one score per candidate, no interval to cover anything.
    assert sorted(screen.gain) == [-float(r) for r in range(len(scenario.candidates), 0, -1)]
    assert "ci_low" not in screen or screen.ci_low.isna().all()
    assert any("'magic' is not available" in m for m in messages)
    # The report lists the method beside the probes and the baseline.
    report = render([result], config, 1.0)
    assert "screen spearman" in report
    assert "screen CPU s/job" in report
