"""The validity benchmark's soft-sharing reference (benchmarks/validity/truth.py): its
coupling penalty, its limits, its cache keys, and the soft-sharing table that scores
the soft and hard advice against it."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from benchmarks.validity.references import batch_key
from benchmarks.validity.truth import (
    SMOOTHING,
    HardSharingNet,
    SoftSharingNet,
    TruthConfig,
    coupling_penalty,
    full_training,
)
from tests.benchmarks.test_validity import _family_scenario

TINY = TruthConfig(seeds=3, hidden=(16,), max_epochs=15, patience=3)


def _penalty(net: torch.nn.Module, sharing: str = "soft_l2") -> float:
    return float(coupling_penalty(dict(net.named_parameters()), sharing).detach())


def test_the_coupling_penalty_is_the_squared_distance_of_the_two_trunks():
    torch.manual_seed(0)
    net = SoftSharingNet(2, (3, 2), 1, 1)
    # Both trunks start from the same draws: no distance yet.
    assert _penalty(net) == 0.0
    with torch.no_grad():
        net.aux_trunk[0].weight += 0.5  # 3x2 weights, each 0.5 away
        net.aux_trunk[2].bias -= torch.tensor([1.0, 2.0])
        net.main.weight += 10.0  # heads are not coupled
    assert _penalty(net) == pytest.approx(6 * 0.25 + 1.0 + 4.0)
    # A hard-sharing network has one trunk: nothing to couple.
    assert _penalty(HardSharingNet(2, (3,), 1, 1)) == 0
    # The soft network's main trunk and heads draw the hard network's initial values.
    torch.manual_seed(1)
    hard = HardSharingNet(2, (3, 2), 1, 4)
    torch.manual_seed(1)
    soft = SoftSharingNet(2, (3, 2), 1, 4)
    for name, value in hard.named_parameters():
        assert torch.equal(value, dict(soft.named_parameters())[name])


def _set_layer(layer: torch.nn.Linear, values: list[float]) -> None:
    """A layer's weights (row-major) then bias, from one flat list."""
    with torch.no_grad():
        flat = torch.tensor(values)
        n = layer.weight.numel()
        layer.weight.copy_(flat[:n].reshape(layer.weight.shape))
        layer.bias.copy_(flat[n:])


def test_the_trace_penalty_is_the_trace_norm_of_the_stacked_layers():
    torch.manual_seed(0)
    net = SoftSharingNet(2, (2, 1), 1, 1)
    # Both trunks equal: layer l's [m; m] has rank 1 and singular value sqrt(2)·|m_l|.
    by_layer = [
        torch.cat([net.trunk[i].weight.flatten(), net.trunk[i].bias]).detach() for i in (0, 2)
    ]
    equal = sum(math.sqrt(2) * float(m.norm()) for m in by_layer)
    assert _penalty(net, "soft_trace") == pytest.approx(equal, abs=1e-3)
    # Layer 1 (4 weights + 2 biases): m = (3, 0, ...), a = (0, 4, 0, ...): [m; a] has
    # singular values 4 and 3. Layer 2 (2 weights + 1 bias): m = a = (1, 2, 2): rank 1,
    # singular value sqrt(2)·3. Heads are not coupled.
    _set_layer(net.trunk[0], [3, 0, 0, 0, 0, 0])
    _set_layer(net.aux_trunk[0], [0, 4, 0, 0, 0, 0])
    _set_layer(net.trunk[2], [1, 2, 2])
    _set_layer(net.aux_trunk[2], [1, 2, 2])
    with torch.no_grad():
        net.main.weight += 10.0
    # Smoothed: Σ sqrt(σ² + ε), within 2·sqrt(ε) of the nuclear norm per layer.
    expected = 7 + 3 * math.sqrt(2)
    assert _penalty(net, "soft_trace") == pytest.approx(expected, abs=4 * math.sqrt(SMOOTHING))
    assert _penalty(net, "soft_l2") == pytest.approx(9 + 16)
    # A hard-sharing network has one trunk: nothing to couple.
    assert _penalty(HardSharingNet(2, (3,), 1, 1), "soft_trace") == 0


