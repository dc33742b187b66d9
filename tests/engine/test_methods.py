"""Methods ``screen+probe`` and ``probe`` with subset search on a table with a known
answer, and the pieces they are built from."""

import json
import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from engine import (
    Budget,
    SpecError,
    advise,
    choose_confirmations,
    make_task_family,
    planned_epochs,
    proxy_order,
    rank_agreement,
    recipe_budget,
)
from engine.methods import Stages

# 128 wide: the width the proxies were checked at. With the 32-wide default trunk,
# lookahead still ranks this family at rho 0.73 but grad_cosine only at 0.15.
BUDGET = {
    "seeds": 5,
    "epochs": 30,
    "main_train_fraction": 0.05,
    "hidden": (128,),
    "recipe": "quick",
    "max_replicates": 5,
}


@pytest.fixture(scope="module")
def family_jobs():
    """The low-data scenario of test_advise, run by full probing (with a subset search)
    and by screen+probe (which confirms 5 best-screened + 2 random of 8 candidates)."""
    family = make_task_family(n_rows=3000, n_features=32, seed=0)
    args = (family.frame, family.main, list(family.candidates))
    progress = {"probe": [], "screen+probe": []}
    full = advise(
        *args,
        seed=0,
        subset_search=True,
        subset_budget=2,
        subset_width=2,
        progress=lambda d, t: progress["probe"].append((d, t)),
        **BUDGET,
    )
    two_stage = advise(
        *args,
        seed=0,
        method="screen+probe",
        progress=lambda d, t: progress["screen+probe"].append((d, t)),
        **BUDGET,
    )
    return family, full, two_stage, progress


def test_screen_and_probe_finds_the_same_top_three(family_jobs):
    _, full, two_stage, _ = family_jobs
    top = [c.name for c in full.candidates[:3]]
    assert [c.name for c in two_stage.candidates[:3]] == top
    assert top[0] == "rel_0_0.95"
    # A confirmed candidate is measured as full probing measures it: the same
    # replicates, initialisation and batches. Up to float32 rounding: the batch holds
    # fewer probes, and BLAS may round a matmul's edge tiles differently by a ULP; over
    # 15 epochs of Adam that reaches 1e-4 on a near-zero gain (the engine's batched =
    # sequential tolerance).
    for c in two_stage.candidates:
        if c.probed:
            assert c.gain == pytest.approx(full.candidate(c.name).gain, abs=2e-4)
            assert c.verdict == full.candidate(c.name).verdict


def test_proxies_rank_related_candidates_above_unrelated(family_jobs):
    family, _, two_stage, _ = family_jobs
    truth = [family.relatedness[c] for c in family.candidates]
    for proxy in ("lookahead", "grad_cosine"):
        scores = [two_stage.candidate(c).proxies[proxy] for c in family.candidates]
        rho = spearmanr(truth, scores).statistic
        print(f"{proxy}: spearman with true relatedness {rho:.2f}")
        assert rho >= 0.6, two_stage.to_frame()
    # By the lookahead proxy, the clearly related candidates come first, in order, and
    # every unrelated one after them.
    order = sorted(family.candidates, key=lambda c: -two_stage.candidate(c).proxies["lookahead"])
    assert order[:3] == ["rel_0_0.95", "rel_1_0.80", "rel_2_0.60"]
    assert set(order[3:]) >= {*family.noise, "rel_5_0.00"}


def test_screen_and_probe_reports_its_agreement(family_jobs):
    _, full, two_stage, progress = family_jobs
    agreement = two_stage.agreement
    assert agreement is not None
    assert agreement.proxy == "lookahead"
    assert agreement.n == 7
    assert len(agreement.random) == 2
    assert set(agreement.random) <= set(agreement.confirmed)
    # The five best-screened candidates are all confirmed.
    by_proxy = sorted(two_stage.candidates, key=lambda c: -c.proxies["lookahead"])
    assert {c.name for c in by_proxy[:5]} <= set(agreement.confirmed)
    assert agreement.spearman >= 0.6
    assert agreement.ci_low < agreement.spearman < agreement.ci_high
    # The unconfirmed candidate keeps its proxies, has no gain, and ranks last.
    (skipped,) = [c for c in two_stage.candidates if not c.probed]
    assert skipped.name not in agreement.confirmed
    assert skipped.verdict == "not_probed"
    assert math.isnan(skipped.gain)
    assert math.isnan(skipped.q_value)
    assert skipped.rank == len(two_stage.candidates)
    assert set(skipped.proxies) == {"lookahead", "grad_cosine"}
    # Full probing computes no proxies.
    assert all(c.proxies == {} for c in full.candidates)
    assert full.agreement is None
    # Progress: screening (5 x 10) then 5 x (1 + 7) probes of 30 epochs.
    assert progress["screen+probe"][-1] == (5 * 10 + 5 * 8 * 30,) * 2
    done = [d for d, _ in progress["screen+probe"]]
    assert done == sorted(done)


