"""Greedy subset search: its rules on scripted probe results, then on a table where
the answer is known (two complementary candidates, one of them duplicated)."""

import math

import numpy as np
import pandas as pd
import pytest

from engine import Budget, ProbeRun, ProbeSpec, TaskSpec, advise, search_subsets, train_probes
from engine.reference import train_sequential
from tests.engine.conftest import candidate_advice

NAMES = ["a", "b", "c", "d"]


def _run(replicate, aux, loss):
    return ProbeRun(ProbeSpec(replicate, aux), {"loss": loss}, (loss,), 0, 1)


def _candidate(name, gain, verdict, rank):
    return candidate_advice(
        name,
        gain,
        rank=rank,
        ci_low=gain - 0.02,
        ci_high=gain + 0.02,
        rel_gain=gain,
        p_value=0.01,
        q_value=0.01,
        verdict=verdict,
        seeds=4,
    )


class ScriptedTrainer:
    """Stands in for training: a set's test loss is 1 minus the sum of its members'
    effects, plus a wobble whose sign flips with the replicate and the set's size (so
    paired differences have a spread), so each step's outcome is known."""

    def __init__(self, effects, wobble=0.001):
        self.effects = effects
        self.wobble = wobble
        self.calls = []

    def loss(self, replicate, aux):
        sign = 1 if (replicate + len(aux)) % 2 else -1
        return 1.0 - sum(self.effects[NAMES[c]] for c in aux) + sign * self.wobble

    def __call__(self, specs):
        self.calls.append(list(specs))
        return [_run(s.replicate, s.aux, self.loss(s.replicate, s.aux)) for s in specs]


def _search(effects, verdicts, budget=None, wobble=0.001):
    trainer = ScriptedTrainer(effects, wobble)
    runs = [_run(r, (), 1.0) for r in range(4)]
    runs += [_run(r, (i,), trainer.loss(r, (i,))) for r in range(4) for i in range(len(NAMES))]
    ranked = sorted(NAMES, key=lambda n: -effects[n])
    candidates = [
        _candidate(n, effects[n], verdicts.get(n, "inconclusive"), rank)
        for rank, n in enumerate(ranked, start=1)
    ]
    subset, trained = search_subsets(
        runs,
        candidates,
        NAMES,
        budget or Budget(seeds=4, subset_budget=6, subset_width=2),
        metric="loss",
        test_train_ratio=0.25,
        interval="corrected",
        train=trainer,
    )
    return subset, trained, trainer


def test_adds_candidates_while_they_improve_and_stops_at_the_budget():
    effects = {"a": 0.05, "b": 0.04, "c": 0.03, "d": 0.02}
    subset, trained, trainer = _search(
        effects, {"a": "helpful"}, Budget(seeds=4, subset_budget=3, subset_width=2)
    )
    # Step 1 trains a+b and a+c side by side (width 2) and keeps a+b; step 2 has
    # budget for one more set: a+b+c.
    assert [[s.aux for s in call[::4]] for call in trainer.calls] == [
        [(0, 1), (0, 2)],
        [(0, 1, 2)],
    ]
    assert subset.members == ("a", "b", "c")
    assert subset.gain == pytest.approx(0.12, abs=1e-3)
    assert subset.evaluated == 3
    assert subset.stop_reason == "budget"
    assert len(trained) == 3 * 4
    assert [s.accepted for s in subset.path] == [True, True, False, True]
    assert subset.path[1].improvement == pytest.approx(0.04, abs=1e-3)


def test_stops_when_the_best_extension_does_not_improve_beyond_its_interval():
    # Adding b changes the loss by less than the replicate wobble: no clear gain.
    effects = {"a": 0.05, "b": 0.0002, "c": 0.0001, "d": -0.01}
    subset, _, _ = _search(effects, {"a": "helpful"}, wobble=0.002)
    assert subset.members == ("a",)
    assert subset.gain == pytest.approx(0.05, abs=2e-3)
    assert subset.stop_reason == "no_improvement"
    assert subset.evaluated == 2
    assert not any(step.accepted for step in subset.path[1:])
    step = subset.path[1]
    assert step.improvement_ci_low <= 0 <= step.improvement_ci_high