def test_the_reference_trace_penalty_is_the_engines():
    """The reference imports nothing from the engine, so it computes the penalty itself:
    it must be the penalty the engine's soft_trace probes train with."""
    from engine import soft

    assert SMOOTHING == soft.SMOOTHING
    torch.manual_seed(2)
    net = SoftSharingNet(3, (4, 2), 1, 1)
    with torch.no_grad():
        for p in net.aux_trunk.parameters():
            p.add_(0.3 * torch.randn(p.shape))
    params = dict(net.named_parameters())
    pairs = [
        tuple(
            torch.cat(
                [params[f"{side}trunk.{i}.weight"].flatten(), params[f"{side}trunk.{i}.bias"]]
            )[None]
            for side in ("", "aux_")
        )
        for i in (0, 2)
    ]
    for sharing in ("soft_l2", "soft_trace"):
        engine_value = float(soft.coupling_penalty(pairs, sharing).detach())
        assert _penalty(net, sharing) == pytest.approx(engine_value, rel=1e-5)
    # ... and against the singular values themselves.
    svd = sum(
        float(
            np.sqrt(
                np.linalg.svd(torch.cat(p).detach().double().numpy(), compute_uv=False) ** 2
                + SMOOTHING
            ).sum()
        )
        for p in pairs
    )
    assert _penalty(net, "soft_trace") == pytest.approx(svd, rel=1e-5)


@pytest.mark.parametrize("sharing", ["soft_l2", "soft_trace"])
def test_without_coupling_a_candidate_cannot_change_the_main_model(sharing):
    scenario = _family_scenario(300)
    soft = full_training(scenario, seed=0, config=replace(TINY, sharing=sharing, coupling=0.0))
    loss = soft.runs.pivot(index="replicate", columns="config", values="loss")
    # Independent trunks: every candidate's main model is the main-alone model.
    for candidate in scenario.candidate_names:
        np.testing.assert_allclose(loss[candidate], loss[""], rtol=1e-5)
    assert soft.summary["gain"].abs().max() < 1e-5
    assert (soft.summary["sign"] == 0).all()
    # ... and the main-alone model is the hard reference's.
    hard = full_training(scenario, seed=0, config=TINY)
    hard_loss = hard.runs.pivot(index="replicate", columns="config", values="loss")
    np.testing.assert_allclose(loss[""], hard_loss[""], rtol=1e-5)


def test_with_coupling_the_related_candidate_helps_most():
    scenario = _family_scenario()
    config = TruthConfig(seeds=4, hidden=(32, 16), max_epochs=40, patience=5)
    soft = full_training(scenario, seed=0, config=replace(config, sharing="soft_l2", coupling=0.1))
    gains = soft.summary["gain"]
    assert gains.idxmax() == "rel_0_0.95"
    assert gains["rel_0_0.95"] > gains.drop("rel_0_0.95").max() + 0.01


def test_hard_and_soft_references_never_share_a_cache_key():
    hard = batch_key("d", TruthConfig(), 0, 0, 8)
    soft = batch_key("d", TruthConfig(sharing="soft_l2", coupling=0.1), 0, 0, 8)
    stronger = batch_key("d", TruthConfig(sharing="soft_l2", coupling=1.0), 0, 0, 8)
    assert len({hard, soft, stronger}) == 3
    # Under hard sharing the coupling trains nothing, so it is no part of the key.
    assert batch_key("d", TruthConfig(coupling=5.0), 0, 0, 8) == hard
    trace = batch_key("d", TruthConfig(sharing="soft_trace", coupling=0.1), 0, 0, 8)
    assert trace not in {hard, soft, stronger}
    with pytest.raises(ValueError, match="sharing"):
        TruthConfig(sharing="soft")
    with pytest.raises(ValueError, match="coupling"):
        TruthConfig(sharing="soft_l2", coupling=-1.0)


def test_reference_recipes_parse_sharing():
    from benchmarks.validity.v2 import parse_recipe

    recipe = parse_recipe("sharing=soft_l2+coupling=0.5+hidden=32")
    assert (recipe.sharing, recipe.coupling, recipe.hidden) == ("soft_l2", 0.5, (32,))
    with pytest.raises(ValueError, match="sharing"):
        parse_recipe("sharing=soft")


