"""Metrics match their textbook definitions."""

import numpy as np
import pytest
import torch
from scipy import stats

from engine.metrics import TargetScale, compute_metric

IDENTITY = TargetScale(torch.zeros(2), torch.ones(2))


def _brute_auroc(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_binary_auroc_with_ties_matches_pair_counting():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(2, 60)).astype(np.float32)  # many ties
    labels = rng.integers(0, 2, size=(2, 60)).astype(np.float32)
    got = compute_metric(
        "auroc", torch.from_numpy(scores)[..., None], torch.from_numpy(labels), "binary", IDENTITY
    )
    for p in range(2):
        assert got[p].item() == pytest.approx(_brute_auroc(scores[p], labels[p]), abs=1e-6)


def test_auroc_is_nan_with_one_class():
    out = compute_metric("auroc", torch.randn(2, 10, 1), torch.ones(2, 10), "binary", IDENTITY)
    assert torch.isnan(out).all()


def test_multiclass_loss_and_accuracy():
    logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]]])
    labels = torch.tensor([[0.0, 1.0, 0.0]])
    scale = TargetScale(torch.zeros(1), torch.ones(1))
    loss = compute_metric("loss", logits, labels, "multiclass", scale)
    expected = torch.nn.functional.cross_entropy(logits[0], labels[0].long())
    assert loss.item() == pytest.approx(expected.item())
    assert compute_metric("accuracy", logits, labels, "multiclass", scale).item() == (
        pytest.approx(2 / 3)
    )


def test_regression_metrics_in_original_units():
    rng = np.random.default_rng(1)
    y = rng.normal(10, 3, 50)
    pred = y + rng.normal(0, 1, 50)
    scale = TargetScale(torch.tensor([10.0]), torch.tensor([3.0]))
    out = torch.tensor((pred - 10) / 3, dtype=torch.float32)[None, :, None]
    labels = torch.tensor(y, dtype=torch.float32)[None]
    rmse = compute_metric("rmse", out, labels, "regression", scale).item()
    r2 = compute_metric("r2", out, labels, "regression", scale).item()
    assert rmse == pytest.approx(np.sqrt(np.mean((pred - y) ** 2)), rel=1e-4)
    assert r2 == pytest.approx(1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2), rel=1e-4)
    loss = compute_metric("loss", out, labels, "regression", scale).item()
    assert loss == pytest.approx(np.mean(((pred - y) / 3) ** 2), rel=1e-4)
    assert stats.pearsonr(pred, y).statistic > 0.9


def test_metric_that_does_not_apply_is_refused():
    with pytest.raises(ValueError, match="r2"):
        compute_metric("r2", torch.zeros(1, 3, 1), torch.zeros(1, 3), "binary", IDENTITY)
