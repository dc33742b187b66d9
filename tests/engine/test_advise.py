"""End to end on tables with a known answer: the ranking follows the true relatedness,
noise is never called helpful, a clearly related task is."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from engine import (
    LabelError,
    NoFeaturesError,
    SpecError,
    TaskSpec,
    TooFewRowsError,
    UnknownColumnError,
    advise,
    make_task_family,
)

# Low-data regime: 5% of the training rows keep their main label (about 90 rows), every
# training row keeps its auxiliary labels. This is where auxiliary tasks matter.
# The quick recipe: these tests check the engine's mechanics on known answers, not
# the default recipe (whose cost would make them minutes long).
BUDGET = {
    "seeds": 5,
    "epochs": 30,
    "main_train_fraction": 0.05,
    "recipe": "quick",
}


def _related_spearman(family, advice):
    related = [c for c in family.candidates if c not in family.noise]
    truth = [family.relatedness[c] for c in related]
    gains = [advice.candidate(c).gain for c in related]
    return spearmanr(truth, gains).statistic


def _check_family_advice(family, advice, min_spearman=0.8):
    rho = _related_spearman(family, advice)
    assert rho >= min_spearman, advice.to_frame()
    for noise in family.noise:
        assert advice.candidate(noise).verdict != "helpful"
    best = max(family.relatedness, key=family.relatedness.get)
    # Verdicts are q-gated over the job's candidates (and spread over racing's looks);
    # the truly best candidate's gain is large enough to be called even so.
    top = advice.candidate(best)
    assert top.verdict == "helpful", advice.to_frame()
    assert top.gain > 0
    return rho


@pytest.mark.parametrize("seed", [0, 2])
def test_regression_family_ranking_follows_relatedness(seed):
    family = make_task_family(n_rows=3000, n_features=32, seed=seed)
    advice = advise(family.frame, family.main, list(family.candidates), seed=seed, **BUDGET)
    rho = _check_family_advice(family, advice)
    print(f"regression seed {seed}: spearman {rho:.2f}")
    frame = advice.to_frame()
    assert list(frame["rank"]) == list(range(1, len(family.candidates) + 1))
    assert frame["gain"].is_monotonic_decreasing
    assert {"candidate", "gain", "ci_low", "ci_high", "p_value", "q_value", "verdict"} <= set(
        frame.columns
    )
    assert (frame["ci_low"] <= frame["gain"]).all()
    assert (frame["gain"] <= frame["ci_high"]).all()
    # Racing: 5 replicates for everyone, then 5 more at a time for the candidates
    # still open, up to the default cap of 20.
    assert 5 <= advice.baseline.seeds <= 20
    assert all(c.seeds in (5, 10, 15, 20) for c in advice.candidates)
    assert set(advice.baseline.metrics) == {"loss", "rmse", "r2"}


def test_binary_main_task_family():
    family = make_task_family(
        n_rows=3000, n_features=32, main_kind="binary", candidate_kind="binary", seed=1
    )
    advice = advise(
        family.frame, family.main, list(family.candidates), seed=1, **BUDGET, max_replicates=5
    )
    rho = _check_family_advice(family, advice)
    print(f"binary: spearman {rho:.2f}")
    top = advice.candidates[0]
    assert top.secondary is not None
    assert top.secondary.metric == "auroc"
    assert set(advice.baseline.metrics) == {"loss", "accuracy", "auroc"}


def test_multiclass_main_task_family():
    family = make_task_family(
        n_rows=3000, n_features=32, main_kind="multiclass", candidate_kind="regression", seed=2
    )
    main = TaskSpec("y", kind="multiclass")
    advice = advise(family.frame, main, list(family.candidates), seed=2, **BUDGET, max_replicates=5)
    rho = _check_family_advice(family, advice)
    print(f"multiclass: spearman {rho:.2f}")
    assert advice.main.kind == "multiclass"


def test_candidate_from_another_table():
    family = make_task_family(n_rows=2000, n_features=24, relatedness=(0.95,), n_noise=1, seed=3)
    frame = family.frame
    main_table = frame.iloc[:1000].drop(columns=["rel_0_0.95"])
    other = frame.iloc[1000:].drop(columns=["y", "noise_0"])
    advice = advise(
        main_table,
        "y",
        [TaskSpec("rel_0_0.95", source="other", name="other-table"), "noise_0"],
        tables={"other": other},
        seed=0,
        seeds=5,
        epochs=30,
        main_train_fraction=0.1,
        recipe="quick",
        max_replicates=5,
    )
    assert advice.candidate("other-table").gain > advice.candidate("noise_0").gain
    assert advice.candidate("other-table").source == "other"


def test_same_seed_reproduces_exactly():
    family = make_task_family(n_rows=600, n_features=8, relatedness=(0.9, 0.1), seed=5)
    kwargs = {"seed": 11, "seeds": 2, "epochs": 5, "max_replicates": 4, "race_step": 2}
    a = advise(family.frame, "y", list(family.candidates), **kwargs).to_frame()
    b = advise(family.frame, "y", list(family.candidates), **kwargs).to_frame()
    pd.testing.assert_frame_equal(a, b)


def test_progress_reaches_total():
    family = make_task_family(n_rows=400, n_features=6, relatedness=(0.5,), n_noise=1, seed=0)
    seen = []
    advise(
        family.frame,
        "y",
        list(family.candidates),
        seeds=2,
        epochs=4,
        max_replicates=2,  # one round (racing's progress: test_racing.py)
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (2 * 3 * 4, 2 * 3 * 4)


def test_to_dict_is_json_ready():
    import json

    family = make_task_family(n_rows=400, n_features=6, relatedness=(0.5,), n_noise=1, seed=0)
    advice = advise(family.frame, "y", list(family.candidates), seeds=1, epochs=3)
    body = advice.to_dict()
    text = json.dumps(body, allow_nan=False)
    assert body["candidates"][0]["ci_low"] is None  # one replicate: no interval
    assert len(body["runs"]) == 3
    assert json.loads(text)["metric"] == "loss"


def _table(n=100, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"x": rng.normal(size=n), "y": rng.integers(0, 2, n), "aux": rng.normal(size=n)}
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message", "field"),
    [
        (
            {"main": "missing"},
            UnknownColumnError,
            "'missing' is not in the table",
            "main_task.column",
        ),
        ({"candidates": ["nope"]}, UnknownColumnError, "'nope'", "candidates[0].column"),
        ({"candidates": ["y"]}, SpecError, "is the main task itself", "candidates[0].column"),
        ({"candidates": []}, SpecError, "No candidate", "candidates"),
        ({"features": ["x", "aux"]}, SpecError, "cannot also be a feature", "features"),
        ({"metric": "r2"}, SpecError, "does not apply to a binary", "metric"),
        ({"seeds": 0}, SpecError, "seeds must be at least 1", "budget.seeds"),
        ({"learning_rate": 0.1}, SpecError, "Unknown budget option", "budget.learning_rate"),
    ],
)
def test_explicit_input_errors(kwargs, error, message, field):
    args = {"main": "y", "candidates": ["aux"], **kwargs}
    with pytest.raises(error, match=message) as info:
        advise(_table(), args.pop("main"), args.pop("candidates"), **args)
    assert info.value.field == field


def test_single_class_main_is_an_error():
    frame = _table()
    frame["y"] = 1
    frame.loc[0, "y"] = None
    with pytest.raises(LabelError, match=r"'y'.*single"):
        advise(frame, "y", ["aux"])


def test_no_usable_features_is_an_error():
    frame = _table()[["y", "aux"]].assign(const=3.0)
    with pytest.raises(NoFeaturesError):
        advise(frame, "y", ["aux"])


def test_too_few_labelled_rows_is_an_error():
    frame = _table()
    frame.loc[frame.index[25:], "y"] = np.nan
    with pytest.raises(TooFewRowsError, match="25 labelled rows"):
        advise(frame, "y", ["aux"])


def test_duplicate_candidate_names_are_an_error():
    with pytest.raises(SpecError, match="used twice"):
        advise(_table(), "y", ["aux", TaskSpec("x", name="aux")])


def test_nan_metric_values_do_not_break_scoring():
    frame = _table(n=200)
    advice = advise(frame, "y", ["aux"], seeds=2, epochs=2)
    assert all(math.isfinite(v) for v in advice.baseline.metrics.values())
