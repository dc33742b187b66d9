"""Offline verdict rules: rescoring saved gains reproduces the engine, and the rules are
scored against the references the way the benchmark scores them."""

import numpy as np
import pandas as pd
import pytest

import engine
from benchmarks.validity.rules import RULES, Rule, compare, rescore
from benchmarks.validity.v2 import prediction_frame


@pytest.mark.parametrize(
    ("interval", "fdr", "rule"),
    [("naive", "storey", RULES[-1]), ("naive", "bh", RULES[1]), ("corrected", "bh", RULES[0])],
)
def test_rescoring_under_the_jobs_rule_reproduces_the_job(interval, fdr, rule):
    family = engine.make_task_family(n_rows=400, n_features=8, relatedness=(0.95, 0.5), seed=0)
    advice = engine.advise(
        family.frame,
        family.main,
        list(family.candidates),
        recipe="quick",
        seed=0,
        seeds=3,
        race_step=3,
        max_replicates=6,
        interval=interval,
        fdr=fdr,
    )
    assert rule.interval == interval
    assert rule.fdr == fdr
    job = prediction_frame(advice).reset_index()
    assert set(job.interval) == {interval}
    scored = rescore(job, rule)
    for c in advice.candidates:
        assert scored.loc[c.name, "gain"] == pytest.approx(c.gain, abs=1e-8)
        assert scored.loc[c.name, "ci_low"] == pytest.approx(c.ci_low, abs=1e-6)
        assert scored.loc[c.name, "ci_high"] == pytest.approx(c.ci_high, abs=1e-6)
        assert scored.loc[c.name, "verdict"] == c.verdict


def _write_run(path, per_seed, signs, family_class="reliable"):
    names = [f"c{i}" for i in range(len(per_seed))]
    pd.DataFrame(
        {
            "candidate": names,
            "per_seed": [" ".join(map(str, g)) for g in per_seed],
            "test_train_ratio": 0.5,
            "confidence": 0.975,  # two looks
            "family": "fam",
            "method": "probe",
            "job": 0,
        }
    ).to_csv(path / "predictions.csv", index=False)
    pd.DataFrame(
        {"candidate": names, "gain": [float(np.mean(g)) for g in per_seed], "sign": signs}
    ).assign(family="fam").to_csv(path / "references.csv", index=False)
    pd.DataFrame({"family": ["fam"], "class": [family_class]}).to_csv(
        path / "families.csv", index=False
    )


def test_a_narrower_interval_calls_what_the_corrected_one_does_not(tmp_path):
    steady = [0.010, 0.012, 0.011, 0.009, 0.010, 0.011, 0.012, 0.010, 0.009, 0.011]
    noise = [0.01, -0.01] * 5
    # A steady gain is called under both rules and alternating noise under neither; a
    # real but noisy gain is called only without the corrected interval's s²·ratio term
    # (ratio 0.5 here), which ten replicates cannot shrink.
    separating = [0.02, 0.0, 0.015, 0.005, 0.02, 0.0, 0.015, 0.005, 0.02, 0.0]
    _write_run(tmp_path, [steady, noise, separating], signs=[1, 0, 1])
    table = compare(
        [tmp_path],
        "probe",
        [Rule("corrected", "corrected"), Rule("naive", "naive")],
    )
    assert table.loc["corrected", "helpful calls"] == 1
    assert table.loc["naive", "helpful calls"] == 2
    assert table.loc["naive", "helpful precision"] == 1.0
    assert table.loc["corrected", "helpful recall"] == 0.5
    assert table.loc["naive", "helpful recall"] == 1.0


def test_calls_on_a_null_family_are_counted_as_null_claims(tmp_path):
    steady = [0.010, 0.012, 0.011, 0.009, 0.010, 0.011, 0.012, 0.010, 0.009, 0.011]
    noise = [0.01, -0.01] * 5
    _write_run(tmp_path, [steady, noise], signs=[0, 0], family_class="null")
    table = compare([tmp_path], "probe", [Rule("naive", "naive")])
    # The family class is the string "null", which must not be read as a missing value.
    assert table.loc["naive", "null-family claims / candidates"] == 0.5
    assert table.loc["naive", "helpful calls"] == 0  # pooled over reliable families only