@pytest.mark.parametrize("sharing", ["soft_l2", "soft_trace"])
def test_each_advice_is_scored_against_each_sharing_reference(tmp_path, sharing):
    from benchmarks.validity.families import Family
    from benchmarks.validity.references import ReferencePlan
    from benchmarks.validity.sharing import method_sharing, sharing_table
    from benchmarks.validity.v2 import BenchConfig, per_family, render, run_family

    soft = f"probe@quick+sharing={sharing}+coupling=0.1"
    assert [method_sharing(m) for m in ("probe", "probe@quick", soft, "correlation")] == [
        "hard",
        "hard",
        sharing,
        None,
    ]
    scenario = _family_scenario(300)
    config = BenchConfig.make(
        quick=True,
        recipe=replace(TINY, seeds=0),
        reference_sharings=("hard", sharing),
        plan=ReferencePlan(first=4, step=4, max_replicates=4),
        reference_cache=tmp_path,
        methods=("probe@quick", soft, "correlation"),
        jobs=2,
    )
    family = Family("tiny", "synthetic", lambda **_: scenario)
    result = run_family(family, "tune", config, log=lambda _: None)
    assert result.primary == "hard"
    assert set(result.other_references) == {sharing}
    # Two references, two cache entries: the soft one did not read the hard one's.
    assert len(list(tmp_path.glob("*.csv"))) == 2
    hard_ref, soft_ref = result.reference, result.other_references[sharing]
    assert not np.allclose(hard_ref.summary["gain"], soft_ref.summary["gain"])
    # Every job of every method is scored against both references.
    assert len(result.scores) == len(result.other_scores) == 2 + 2 + 1
    assert set(result.scores.reference) == {"hard"}
    assert set(result.other_scores.reference) == {sharing}
    # The half's tables stay against the first reference.
    assert set(per_family([result]).method) == {"probe@quick", soft, "correlation"}

    table = sharing_table([result])
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["soft method"], row["hard method"]) == (soft, "probe@quick")
    jobs = result.other_scores.query("method == @soft")
    assert row["soft advice vs soft reference"] == pytest.approx(jobs.spearman.mean())
    jobs = result.scores.query("method == 'probe@quick'")
    assert row["hard advice vs hard reference"] == pytest.approx(jobs.spearman.mean())
    jobs = result.other_scores.query("method == 'correlation'")
    assert row["label correlation vs soft reference"] == pytest.approx(jobs.spearman.mean())
    # Hard vs soft advice: the Spearman of the two jobs' gains, averaged over jobs.
    gains = result.predictions.pivot(index=["job", "candidate"], columns="method", values="gain")
    expected = np.mean(
        [gains.loc[job][["probe@quick", soft]].corr(method="spearman").iloc[0, 1] for job in (0, 1)]
    )
    assert row["hard vs soft advice"] == pytest.approx(expected)
    assert row["soft reference replicates"] == row["hard reference replicates"] == 4
    assert "## Soft sharing" in render([result], config, 1.0)


def test_the_trace_reference_trains_and_differs_from_the_l2_one():
    scenario = _family_scenario(300)
    config = replace(TINY, coupling=0.1)
    trace = full_training(scenario, seed=0, config=replace(config, sharing="soft_trace"))
    l2 = full_training(scenario, seed=0, config=replace(config, sharing="soft_l2"))
    assert np.isfinite(trace.runs["loss"]).all()
    # Same main-alone models (coupling only acts on a candidate's pairing) ...
    alone = [r.runs.query("config == ''").set_index("replicate")["loss"] for r in (trace, l2)]
    np.testing.assert_allclose(alone[0], alone[1], rtol=1e-5)
    # ... but another penalty, so other paired models.
    assert not np.allclose(trace.summary["gain"], l2.summary["gain"])


def test_a_very_large_trace_coupling_shrinks_the_trunks_instead_of_tying_them():
    """Unlike soft_l2, soft_trace has no hard-sharing limit: ||[m; a]||_* >= |m|, so a
    very large coupling pulls both trunks toward zero, not toward each other, and every
    paired main model fits worse than the main model alone (whose candidate trunk has no
    penalty). So there is no "coupling -> infinity is hard sharing" check for it."""
    scenario = _family_scenario(300)
    trace = full_training(
        scenario, seed=0, config=replace(TINY, sharing="soft_trace", coupling=100.0)
    )
    hard = full_training(scenario, seed=0, config=TINY)
    assert (trace.summary["gain"] < hard.summary["gain"] - 0.05).all()
    assert (trace.summary["sign"] == -1).all()


