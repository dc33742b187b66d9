"""The offline blend of probe gain and label evidence is scored like a method."""

import pandas as pd
import pytest

from benchmarks.validity.blend import blended, compare, main


def _write_run(path, family_class="reliable"):
    # Reference order c0 > c1 > c2 > c3; the probe swaps c0 and c1 ... the evidence
    # (in absolute value) has the reference's order exactly.
    names = ["c0", "c1", "c2", "c3"]
    pd.DataFrame(
        {
            "candidate": names,
            "gain": [0.02, 0.03, 0.01, 0.00],
            "label_correlation": [-0.9, 0.6, 0.3, float("nan")],
            "family": "fam",
            "method": "probe",
            "job": 0,
        }
    ).to_csv(path / "predictions.csv", index=False)
    pd.DataFrame(
        {"candidate": names, "gain": [0.04, 0.03, 0.02, 0.01], "sign": [1, 1, 0, 0]}
    ).assign(family="fam").to_csv(path / "references.csv", index=False)
    pd.DataFrame({"family": ["fam"], "class": [family_class]}).to_csv(
        path / "families.csv", index=False
    )


def test_the_blend_ranks_by_gain_at_zero_and_by_evidence_at_one(tmp_path):
    _write_run(tmp_path)
    job = pd.read_csv(tmp_path / "predictions.csv")
    # Ranks within the job: gain c3 < c2 < c0 < c1; |evidence| c3 (none) < c2 < c1 < c0.
    assert blended(job, 0.0, "label_correlation").to_dict() == {
        "c0": 3.0,
        "c1": 4.0,
        "c2": 2.0,
        "c3": 1.0,
    }
    assert blended(job, 1.0, "label_correlation").idxmax() == "c0"
    table = compare([tmp_path], "probe", [0.0, 0.5, 1.0], "label_correlation")
    # The probe alone swaps the top two: Spearman 0.8; the evidence alone is exact.
    assert table.loc["fam", 0.0] == pytest.approx(0.8)
    assert table.loc["fam", 1.0] == pytest.approx(1.0)
    assert table.loc["mean", 0.5] == table.loc["fam", 0.5]


def test_only_reliable_families_are_scored(tmp_path, capsys):
    _write_run(tmp_path, family_class="null")
    table = compare([tmp_path], "probe", [0.0], "label_correlation")
    assert "fam" not in table.index
    _write_run(tmp_path)
    assert main([str(tmp_path), "--weights", "0,1"]) == 0
    assert "fam" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--weights", "2"])