def test_subset_search_beats_the_best_single_candidate(family_jobs):
    _, full, _, progress = family_jobs
    subset = full.subset
    assert subset is not None
    best = full.candidates[0]
    assert best.verdict == "helpful"
    start = subset.path[0]
    assert start.members == (best.name,)
    assert start.gain == pytest.approx(best.gain)
    assert subset.members[0] == best.name
    assert subset.gain >= best.gain
    assert subset.verdict == "helpful"
    assert subset.evaluated == 2  # one step, trying the next two candidates side by side
    assert subset.stop_reason in {"no_improvement", "budget"}
    accepted = [step.members for step in subset.path if step.accepted]
    assert accepted[-1] == subset.members
    for step in subset.path[1:]:
        assert step.ci_low <= step.gain <= step.ci_high
        assert step.accepted == (step.members in accepted)
    # Subset probes are kept with the job's runs; progress ends at the planned total.
    n_subset_runs = sum(len(r.spec.aux) > 1 for r in full.runs)
    assert n_subset_runs == 5 * subset.evaluated
    total = planned_epochs("probe", recipe_budget(**BUDGET, subset_search=True, subset_budget=2), 8)
    assert progress["probe"][-1] == (total, total)


def test_advice_with_proxies_and_subset_is_json_ready(family_jobs):
    _, full, two_stage, _ = family_jobs
    body = json.loads(json.dumps(two_stage.to_dict(), allow_nan=False))
    assert body["method"] == "screen+probe"
    skipped = next(c for c in body["candidates"] if c["verdict"] == "not_probed")
    assert skipped["gain"] is None
    assert skipped["ci_low"] is None
    assert isinstance(skipped["proxies"]["lookahead"], float)
    assert body["agreement"]["n"] == 7
    assert body["subset"] is None
    frame = two_stage.to_frame()
    assert {"lookahead", "grad_cosine"} <= set(frame.columns)

    body = json.loads(json.dumps(full.to_dict(), allow_nan=False))
    assert body["subset"]["members"][0] == "rel_0_0.95"
    assert body["subset"]["path"][0]["improvement"] is None
    assert "lookahead" not in full.to_frame().columns


def test_proxy_order_and_confirmations():
    scores = [0.1, np.nan, 0.5, 0.3, -0.2, 0.0, 0.4]
    assert proxy_order(scores) == [2, 6, 3, 0, 5, 4, 1]
    plan = Budget(confirm_top=3, confirm_random=2)
    chosen = choose_confirmations(scores, plan, seed=7)
    assert chosen.top == (2, 6, 3)
    assert len(chosen.random) == 2
    assert set(chosen.random) <= {0, 5, 4, 1}
    assert chosen == choose_confirmations(scores, plan, seed=7)
    draws = {choose_confirmations(scores, plan, seed=s).random for s in range(20)}
    assert len(draws) > 1  # the random ones do depend on the seed
    # Fewer candidates than asked for: all of them, once.
    small = choose_confirmations([0.2, 0.1], plan, seed=0)
    assert small.candidates == (0, 1)


def test_rank_agreement_interval():
    rho, low, high, p, n = rank_agreement([1, 2, 3, 4, 5, 6], [0.1, 0.3, 0.2, 0.5, 0.4, 0.9])
    assert n == 6
    assert rho == pytest.approx(1 - 6 * 4 / (6 * 35))
    # Fisher z, Bonett-Wright: atanh(rho) -+ 1.96 sqrt((1 + rho^2 / 2) / 3).
    assert (low, high) == pytest.approx((0.066, 0.992), abs=2e-3)
    assert 0 < p < 0.05
    # NaN pairs are left out; too few pairs give no interval.
    rho, low, high, _, n = rank_agreement([1, 2, np.nan, 3], [1, 2, 3, np.nan])
    assert n == 2
    assert math.isnan(rho)
    assert math.isnan(low)
    # A perfect ranking keeps a finite interval.
    rho, low, high, _, n = rank_agreement(range(7), range(7))
    assert rho == 1
    assert 0 < low < high <= 1


def test_stages_map_each_stage_onto_the_job_total():
    seen = []
    stages = Stages(lambda d, t: seen.append((d, t)), total=100)
    first = stages.stage(20)
    second = stages.stage(50)
    first(10, 20)
    first(20, 20)
    second(25, 50)
    second(50, 50)
    stages.finish()
    assert seen == [(10, 100), (20, 100), (45, 100), (70, 100), (100, 100)]


def test_screen_cannot_search_subsets_and_method_is_checked():
    family = make_task_family(n_rows=300, n_features=6, relatedness=(0.5,), n_noise=1)
    args = (family.frame, "y", list(family.candidates))
    with pytest.raises(SpecError) as info:
        advise(*args, method="screen", subset_search=True)
    assert info.value.field == "budget.subset_search"
    with pytest.raises(SpecError) as info:
        advise(*args, method="tag")
    assert info.value.field == "method"