def test_the_cli_builds_a_soft_trace_reference(monkeypatch, tmp_path, capsys):
    from benchmarks.validity import v2
    from benchmarks.validity.__main__ import main
    from benchmarks.validity.families import Family

    family = Family("tiny", "synthetic", lambda **_: _family_scenario(300))
    monkeypatch.setattr(v2, "families_for", lambda config: [(family, "tune")])
    out = tmp_path / "out"
    argv = ["--half", "tune", "--quick", "--methods", "correlation", "--reference-cache"]
    argv += [str(tmp_path / "cache"), "--out", str(out), "--reference-sharing"]
    assert main([*argv, "hard,soft_trace", "--reference-coupling", "0.5"]) == 0
    config = (out / "config.json").read_text()
    assert '"soft_trace"' in config
    trace = (out / "references_soft_trace.csv").read_text()
    assert "tiny" in trace
    assert len(list((tmp_path / "cache").glob("*.csv"))) == 2  # hard and soft_trace
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*argv, "hard,soft_nuclear"])
    assert "soft_trace" in capsys.readouterr().err  # the choices


def test_the_coupling_study_compares_couplings_paired():
    from benchmarks.validity.coupling import coupling_runs, summarise

    scenario = _family_scenario(300)
    recipe = replace(TINY, sharing="soft_l2")
    runs, references = coupling_runs(scenario, [0.0, 0.1], recipe=recipe, log=lambda _: None)
    # Hard sharing (coupling inf) and the two couplings, on the same replicates.
    assert len(runs) == 3 * TINY.seeds * len(scenario.candidate_names)
    # The main-alone model is the same whatever the coupling: the comparison is paired.
    alone = runs.pivot_table(index="replicate", columns="coupling", values="alone")
    np.testing.assert_allclose(alone[0.0], alone[0.1], rtol=1e-6)
    np.testing.assert_allclose(alone[0.0], alone[math.inf], rtol=1e-5)  # and hard's
    summary = summarise(runs, references).set_index(["family", "coupling"])
    # Coupling 0: independent trunks, the main model is the main-alone one.
    assert summary.loc[("tiny", 0.0), "relative test loss %"] == pytest.approx(0, abs=1e-3)
    # By hand: loss / alone - 1, mean over candidates, then over replicates.
    soft = runs[runs.coupling == 0.1]
    expected = 100 * (soft.loss / soft.alone - 1).groupby(soft.replicate).mean().mean()
    assert summary.loc[("tiny", 0.1), "relative test loss %"] == pytest.approx(expected)
    assert summary.loc[("all", 0.1), "relative test loss %"] == pytest.approx(expected)
    soft_rows = summary.xs("all").drop(math.inf)
    best = soft_rows["relative test loss %"].idxmin()  # a soft coupling, never hard
    assert summary.loc[("all", best), "vs best %"] == 0
    assert summary.loc[("all", math.inf), "sharing"] == "hard"
    hard = runs[runs.coupling == math.inf]
    expected = 100 * (hard.loss / hard.alone - 1).groupby(hard.replicate).mean().mean()
    assert summary.loc[("tiny", math.inf), "relative test loss %"] == pytest.approx(expected)
    assert summary.loc[("tiny", 0.1), "spearman soft vs hard reference"] == pytest.approx(
        spearman_of(references, 0.1)
    )


def spearman_of(references, coupling):
    from scipy import stats

    soft = references[references.coupling == coupling].set_index("candidate").gain
    hard = references[references.coupling == math.inf].set_index("candidate").gain
    return stats.spearmanr(soft, hard[soft.index]).statistic


def test_the_coupling_study_refuses_report_half_families(capsys):
    from benchmarks.validity.coupling import main
    from benchmarks.validity.halves import families_of

    with pytest.raises(SystemExit):
        main(["--families", families_of("report")[0]])
    assert "not in the tune half" in capsys.readouterr().err
