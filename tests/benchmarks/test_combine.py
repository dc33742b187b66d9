"""Runs of one half made in separate processes are scored together as one run."""

import pandas as pd
import pytest

from benchmarks.validity import combine
from benchmarks.validity.v2 import COUNTS


def _per_family(path, rows):
    path.mkdir()
    frame = pd.DataFrame(rows).assign(
        kind="multilabel",
        half="report",
        jobs=2,
        kendall=0.0,
        top3=0.0,
        ceiling=0.9,
        seconds=1.0,
        compute_ratio=0.1,
        claims=0,
        null_claims=0,
        severe_wrong_sign=0,
    )
    for name in COUNTS:
        frame[name] = 0
    frame.to_csv(path / "per_family.csv", index=False)


def _rows(family, probe, correlation):
    return [
        {"family": family, "class": "reliable", "method": "probe", "spearman": probe},
        {"family": family, "class": "reliable", "method": "correlation", "spearman": correlation},
    ]


def test_two_runs_are_scored_as_one(tmp_path, capsys):
    _per_family(tmp_path / "a", _rows("f1", 0.9, 0.1) + _rows("f2", 0.6, 0.4))
    _per_family(tmp_path / "b", _rows("f3", 0.3, 0.4))
    _table, means, diffs = combine.combined([tmp_path / "a", tmp_path / "b"], "probe@quick")
    probe = means.set_index("method").loc["probe"]
    assert probe["reliable families"] == 3
    assert probe["Spearman"] == pytest.approx(0.6)
    (difference,) = diffs[diffs.method == "probe"].to_dict("records")
    assert difference["minus"] == "correlation"
    assert difference["families"] == 3
    assert difference["mean difference"] == pytest.approx((0.8 + 0.2 - 0.1) / 3)
    assert combine.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "f3" in capsys.readouterr().out
    # The soft-sharing tables of the runs that have one are printed together.
    (tmp_path / "a" / "sharing.csv").write_text("\n")
    pd.DataFrame({"family": ["f3"], "hard vs soft advice": [0.25]}).to_csv(
        tmp_path / "b" / "sharing.csv", index=False
    )
    assert combine.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "hard vs soft advice" in capsys.readouterr().out


def test_a_family_scored_twice_is_refused(tmp_path):
    _per_family(tmp_path / "a", _rows("f1", 0.9, 0.1))
    _per_family(tmp_path / "b", _rows("f1", 0.5, 0.1))
    with pytest.raises(SystemExit):
        combine.main([str(tmp_path / "a"), str(tmp_path / "b")])