def test_only_candidates_with_a_positive_gain_are_tried():
    effects = {"a": 0.05, "b": 0.02, "c": 0.0, "d": -0.03}
    subset, _, trainer = _search(effects, {"a": "helpful", "d": "harmful"})
    tried = {s.aux for call in trainer.calls for s in call}
    assert tried == {(0, 1)}
    assert subset.members == ("a", "b")
    assert subset.stop_reason == "exhausted"


def test_without_a_helpful_candidate_nothing_is_trained():
    effects = {"a": 0.01, "b": 0.0, "c": 0.0, "d": 0.0}
    subset, trained, trainer = _search(effects, {})
    assert subset.members == ()
    assert math.isnan(subset.gain)
    assert subset.stop_reason == "no_helpful_candidate"
    assert subset.path == ()
    assert trained == []
    assert trainer.calls == []


def _complementary_table(seed=2, n=3000, n_features=32):
    """Main task y = f(u1·x) + f(u2·x); candidate a learns f(u1·x), b learns f(u2·x):
    each carries half of what the main task needs."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_features))
    u, _ = np.linalg.qr(rng.standard_normal((n_features, 2)))

    def f(z):
        return z + 0.5 * np.sin(1.3 * z + 0.4)

    z1, z2 = f(x @ u[:, 0]), f(x @ u[:, 1])
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(n_features)])
    frame["y"] = z1 + z2 + 0.1 * rng.standard_normal(n)
    frame["a"] = z1 + 0.1 * rng.standard_normal(n)
    frame["b"] = z2 + 0.1 * rng.standard_normal(n)
    frame["noise"] = rng.standard_normal(n)
    return frame


def test_takes_the_complementary_candidate_and_not_the_duplicate():
    frame = _complementary_table()
    advice = advise(
        frame,
        "y",
        ["a", TaskSpec("a", name="a_copy"), "b", "noise"],  # a_copy: the same label twice
        seed=2,
        seeds=5,
        epochs=30,
        main_train_fraction=0.05,
        subset_search=True,
        subset_budget=3,
        subset_width=2,
    )
    subset = advice.subset
    assert subset is not None
    best = advice.candidates[0]
    assert best.verdict == "helpful"
    assert set(subset.members) in ({"a", "b"}, {"a_copy", "b"}), subset.path
    assert not {"a", "a_copy"} <= set(subset.members)
    # Together they beat the best single candidate, beyond the interval of the step.
    assert subset.gain > best.gain
    accepted = [step for step in subset.path[1:] if step.accepted]
    assert accepted[0].improvement_ci_low > 0
    # Adding the duplicate to the pair was tried and refused.
    last = subset.path[-1]
    assert set(last.members) == {"a", "a_copy", "b"}
    assert not last.accepted


@pytest.mark.parametrize("weighting", ["mean", "sum"])
def test_subset_probes_train_as_the_plain_loop_does(small_data, weighting):
    _, budget, data = small_data
    plan = Budget(**{**budget.__dict__, "subset_weighting": weighting, "epochs": 3})
    specs = [ProbeSpec(0, (0, 1)), ProbeSpec(0, (0,)), ProbeSpec(1, (0, 1, 2))]
    batched = train_probes(data, specs, plan, seed=0, metric="loss")
    sequential = train_sequential(data, specs, plan, seed=0, metric="loss")
    for a, b in zip(batched, sequential, strict=True):
        assert a.metrics["loss"] == pytest.approx(b.metrics["loss"], abs=1e-4)
        np.testing.assert_allclose(a.curve, b.curve, atol=1e-4)


def test_mean_weighting_changes_only_probes_with_several_tasks(small_data):
    _, budget, data = small_data
    specs = [ProbeSpec(0), ProbeSpec(0, (1,)), ProbeSpec(0, (0, 1))]
    runs = {
        w: train_probes(
            data, specs, Budget(**{**budget.__dict__, "subset_weighting": w}), seed=0, metric="loss"
        )
        for w in ("mean", "sum")
    }
    assert runs["mean"][0].curve == runs["sum"][0].curve
    assert runs["mean"][1].curve == runs["sum"][1].curve
    assert runs["mean"][2].curve != runs["sum"][2].curve
