"""Features: labels never leak in, text is one-hot encoded under a cap, missing values
get indicators, constants are dropped, and statistics come from training rows only."""

import numpy as np
import pandas as pd
import pytest
import torch

from engine import (
    Budget,
    FeatureConfig,
    NoFeaturesError,
    SpecError,
    UnknownColumnError,
    prepare,
    splits_for,
)
from engine.features import encode_features
from engine.training_data import TrainingData


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "num": rng.normal(5, 2, n),
            "with_gaps": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
            "colour": rng.choice(["red", "green", "blue"], n),
            "rare": [f"id{i}" for i in range(n)],
            "const": 1.0,
            "y": rng.integers(0, 2, n),
            "aux": rng.normal(size=n),
        }
    )


def test_label_columns_are_never_features():
    problem = prepare(_frame(), "y", ["aux"])
    names = problem.features.names
    assert not any(n.startswith(("y", "aux")) for n in names)


def test_label_named_as_feature_is_rejected():
    with pytest.raises(SpecError, match="'aux' is a label and cannot also be a feature"):
        prepare(_frame(), "y", ["aux"], features=["num", "aux"])


def test_unknown_feature_column_is_named():
    with pytest.raises(UnknownColumnError, match="'nope'"):
        prepare(_frame(), "y", ["aux"], features=["num", "nope"])


def test_encoding_of_each_column_type():
    matrix = encode_features(_frame(), ["num", "with_gaps", "colour", "rare", "const"])
    assert matrix.names[:3] == ("num", "with_gaps", "with_gaps__missing")
    assert {n for n in matrix.names if n.startswith("colour=")} == {
        "colour=red",
        "colour=green",
        "colour=blue",
    }
    assert matrix.dropped == {
        "rare": "no category is frequent enough to learn from",
        "const": "constant",
    }
    gaps = matrix.values[:, matrix.names.index("with_gaps")]
    indicator = matrix.values[:, matrix.names.index("with_gaps__missing")]
    np.testing.assert_array_equal(np.isnan(gaps), indicator == 1)
    # Only numeric value columns are standardised; indicators stay 0/1.
    assert matrix.standardise.tolist() == [True, True, False, False, False, False]


def test_category_cap_keeps_the_most_frequent():
    frame = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 20 + ["d"] * 10})
    matrix = encode_features(frame, ["c"], FeatureConfig(max_categories=2))
    assert matrix.names == ("c=a", "c=b")


def test_no_usable_features_is_an_error():
    frame = pd.DataFrame({"const": [1.0] * 40, "y": [0, 1] * 20, "aux": range(40)})
    with pytest.raises(NoFeaturesError, match="const: constant"):
        prepare(frame, "y", ["aux"])


def test_standardisation_uses_each_replicates_training_rows_only():
    frame = _frame(n=300)
    problem = prepare(frame, "y", ["aux"], features=["num", "with_gaps"])
    budget = Budget(seeds=2)
    splits = splits_for(problem, budget, seed=3)
    data = TrainingData(problem, splits, torch.device("cpu"))
    values = problem.features.values.astype(np.float64)
    for r in range(2):
        train = values[splits.pool[r]]
        np.testing.assert_allclose(data.x_mean[r, :2].numpy(), np.nanmean(train, 0)[:2], rtol=1e-5)
        np.testing.assert_allclose(data.x_std[r, :2].numpy(), np.nanstd(train, 0)[:2], rtol=1e-5)
        # Held-out rows do not move the statistics.
        assert not np.allclose(
            np.nanmean(values[splits.test[r]], 0)[:2], data.x_mean[r, :2].numpy()
        )
    # Missing cells become the training mean, i.e. 0 after standardisation.
    x = data.inputs(torch.arange(300)[None], torch.tensor([0]))[0]
    missing = np.isnan(values[:, 1])
    assert torch.all(x[torch.from_numpy(missing), 1] == 0)
