"""A job at several shares of the main labels (``main_train_fractions``): nested, paired
splits; one row per candidate and share; without the option nothing changes; on the
synthetic family the most related candidate helps most when main labels are few."""

import itertools
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from engine import (
    Budget,
    JobShape,
    SpecError,
    TooFewRowsError,
    advise,
    estimate_cost,
    make_splits,
    make_task_family,
    prepare,
)
from engine.fractions import share_budget, share_by_share, splits_at
from engine.pipeline import planned_epochs, splits_for
from engine.plan import probe_bytes
from engine.recipes import recipe_budget

SHARES = (0.1, 0.25, 0.5, 1.0)
# The quick recipe, three replicates, no racing: about 1 s per share on one core.
QUICK = {"recipe": "quick", "seeds": 3, "max_replicates": 3, "epochs": 30}


def _problem(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    y[rng.random(n) < 0.1] = np.nan  # some rows carry no main label
    frame = pd.DataFrame({"x": rng.normal(size=n), "y": y, "aux": rng.normal(size=n)})
    return prepare(frame, "y", ["aux"])


def test_fraction_splits_are_nested_and_paired():
    problem = _problem()
    plan = Budget(main_train_fractions=SHARES, seeds=4, max_replicates=4)
    splits = [splits_for(problem, share_budget(plan, share), seed=3) for share in SHARES]
    kept = [s.n_main_train for s in splits]
    assert kept == sorted(kept)
    assert kept[0] < kept[-1]
    for small, large in itertools.pairwise(splits):
        # Per replicate: the kept main rows at a smaller share are a subset of those at
        # a larger one; validation, test rows and the training pool are the same.
        assert not (small.main_train & ~large.main_train).any()
        np.testing.assert_array_equal(small.val, large.val)
        np.testing.assert_array_equal(small.test, large.test)
        np.testing.assert_array_equal(small.pool, large.pool)
    # The largest share is the plain split of a job without the option.
    plain = make_splits(problem, replicates=4, seed=3)
    np.testing.assert_array_equal(splits[-1].main_train, plain.main_train)


def test_budget_checks_and_orders_the_shares():
    assert Budget(main_train_fractions=[1, 0.1, 0.25, 0.1]).main_train_fractions == (
        0.1,
        0.25,
        1.0,
    )
    assert Budget().main_train_fractions == ()
    with pytest.raises(SpecError, match=r"main_train_fractions items must each be in \(0, 1\]"):
        Budget(main_train_fractions=[0.0, 0.5])
    with pytest.raises(SpecError, match="main_train_fraction must be left at 1"):
        Budget(main_train_fractions=[0.5], main_train_fraction=0.2)


def test_a_share_too_small_fails_before_training():
    frame = make_task_family(n_rows=60, n_features=4, relatedness=(0.9,), n_noise=0).frame
    with pytest.raises(TooFewRowsError, match=r"share 0\.01") as info:
        advise(frame, "y", ["rel_0_0.90"], main_train_fractions=[0.01, 1.0], **QUICK)
    assert info.value.field == "budget.main_train_fractions"


def test_planned_work_and_cost_count_every_share():
    one = Budget(seeds=3, max_replicates=6, epochs=20)
    four = replace(one, main_train_fractions=SHARES)
    assert planned_epochs("probe", four, 5) == 4 * planned_epochs("probe", one, 5)
    shape = JobShape(rows=1000, n_features=10, n_candidates=5)
    assert estimate_cost("probe", four, shape).flops == pytest.approx(
        4 * estimate_cost("probe", one, shape).flops
    )
    # The shares train together: one data set on the device, with each row's share, and
    # chunks up to the memory cap over every share's probes.
    assert estimate_cost("probe", four, shape).data_bytes == pytest.approx(
        estimate_cost("probe", one, shape).data_bytes + 3 * 1000, rel=0
    )


@pytest.fixture(scope="module")
def family_advice():
    family = make_task_family(n_rows=800, n_features=16, relatedness=(0.95,), n_noise=1, seed=0)
    calls: list[tuple[int, int]] = []
    advice = advise(
        family.frame,
        family.main,
        list(family.candidates),
        seed=0,
        main_train_fractions=[0.1, 0.5, 1.0],
        progress=lambda done, total: calls.append((done, total)),
        **QUICK,
    )
    return family, advice, calls


def test_each_share_is_the_job_at_that_share(family_advice):
    family, advice, _ = family_advice
    assert [f.main_train_fraction for f in advice.fractions] == [0.1, 0.5, 1.0]
    # A share's answer is what a job at that main_train_fraction alone gives: the same
    # splits, initialisation, minibatch order, so the same numbers (up to the float
    # rounding of training in a batch with the other shares' probes).
    alone = advise(
        family.frame, family.main, list(family.candidates), seed=0, main_train_fraction=0.1, **QUICK
    )
    share = advice.fractions[0]
    assert share.main_train < advice.fractions[-1].main_train
    for c in alone.candidates:
        mine = next(x for x in share.candidates if x.name == c.name)
        assert mine.per_seed == pytest.approx(c.per_seed, rel=1e-4, abs=1e-6)
    # One progress bar over the three shares' runs.
    calls = family_advice[2]
    assert {total for _, total in calls} == {3 * 3 * (1 + 2) * 30}
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert calls[-1][0] == calls[-1][1]
    # The headline is the largest share's.
    assert advice.candidates == advice.fractions[-1].candidates
    assert advice.runs == advice.fractions[-1].runs


def test_to_frame_has_a_row_per_candidate_and_share(family_advice):
    family, advice, _ = family_advice
    frame = advice.to_frame()
    assert len(frame) == len(family.candidates) * 3
    assert set(frame.groupby("candidate")["main_train_fraction"].apply(tuple)) == {(0.1, 0.5, 1.0)}
    assert {
        "gain",
        "ci_low",
        "ci_high",
        "verdict",
        "aux_only_rows",
        "persists",
        "fade",
        "hint",
    } <= set(frame.columns)
    # Fewer main labels leave more candidate-labelled rows without a main label.
    rows = frame[frame["candidate"] == family.candidates[0]]
    assert rows["aux_only_rows"].is_monotonic_decreasing
    assert advice.to_dict()["fractions"][0]["main_train_fraction"] == 0.1


def test_most_related_candidate_helps_most_with_few_main_labels(family_advice):
    family, advice, _ = family_advice
    best = max(family.relatedness, key=family.relatedness.get)
    gains = [next(c for c in f.candidates if c.name == best).gain for f in advice.fractions]
    assert gains[0] > gains[-1], gains
    assert gains[0] > 0
    hint = next(h for h in advice.hints if h.name == best)
    assert hint.gains == pytest.approx(gains)
    # The fade is the paired difference over the replicates both shares ran (all three
    # here, without racing): the same as the difference of the mean gains.
    assert hint.fade_n == 3
    assert hint.fade == pytest.approx(gains[0] - gains[-1])
    # Without main labels the baseline is worse: the curve's other half.
    base = [f.baseline.metrics["loss"] for f in advice.fractions]
    assert base[0] > base[-1]


def test_without_the_option_the_advice_keeps_its_shape():
    family = make_task_family(n_rows=300, n_features=8, relatedness=(0.9,), n_noise=1, seed=1)
    advice = advise(
        family.frame, family.main, list(family.candidates), seed=1, main_train_fraction=0.5, **QUICK
    )
    assert advice.fractions == ()
    assert advice.hints == ()
    frame = advice.to_frame()
    assert "main_train_fraction" not in frame.columns
    assert len(frame) == len(family.candidates)
    assert advice.budget["main_train_fractions"] == ()


def test_the_gap_hint_is_the_paired_train_validation_gap_of_the_runs(family_advice):
    """Each candidate's train–validation gap hint is the main head's validation loss
    minus its training loss (ProbeRun.fit), with it against without it, over the
    replicates of each share; stated as a hint, never a claim."""
    family, advice, _ = family_advice
    for hint in advice.hints:
        index = list(family.candidates).index(hint.name)
        for i, fraction in enumerate(advice.fractions):
            base = {
                r.spec.replicate: r.fit["val_loss"] - r.fit["train_loss"]
                for r in fraction.runs
                if r.spec.is_baseline
            }
            with_it = {
                r.spec.replicate: r.fit["val_loss"] - r.fit["train_loss"]
                for r in fraction.runs
                if r.spec.aux == (index,)
            }
            assert set(base) == set(with_it) == {0, 1, 2}
            mean_base = np.mean(list(base.values()))
            mean_with = np.mean(list(with_it.values()))
            assert hint.gap_base[i] == pytest.approx(mean_base)
            assert hint.gap_with[i] == pytest.approx(mean_with)
            assert hint.gap_change[i] == pytest.approx(mean_with - mean_base)
        assert hint.gap_text is not None
        assert hint.gap_text.startswith("Hint: at 0.1 of the main labels")
        # "Narrower" only when the paired interval of the change lies below zero.
        changes = [with_it[r] - base[r] for r in (0, 1, 2)]  # (of the last share)
        assert hint.gap_change_ci_low[-1] < np.mean(changes) < hint.gap_change_ci_high[-1]
        narrower = hint.gap_change_ci_high[0] < 0
        assert ("consistent with regularisation" in hint.gap_text) == narrower
    # With a tenth of the main labels the model fits its few training rows far better
    # than held-out ones: the baseline's gap is wider there than with all of them.
    assert advice.hints[0].gap_base[0] > advice.hints[0].gap_base[-1]
    assert "gap_change" in advice.to_frame().columns


def _same_answer(batched, reference):
    """Two answers at one share agree: the same rounds, probes, verdicts and seeds, and
    the same numbers up to float rounding."""
    assert batched.rounds == reference.rounds
    assert [r.spec for r in batched.runs] == [r.spec for r in reference.runs]
    for a, b in zip(batched.runs, reference.runs, strict=True):
        assert a.epochs == b.epochs
        assert a.best_epoch == b.best_epoch
        assert a.metrics == pytest.approx(b.metrics, rel=1e-4, abs=1e-6)
    for a, b in zip(batched.candidates, reference.candidates, strict=True):
        assert (a.name, a.verdict, a.seeds, a.rank) == (b.name, b.verdict, b.seeds, b.rank)
        assert (a.gain, a.ci_low, a.ci_high) == pytest.approx(
            (b.gain, b.ci_low, b.ci_high), rel=1e-4, abs=1e-6
        )


def test_shares_train_together_and_answer_as_one_run_per_share():
    """The shares' probes train in one batch per racing round, each share racing on its
    own: every share's answer is the one of a whole run at that share (the reference,
    engine.fractions.share_by_share), and the job takes one chunk per round, not one
    per share and round."""
    family = make_task_family(n_rows=600, seed=0)  # 8 candidates
    # Racing: 5 replicates, then 5 more.
    knobs = {"epochs": 8, "hidden": (64, 32), "max_replicates": 10}
    shares = [0.1, 0.3, 1.0]
    calls: list[tuple[int, int]] = []
    batched = advise(
        family.frame,
        family.main,
        list(family.candidates),
        seed=0,
        main_train_fractions=shares,
        progress=lambda done, total: calls.append((done, total)),
        **knobs,
    )
    problem = prepare(family.frame, family.main, list(family.candidates))
    plan = recipe_budget("full", main_train_fractions=shares, **knobs)
    reference = share_by_share(
        problem,
        plan,
        [(share, splits_at(problem, plan, share, 0)) for share in shares],
        seed=0,
        device="cpu",
        metric="loss",
        interval="naive",
        method="probe",
        recipe="full",
    )
    # The shares raced apart: at some share fewer candidates stayed open.
    assert len({len(f.runs) for f in reference.fractions}) > 1
    for a, b in zip(batched.fractions, reference.fractions, strict=True):
        assert a.main_train_fraction == b.main_train_fraction
        assert a.main_train == b.main_train
        _same_answer(a, b)
    assert batched.chunks == max(f.rounds for f in batched.fractions) < reference.chunks
    # A memory cap of about one replicate's probes at one share: the rounds train in
    # chunks under it, and the answers stay the same.
    cap = 9 * probe_bytes(problem, plan, 1) / 2**20
    capped = advise(
        family.frame,
        family.main,
        list(family.candidates),
        seed=0,
        main_train_fractions=shares,
        memory_mb=cap,
        **knobs,
    )
    assert capped.chunks >= sum(len(f.runs) for f in capped.fractions) // 9
    for a, b in zip(capped.fractions, reference.fractions, strict=True):
        _same_answer(a, b)
    for a, b in zip(batched.hints, reference.hints, strict=True):
        assert a.gains == pytest.approx(b.gains, rel=1e-4, abs=1e-6)
    # One progress bar over every share, planned as for one run per share.
    assert {total for _, total in calls} == {planned_epochs("probe", plan, 8)}
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert calls[-1][0] == calls[-1][1]
