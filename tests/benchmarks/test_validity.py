"""The validity study's code: agreement metrics on hand-made examples, the correlation
baseline, the reference trainer and the runner end to end on a tiny scenario."""

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

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
    summarise_truth,
)
from engine import Budget, SpecError, TaskSpec, advise, make_task_family

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


def test_material_counts_take_only_gains_of_at_least_one_percent():
    """The issue's bar for a truly helpful reference: significant and at least 1% of the
    baseline's loss. d is significant but 0.5%: a call on it is no longer right, and it
    is no longer a gain to find."""
    truth = TRUTH.assign(rel_gain=[0.03, 0.01, -0.01, 0.005, -0.02])
    verdicts = VERDICTS.copy()
    verdicts["d"] = "helpful"
    row = agreement(PREDICTED, truth, verdicts)
    assert (row["helpful_called"], row["helpful_right"], row["truly_helpful"]) == (4, 2, 2)
    assert (row["helpful_right_material"], row["truly_helpful_material"]) == (1, 1)
    assert "helpful_right_material" not in agreement(PREDICTED, TRUTH, VERDICTS)


def test_reference_summary_gives_gains_relative_to_the_baseline_loss():
    runs = pd.DataFrame(
        {
            "replicate": [0, 0, 1, 1],
            "config": ["", "a", "", "a"],
            "loss": [0.50, 0.49, 0.30, 0.28],
            "secondary": [0.0, 0.0, 0.0, 0.0],
        }
    )
    summary = summarise_truth(runs, ["a"])
    assert summary.loc["a", "gain"] == pytest.approx(0.015)
    assert summary.loc["a", "rel_gain"] == pytest.approx(0.015 / 0.40)


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

    # The first default job is exactly the job a user runs with this seed, without
    # racing (the v1 study trains a fixed number of replicates).
    advice = advise(
        scenario.frame,
        scenario.main,
        list(scenario.candidates),
        seed=0,
        features=list(scenario.features),
        main_train_fraction=scenario.main_train_fraction,
        max_replicates=Budget().seeds,
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


# ------------------------------------------------------------------ benchmark v2


def test_halves_are_stable_when_a_family_is_added():
    from benchmarks.validity.halves import assign

    kinds = {f"fam{i}": ("a" if i % 3 else "b") for i in range(11)}
    before = assign(kinds)
    assert before == assign(kinds)  # deterministic
    for kind in ("a", "b"):
        members = [before[f] for f, k in kinds.items() if k == kind]
        assert abs(members.count("tune") - members.count("report")) <= 1
    for new, kind in [("zeta", "a"), ("omega", "b"), ("brand-new-kind", "c"), ("fam99", "a")]:
        after = assign(kinds | {new: kind}, existing=before)
        assert {f: after[f] for f in before} == before  # nobody moves
        assert after[new] in ("tune", "report")
    # Adding several families one by one keeps every earlier placement too.
    grown = dict(before)
    for i in range(20, 30):
        kinds[f"fam{i}"] = "a"
        placed = assign(kinds, existing=grown)
        assert {f: placed[f] for f in grown} == grown
        grown = placed
    members = [grown[f] for f, k in kinds.items() if k == "a"]
    assert abs(members.count("tune") - members.count("report")) <= 1


def test_committed_halves_cover_every_family_and_nothing_else():
    from benchmarks.validity import halves
    from benchmarks.validity.families import FAMILIES, SANITY, kinds

    assignment = halves.load()
    assert set(assignment) == set(FAMILIES)
    assert SANITY.name not in assignment  # the synthetic family is in neither half
    assert halves.assign(kinds(), existing=assignment) == assignment
    body = json.loads(halves.ASSIGNMENT.read_text())
    assert {f: e["kind"] for f, e in body["families"].items()} == kinds()
    for kind in set(kinds().values()):
        placed = {assignment[f] for f, k in kinds().items() if k == kind}
        assert placed == {"tune", "report"}
    assert len(FAMILIES) >= 14


REFERENCE_MODULES = ("truth.py", "references.py")


def test_the_reference_code_path_imports_nothing_from_the_engine():
    import ast

    folder = Path(__file__).parents[2] / "benchmarks" / "validity"
    for name in REFERENCE_MODULES:
        tree = ast.parse((folder / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] != "engine", f"{name} imports {module}"
    # Not even indirectly: importing the reference modules loads no engine module.
    code = (
        "import sys, benchmarks.validity.truth, benchmarks.validity.references; "
        "bad = [m for m in sys.modules if m == 'engine' or m.startswith('engine.')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


TINY_RECIPE = TruthConfig(hidden=(16,), max_epochs=15, patience=3)


def test_references_grow_in_batches_and_are_cached(tmp_path):
    from benchmarks.validity.references import ReferencePlan, build_reference

    scenario = _family_scenario(300)
    plan = ReferencePlan(first=2, step=2, max_replicates=6, target=1.01)  # never reached
    built = build_reference(scenario, seed=0, recipe=TINY_RECIPE, plan=plan, cache=tmp_path)
    assert built.replicates == 6  # the cap is the stated cost
    assert sorted(built.runs.replicate.unique()) == list(range(6))
    assert built.cached == 0
    assert built.label in ("noisy", "null")
    assert len(list(tmp_path.glob("*.csv"))) == 3
    again = build_reference(scenario, seed=0, recipe=TINY_RECIPE, plan=plan, cache=tmp_path)
    assert again.cached == 3
    pd.testing.assert_frame_equal(again.runs, built.runs, check_dtype=False)
    assert again.seconds == pytest.approx(built.seconds)
    # A batch grown later is the same as replicates computed in one go.
    whole = full_training(scenario, seed=0, config=replace(TINY_RECIPE, seeds=4))
    pd.testing.assert_frame_equal(
        whole.runs.sort_values(["replicate", "config"]).reset_index(drop=True),
        built.runs[built.runs.replicate < 4]
        .sort_values(["replicate", "config"])
        .reset_index(drop=True),
        check_dtype=False,
        atol=1e-4,
        rtol=1e-3,
    )
    # Another recipe is another reference; rebuild recomputes.
    other = replace(TINY_RECIPE, dropout=0.1, weight_decay=1e-4)
    fresh = build_reference(scenario, seed=0, recipe=other, plan=plan, cache=tmp_path)
    assert fresh.cached == 0
    rebuilt = build_reference(
        scenario, seed=0, recipe=TINY_RECIPE, plan=plan, cache=tmp_path, rebuild=True
    )
    assert rebuilt.cached == 0
    # cached_only uses what is there and computes nothing.
    from benchmarks.validity.references import NotCachedError

    partial_plan = replace(plan, max_replicates=10)
    kept = build_reference(
        scenario, seed=0, recipe=TINY_RECIPE, plan=partial_plan, cache=tmp_path, cached_only=True
    )
    assert kept.replicates == 6
    assert kept.cached == 3
    assert kept.label == "incomplete"  # neither the target nor the 10-replicate cap
    with pytest.raises(NotCachedError):
        build_reference(
            scenario, seed=1, recipe=TINY_RECIPE, plan=plan, cache=tmp_path, cached_only=True
        )
    # Reaching the target stops early.
    # Reaching the target stops early once the minimum is done; the default minimum is
    # the cap (per-candidate intervals), reusing the cached batches.
    easy = ReferencePlan(first=2, step=2, max_replicates=6, target=-1.0, min_replicates=0)
    early = build_reference(scenario, seed=0, recipe=TINY_RECIPE, plan=easy, cache=None)
    assert early.replicates == 4  # the first split-half needs 4 replicates
    grown = build_reference(
        scenario,
        seed=0,
        recipe=TINY_RECIPE,
        plan=ReferencePlan(first=2, step=2, max_replicates=6, target=-1.0),
        cache=tmp_path,
    )
    assert grown.replicates == 6
    assert grown.cached == 3
    assert grown.label == "reliable"


def test_reference_labels_and_recipe_parsing():
    from benchmarks.validity.references import ReferencePlan, label_of
    from benchmarks.validity.v2 import parse_recipe

    plan = ReferencePlan()
    assert [label_of(v, plan) for v in (0.7, 0.6, 0.4, 0.1, math.nan)] == [
        "reliable",
        "reliable",
        "noisy",
        "null",
        "null",
    ]
    recipe = parse_recipe("hidden=128,32+dropout=0.1+weight_decay=1e-4+max_epochs=50")
    assert (recipe.hidden, recipe.dropout, recipe.weight_decay, recipe.max_epochs) == (
        (128, 32),
        0.1,
        1e-4,
        50,
    )
    with pytest.raises(ValueError, match="expected one of"):
        parse_recipe("widths=3")


def test_mutual_information_and_prediction_baselines():
    from benchmarks.validity.baselines import mutual_information, prediction_correlation

    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    assert (
        mutual_information(x, x + 0.1 * rng.normal(size=2000), x_discrete=False, y_discrete=False)
        > 1.0
    )
    assert (
        abs(mutual_information(x, rng.normal(size=2000), x_discrete=False, y_discrete=False)) < 0.02
    )
    labels = (x > 0).astype(float)
    labels[:100] = np.nan
    assert mutual_information(x, labels, x_discrete=False, y_discrete=True) > 0.4
    assert math.isnan(mutual_information(x[:5], x[:5], x_discrete=False, y_discrete=False))

    scenario = _family_scenario(400)
    scores = prediction_correlation(scenario)
    assert scores.idxmax() == "rel_0_0.95"
    assert scores.between(0, 1).all()
    # A candidate from another table (different rows, same features) is scored too.
    other = scenario.frame.iloc[::-1].reset_index(drop=True)[[*scenario.features, "rel_0_0.95"]]
    cross = replace(
        scenario,
        candidates=(*scenario.candidates, TaskSpec("rel_0_0.95", "regression", "far", "t")),
        tables={"t": other.iloc[:200]},
    )
    assert prediction_correlation(cross)["far"] > 0.5


def test_half_summary_and_paired_bootstrap():
    from benchmarks.validity.v2 import bootstrap_difference, summarise_half

    rows = []
    for i in range(6):
        cls = "reliable" if i < 5 else "null"
        for method, rho in [("probe", 0.6 + 0.01 * i), ("correlation", 0.2)]:
            rows.append(
                {
                    "family": f"f{i}",
                    "kind": "k",
                    "half": "report",
                    "class": cls,
                    "method": method,
                    "jobs": 2,
                    "spearman": rho,
                    "kendall": rho / 2,
                    "top3": 0.5,
                    "ceiling": 0.9,
                    "seconds": 2.0,
                    "compute_ratio": 0.1,
                    "helpful_called": 2.0 if method == "probe" else math.nan,
                    "helpful_right": 1.0 if method == "probe" else math.nan,
                    "truly_helpful": 4.0 if method == "probe" else math.nan,
                    "harmful_called": 1.0,
                    "harmful_right": 0.0,
                    "truly_harmful": 0.0,
                    "wrong_direction": 0.0,
                    "claims": 3.0,
                    "null_claims": 3.0 if cls == "null" else 0.0,
                    "severe_wrong_sign": 1.0 if i == 0 else 0.0,
                }
            )
    table = pd.DataFrame(rows)
    verdict_columns = ["harmful_called", "harmful_right", "truly_harmful", "wrong_direction"]
    verdict_columns += ["claims", "null_claims", "severe_wrong_sign"]
    table.loc[table.method == "correlation", verdict_columns] = math.nan  # no verdicts
    means, diffs = summarise_half(table, previous="probe", resamples=999)
    probe = means.set_index("method").loc["probe"]
    assert probe["reliable families"] == 5
    assert probe["families"] == 6
    assert probe["Spearman"] == pytest.approx(0.62)  # the null family does not count
    assert probe["helpful precision"] == pytest.approx(0.5)
    assert probe["helpful recall"] == pytest.approx(0.25)
    assert probe["severe wrong-sign per job"] == pytest.approx(0.5)
    assert probe["null-family claims per job"] == pytest.approx(1.5)
    baseline = means.set_index("method").loc["correlation"]
    assert math.isnan(baseline["helpful precision"])  # a baseline makes no claims
    assert math.isnan(baseline["severe wrong-sign per job"])
    row = diffs.set_index(["method", "minus"]).loc[("probe", "correlation")]
    assert row["mean difference"] == pytest.approx(0.42)
    assert row["95% low"] > 0
    assert row["beats"]
    assert not row["worse"]
    mean, low, high, n = bootstrap_difference([1.0, 2.0], [0.0, 0.0])
    assert (mean, n) == (1.5, 2)
    assert math.isnan(low)
    assert math.isnan(high)
    mean, low, high, n = bootstrap_difference([0.1, -0.2, 0.3, -0.1], [0, 0, 0, 0], resamples=999)
    assert low < 0 < high


def test_benchmark_v2_end_to_end_on_a_tiny_family(tmp_path):
    from benchmarks.validity.families import Family
    from benchmarks.validity.references import ReferencePlan
    from benchmarks.validity.v2 import BenchConfig, per_family, render, run_family

    scenario = _family_scenario(300)
    family = Family("tiny", "synthetic", lambda **_: scenario)
    config = BenchConfig.make(
        quick=True,
        recipe=TINY_RECIPE,
        plan=ReferencePlan(first=4, step=4, max_replicates=4),
        reference_cache=tmp_path,
        jobs=2,
        half="report",
    )
    result = run_family(family, "report", config, log=lambda _: None)
    assert result.reference.replicates == 4
    jobs = result.scores.groupby("method").size().to_dict()
    # Today's default (the full recipe, racing) beside the previous one (quick).
    assert jobs == {
        "probe": 2,
        "probe@quick": 2,
        "correlation": 1,
        "mutual_info": 1,
        "prediction": 1,
    }
    probe = result.scores[result.scores.method == "probe"]
    assert probe.spearman.between(-1, 1).all()
    # Each candidate's per-replicate gains and the job's n_test/n_train are kept, so
    # another verdict rule can be scored without retraining.
    rows = result.predictions[result.predictions.method == "probe"]
    assert (rows.test_train_ratio > 0).all()
    assert (rows.per_seed.str.split().map(len) == rows.seeds.astype(int)).all()
    assert (probe.compute_ratio > 0).all()
    assert {"severe_wrong_sign", "claims", "ceiling"} <= set(probe.columns)
    table = per_family([result])
    assert set(table.method) == {"probe", "probe@quick", "correlation", "mutual_info", "prediction"}
    text = render([result], config, 1.0)
    assert "REPORT half" in text
    assert "## Families" in text


def test_a_benchmark_method_names_its_recipe_and_budget_options():
    from benchmarks.validity.v2 import engine_method

    assert engine_method("probe") == ("probe", "full", {})
    assert engine_method("screen+probe@quick") == ("screen+probe", "quick", {})
    name, recipe, knobs = engine_method("probe@full+dropout=0.1+hidden=128,32+max_replicates=5")
    assert (name, recipe) == ("probe", "full")
    assert knobs == {"dropout": 0.1, "hidden": (128, 32), "max_replicates": 5}
    assert isinstance(knobs["max_replicates"], int)
    soft = engine_method("probe@quick+sharing=soft_trace+coupling=0.5")
    assert soft == ("probe", "quick", {"sharing": "soft_trace", "coupling": 0.5})
    with pytest.raises(ValueError, match="budget options"):
        engine_method("probe@full+widths=3")
    with pytest.raises(SpecError, match="Unknown recipe"):
        engine_method("probe@slow")


@pytest.mark.parametrize(
    "name", sorted(__import__("benchmarks.validity.families", fromlist=["FAMILIES"]).FAMILIES)
)
def test_every_family_loads_from_the_project_within_the_issue_bounds(name):
    from benchmarks.validity.families import FAMILIES, shrink
    from benchmarks.validity.v2 import main_train_labels

    scenario = FAMILIES[name].load()
    assert 5 <= len(scenario.candidates) <= 15
    assert len(set(scenario.candidate_names)) == len(scenario.candidates)
    assert 50 <= main_train_labels(scenario, TruthConfig()) <= 3000
    for table in [scenario.frame, *scenario.tables.values()]:
        assert not table[list(scenario.features)].isna().any().any()
    for task in scenario.candidates:
        assert task.column in scenario.table_of(task)
    small = shrink(scenario)
    assert len(small.frame) <= 300
    assert len(small.candidates) <= 5


def test_every_family_hashes_the_same_in_every_process():
    """The reference cache is keyed on the family's data hash: a family built in a
    hash-seed-dependent order (a set of columns) would miss its cache in the next run."""
    script = (
        "from benchmarks.validity.families import FAMILIES\n"
        "from benchmarks.validity.references import data_hash\n"
        "for name in sorted(FAMILIES): print(name, data_hash(FAMILIES[name].load()))\n"
    )
    hashes = [
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[2],
        ).stdout
        for seed in ("1", "2")
    ]
    assert len(hashes[0].splitlines()) >= 14
    assert hashes[0] == hashes[1]


def test_reference_metrics_survive_a_test_set_with_one_label_value():
    from benchmarks.validity.truth import test_metrics

    loss, r2 = test_metrics(np.array([[0.5], [0.0]]), np.array([0.0, 0.0]), "regression")
    assert loss == pytest.approx(0.125)
    assert math.isnan(r2)


def test_a_failing_family_is_named_and_the_others_still_run(monkeypatch, tmp_path):
    from benchmarks.validity import v2
    from benchmarks.validity.families import Family
    from benchmarks.validity.references import ReferencePlan

    def broken(**_):
        raise RuntimeError("no such table")

    good = Family("good", "synthetic", lambda **_: _family_scenario(300))
    families = [(Family("broken", "synthetic", broken), "tune"), (good, "tune")]
    monkeypatch.setattr(v2, "families_for", lambda config: families)
    config = v2.BenchConfig.make(
        quick=True,
        recipe=TINY_RECIPE,
        plan=ReferencePlan(first=4, step=4, max_replicates=4),
        reference_cache=tmp_path,
        methods=("correlation",),
    )
    failed: list[str] = []
    results = v2.run_half(config, log=lambda _: None, failed=failed)
    assert failed == ["broken"]
    assert [r.family for r in results] == ["good"]
