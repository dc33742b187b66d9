"""Label evidence: coverage, correlation and mutual information with known answers, the
disagreement flag's rule, and that it changes nothing of the ranking."""

import math
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest

import engine.pipeline
from engine import (
    Budget,
    TaskSpec,
    build_advice,
    label_coverage,
    prepare,
    run_probes,
    splits_for,
)
from engine.evidence import (
    LabelEvidence,
    label_correlation,
    label_evidence,
    mutual_information,
    with_evidence,
)
from engine.probe_spec import ProbeSpec
from engine.ranking import json_safe
from tests.engine.conftest import candidate_advice

N = 400


def _frame() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    y = rng.normal(size=N)
    frame = pd.DataFrame(
        {
            "x0": rng.normal(size=N),
            "x1": rng.normal(size=N),
            "y": y,
            "same": y.copy(),
            "indep": rng.normal(size=N),
            "half": 3 * y - 1,
            "grp": pd.Series(np.where(y > 0.5, "hi", np.where(y < -0.5, "lo", "mid"))),
        }
    )
    frame.loc[: N // 2 - 1, "half"] = np.nan
    other = pd.DataFrame(
        {"x0": rng.normal(size=50), "x1": rng.normal(size=50), "t": rng.normal(size=50)}
    )
    return frame, other


def _problem():
    frame, other = _frame()
    return prepare(
        frame,
        TaskSpec("y", "regression"),
        [
            TaskSpec("same", "regression"),
            TaskSpec("indep", "regression"),
            TaskSpec("half", "regression"),
            TaskSpec("grp", "multiclass"),
            TaskSpec("t", "regression", name="other", source="aux"),
        ],
        features=["x0", "x1"],
        tables={"aux": other},
    )


def test_label_evidence_known_answers():
    evidence = {e.name: e for e in label_evidence(_problem())}
    assert list(evidence) == ["same", "indep", "half", "grp", "other"]

    same = evidence["same"]
    assert (same.labelled, same.overlap) == (N, N)
    assert same.correlation == pytest.approx(1.0)
    assert same.mutual_info > 1.5  # 10 x 10 quantile bins on the diagonal: ~log 10

    indep = evidence["indep"]
    assert indep.correlation < 0.15
    assert abs(indep.mutual_info) < 0.1

    half = evidence["half"]
    assert (half.labelled, half.overlap) == (N // 2, N // 2)
    assert half.correlation == pytest.approx(1.0)

    grp = evidence["grp"]  # classes cut from y: its classes explain most of y's variance
    assert 0.8 < grp.correlation <= 1.0
    assert grp.mutual_info > 0.5

    other = evidence["other"]  # rows appended after the main table's: no overlap
    assert (other.labelled, other.overlap) == (50, 0)
    assert math.isnan(other.correlation)
    assert math.isnan(other.mutual_info)


def test_estimators_on_small_and_discrete_inputs():
    x = np.arange(9, dtype=float)
    assert math.isnan(label_correlation(x, x, x_kind="regression", y_kind="regression"))
    assert math.isnan(mutual_information(x, x, x_discrete=False, y_discrete=False))
    # Two binary labels: |phi|; the same pair as multiclass: Cramér's V = |phi|.
    a = np.array([0, 0, 1, 1] * 10, dtype=float)
    b = np.array([0, 1, 1, 1] * 10, dtype=float)
    phi = abs(np.corrcoef(a, b)[0, 1])
    assert label_correlation(a, b, x_kind="binary", y_kind="binary") == pytest.approx(phi)
    assert label_correlation(a, b, x_kind="multiclass", y_kind="multiclass") == pytest.approx(phi)
    assert label_correlation(a, b, x_kind="binary", y_kind="multiclass") == pytest.approx(phi)
    # Identical binary labels: MI = log 2 minus the Miller-Madow term (2-2-2+1)/2n.
    assert mutual_information(a, a, x_discrete=True, y_discrete=True) == pytest.approx(
        math.log(2) + 1 / 80
    )
    constant = np.ones(40)
    assert math.isnan(label_correlation(a, constant, x_kind="binary", y_kind="regression"))


def _candidate(name: str, gain: float, ci: tuple[float, float] | None = None, **kw):
    low, high = ci if ci is not None else (gain - 0.01, gain + 0.01)
    return candidate_advice(name, gain, rank=0, ci_low=low, ci_high=high, **kw)


def _evidence(name: str, correlation: float) -> LabelEvidence:
    return LabelEvidence(name, 100, 100, correlation, math.nan)


def _flags(gains, correlations, cis=None):
    names = [f"c{i}" for i in range(len(gains))]
    cands = [
        _candidate(n, g, None if cis is None else cis[i])
        for i, (n, g) in enumerate(zip(names, gains, strict=True))
    ]
    ev = [_evidence(n, r) for n, r in zip(names, correlations, strict=True)]
    return [c.evidence_disagrees for c in with_evidence(cands, ev)]


def test_disagreement_rule_on_ranks():
    # Six candidates: threshold max(3, 6/2) = 3. c5's gain ranks 6th, its correlation 1st.
    gains = [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    correlations = [0.5, 0.4, 0.3, 0.2, 0.1, 0.9]
    assert _flags(gains, correlations) == [False, False, False, False, False, True]
    # Rank shifts of at most 2: nothing flagged.
    assert not any(_flags(gains, [0.5, 0.6, 0.3, 0.4, 0.1, 0.2]))
    # Ten candidates: the threshold grows to 5; a shift of 4 is not enough.
    gains = [1.0 - i / 10 for i in range(10)]
    correlations = [0.5, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05]  # c0: 1st -> 5th
    assert not any(_flags(gains, correlations))
    correlations = [0.4, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3, 0.2, 0.1, 0.05]  # c0: 1st -> 6th
    assert _flags(gains, correlations)[0]


def test_disagreement_rule_on_harmful_probe_with_a_top_correlation():
    gains = [0.3, 0.2, -0.1]
    cis = [(0.2, 0.4), (0.1, 0.3), (-0.2, -0.05)]
    # c2's interval is below zero and its correlation is the highest (top third of 3).
    assert _flags(gains, [0.2, 0.1, 0.9], cis) == [False, False, True]
    # An interval that reaches zero is not enough.
    assert not any(_flags(gains, [0.2, 0.1, 0.9], [(0.2, 0.4), (0.1, 0.3), (-0.2, 0.01)]))
    # Nor a harmful probe whose correlation is not in the top third.
    assert not any(_flags(gains, [0.9, 0.2, 0.5], cis))


def test_unprobed_and_missing_evidence_are_never_flagged():
    cands = [
        _candidate("a", 0.5),
        _candidate("b", math.nan, verdict="not_probed"),
        _candidate("c", -0.5, (-0.6, -0.4)),
    ]
    out = with_evidence(cands, [_evidence("a", 0.1), _evidence("b", 0.9)])
    assert [c.evidence_disagrees for c in out] == [False, False, False]
    assert out[1].evidence is not None
    assert out[2].evidence is None
    assert [c.name for c in out] == ["a", "b", "c"]


def test_build_advice_ranking_is_unchanged_by_evidence(monkeypatch):
    problem = _problem()
    budget = Budget(seeds=2, max_replicates=2, epochs=3, batch_size=64, hidden=(8,))
    splits = splits_for(problem, budget, seed=0)
    specs = [ProbeSpec(r, aux) for r in range(2) for aux in [(), *((i,) for i in range(5))]]
    runs, _ = run_probes(problem, splits, specs, budget, seed=0, metric="rmse")
    advice = build_advice(problem, splits, runs, budget, seed=0, metric="rmse")
    monkeypatch.setattr(engine.pipeline, "with_evidence", lambda ranked, _evidence: ranked)
    plain = build_advice(problem, splits, runs, budget, seed=0, metric="rmse")
    stripped = [replace(c, evidence=None, evidence_disagrees=False) for c in advice.candidates]
    assert [json_safe(asdict(c)) for c in stripped] == [
        json_safe(asdict(c)) for c in plain.candidates
    ]
    assert all(c.evidence is not None for c in advice.candidates)
    assert advice.candidate("same").evidence.correlation == pytest.approx(1.0)
    frame = advice.to_frame()
    for column in ("labelled", "overlap", "label_correlation", "mutual_info"):
        assert column in frame
    assert "evidence_disagrees" in frame
    body = advice.to_dict()
    other = next(c for c in body["candidates"] if c["name"] == "other")
    assert other["evidence"]["overlap"] == 0
    assert other["evidence"]["correlation"] is None
    assert isinstance(other["evidence_disagrees"], bool)


def test_label_coverage_counts_each_replicates_training_rows():
    """Coverage is the count a reader would make row by row: labelled rows, and per
    replicate those among its training rows and among its main-training rows, with
    ``main_train_fraction`` dropping main labels from training."""
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(3)})
    frame["y"] = np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n))
    frame["a"] = np.where(rng.random(n) < 0.5, np.nan, rng.normal(size=n))
    frame["b"] = np.where(np.arange(n) < 12, rng.normal(size=n), np.nan)
    problem = prepare(frame, "y", ["a", "b"])
    budget = Budget(seeds=4, max_replicates=4, main_train_fraction=0.5)
    splits = splits_for(problem, budget, 0)
    got = {c.name: c for c in label_coverage(problem, splits)}
    for name in ("a", "b"):
        has = frame[name].notna().to_numpy()
        assert got[name].labelled == int(has.sum())
        assert got[name].share == has.sum() / n
        pools = [has[list(p)].sum() for p in splits.pool]
        meets = [(has & m).sum() for m in splits.main_train]
        assert got[name].train_labelled == pytest.approx(np.mean(pools))
        assert got[name].train_overlap == pytest.approx(np.mean(meets))
        assert got[name].main_train == int(splits.main_train[0].sum())
    assert got["a"].note is None
    assert got["b"].note is not None
    assert got["b"].note.startswith("Only 12 of 300 rows")
