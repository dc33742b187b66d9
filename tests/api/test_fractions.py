"""A job at several shares of the main labels (``budget.main_train_fractions``) through
the service: each share's probe runs are stored under their own keys, the ranking
carries every candidate's answer at each share (the engine's), a resumed attempt
trains only what is missing, and bad shares are refused with nothing stored."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.db.models import Job, ProbeRunRecord
from app.jobs import attempt
from app.jobs.fractions import fraction_sentence, share_of, share_prefix
from app.jobs.worker import Worker
from tests.api.conftest import engine_advice
from tests.conftest import SMALL_BUDGET, job_spec

SHARES = [0.25, 0.5, 1.0]
BUDGET = {**SMALL_BUDGET, "main_train_fractions": SHARES}


def _submit(client: TestClient, dataset: dict[str, Any], **budget: object) -> dict[str, Any]:
    response = client.post(
        "/api/v1/jobs", json=job_spec(str(dataset["id"]), budget={**BUDGET, **budget})
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_a_job_with_shares_runs_each_share_and_ranks_per_share(
    client: TestClient, worker: Worker, dataset: dict[str, Any]
) -> None:
    job = _submit(client, dataset)
    assert job["spec"]["budget"]["main_train_fractions"] == SHARES
    # Every share is a whole job's probes: 2 replicates x 4 probes x 3 epochs each.
    assert job["progress"]["total"] == len(SHARES) * 2 * 4 * 3
    assert worker.run_one() is True
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "succeeded"

    runs = client.get(f"/api/v1/jobs/{job['id']}/runs").json()["items"]
    # Distinct runs per share: the same probe once at each share, its key naming it.
    assert len(runs) == len({r["key"] for r in runs}) == len(SHARES) * 2 * 4
    for share in SHARES:
        at = [r for r in runs if r["main_train_fraction"] == share]
        assert len(at) == 2 * 4
        assert all(r["key"].startswith(f"f{share!r}/r") for r in at)
    assert {r["key"] for r in runs if r["main_train_fraction"] == 1.0} >= {"f1.0/r0:base"}
    # Each run keeps its main head's training and validation loss (the gap hint's).
    for r in runs:
        assert set(r["fit"]) == {"train_loss", "val_loss"}
        assert set(r["metrics"]) == {"loss", "rmse", "r2"}

    ranking = client.get(f"/api/v1/jobs/{job['id']}/ranking").json()
    advice = engine_advice(BUDGET)  # the engine's own answer at every share
    assert ranking["main_train_fractions"] == SHARES
    # The headline ranking is the answer with all the main labels.
    assert [c["name"] for c in ranking["candidates"]] == [c.name for c in advice.candidates]
    for got in ranking["candidates"]:
        assert [f["main_train_fraction"] for f in got["fractions"]] == SHARES
        for row, fraction in zip(got["fractions"], advice.fractions, strict=True):
            want = next(c for c in fraction.candidates if c.name == got["name"])
            assert row["main_train"] == fraction.main_train
            assert row["gain"] == pytest.approx(want.gain, rel=1e-6, abs=1e-9)
            assert row["ci_low"] == pytest.approx(want.ci_low, rel=1e-6, abs=1e-9)
            assert row["ci_high"] == pytest.approx(want.ci_high, rel=1e-6, abs=1e-9)
            assert row["verdict"] == want.verdict
        assert got["helpful_at"] == [
            f["main_train_fraction"] for f in got["fractions"] if f["verdict"] == "helpful"
        ]
        assert got["fraction_summary"] == fraction_sentence(got["fractions"])
        assert got["hint"] is not None
        assert got["hint"]["fade_n"] == 2
        # The gap hint is the engine's, labelled a hint.
        want_hint = next(h for h in advice.hints if h.name == got["name"])
        assert got["hint"]["gap_change"] == pytest.approx(list(want_hint.gap_change), rel=1e-5)
        assert got["hint"]["gap_text"].startswith("Hint: at 0.25 of the main labels")
    # Fewer main labels per replicate at a smaller share.
    trained = [f["main_train"] for f in ranking["candidates"][0]["fractions"]]
    assert trained == sorted(trained)
    assert trained[0] < trained[-1]

    # The CSV export: one row per candidate and share (as engine.Advice.to_frame), each
    # with that share's own answer; what only all the labels measured is left empty.
    csv = client.get(f"/api/v1/jobs/{job['id']}/ranking?format=csv")
    assert csv.status_code == 200
    frame = pd.read_csv(io.StringIO(csv.text))
    assert len(frame) == len(ranking["candidates"]) * len(SHARES)
    for got in ranking["candidates"]:
        rows = frame[frame["name"] == got["name"]]
        assert rows["main_train_fraction"].tolist() == SHARES
        assert rows["main_train"].tolist() == [f["main_train"] for f in got["fractions"]]
        assert rows["gain"].tolist() == pytest.approx([f["gain"] for f in got["fractions"]])
        assert rows["verdict"].tolist() == [f["verdict"] for f in got["fractions"]]
        assert rows["rel_gain"].isna().tolist() == [True, True, False]


def test_soft_sharing_at_several_shares_is_the_engines_answer(
    client: TestClient, worker: Worker, dataset: dict[str, Any]
) -> None:
    """Shares and soft sharing together: every share is a soft-sharing job, and the
    service's per-share gains are the engine's for the same soft recipe."""
    soft = {"sharing": "soft_l2", "coupling": 0.5}
    job = _submit(client, dataset, **soft)
    assert worker.run_one() is True
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "succeeded"
    ranking = client.get(f"/api/v1/jobs/{job['id']}/ranking").json()
    assert "soft parameter sharing" in ranking["recipe_text"]
    advice = engine_advice({**BUDGET, **soft})
    hard = engine_advice(BUDGET)
    moved = False
    for got in ranking["candidates"]:
        rows = got["fractions"]
        assert [f["main_train_fraction"] for f in rows] == SHARES
        for row, fraction, hard_at in zip(rows, advice.fractions, hard.fractions, strict=True):
            want = next(c for c in fraction.candidates if c.name == got["name"])
            assert row["gain"] == pytest.approx(want.gain, rel=1e-6, abs=1e-9)
            assert row["verdict"] == want.verdict
            hard_gain = next(c for c in hard_at.candidates if c.name == got["name"]).gain
            moved = moved or abs(row["gain"] - hard_gain) > 1e-6
    assert moved  # the soft recipe trained, not hard sharing under another name


def test_the_shares_train_together_and_rank_provisionally_from_the_first_chunk(
    client: TestClient, worker: Worker, dataset: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shares train together (engine.race_shares): every chunk the worker stores
    holds probes of every share, so the provisional ranking answers for all the main
    labels, with every share, from the first chunk on."""
    job = _submit(client, dataset)
    seen: list[tuple[str, bool, list[float], list[float]]] = []
    stored_shares: list[set[float | None]] = []
    original = attempt.JobRun.store

    def store(self: attempt.JobRun, rows: Any, *args: Any) -> None:
        original(self, rows, *args)
        stored_shares.append({share_of(str(r["probe_key"])) for r in rows})
        status = client.get(f"/api/v1/jobs/{job['id']}").json()["status"]
        ranking = client.get(f"/api/v1/jobs/{job['id']}/ranking").json()
        shares = [f["main_train_fraction"] for f in ranking["candidates"][0]["fractions"]]
        seen.append((status, ranking["provisional"], ranking["main_train_fractions"], shares))
        page = client.get(f"/jobs/{job['id']}")
        assert page.status_code == 200
        assert 'id="share-summaries"' in page.text

    monkeypatch.setattr(attempt.JobRun, "store", store)
    assert worker.run_one() is True
    assert seen
    assert all(s == ("running", True, SHARES, SHARES) for s in seen)
    assert all(shares == set(SHARES) for shares in stored_shares)
    assert client.get(f"/api/v1/jobs/{job['id']}/ranking").json()["provisional"] is False


def test_a_resumed_job_with_shares_trains_only_what_is_missing(
    client: TestClient, worker: Worker, dataset: dict[str, Any]
) -> None:
    """An attempt that died after the largest share stored its runs: the next attempt
    reuses them, stores only the other shares' runs, and ends with the same ranking."""
    reference = _submit(client, dataset)
    assert worker.run_one() is True
    want = client.get(f"/api/v1/jobs/{reference['id']}/ranking").json()

    job = _submit(client, dataset)
    sessions = client.app.state.sessions  # type: ignore[attr-defined]
    with sessions() as session:
        kept = [
            r
            for r in session.scalars(
                select(ProbeRunRecord).where(ProbeRunRecord.job_id == reference["id"])
            )
            if r.probe_key.startswith("f1.0/")
        ]
        for r in kept:  # the largest share's runs, as a first attempt stored them
            session.add(
                ProbeRunRecord(
                    job_id=job["id"],
                    **{
                        k: getattr(r, k)
                        for k in (
                            "probe_key",
                            "replicate",
                            "aux",
                            "metrics",
                            "curve",
                            "best_epoch",
                            "epochs",
                            "error",
                        )
                    },
                    attempt=0,  # an earlier attempt's
                )
            )
        session.commit()
    assert len(kept) == 2 * 4
    assert worker.run_one() is True
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "succeeded"
    with sessions() as session:
        stored = list(
            session.scalars(select(ProbeRunRecord).where(ProbeRunRecord.job_id == job["id"]))
        )
    assert len(stored) == len(SHARES) * 2 * 4
    # The largest share's runs are the copied ones: the new attempt trained none of them.
    assert {r.attempt for r in stored if r.probe_key.startswith("f1.0/")} == {0}
    assert {r.attempt for r in stored if not r.probe_key.startswith("f1.0/")} == {1}
    got = client.get(f"/api/v1/jobs/{job['id']}/ranking").json()
    for a, b in zip(got["candidates"], want["candidates"], strict=True):
        assert a["name"] == b["name"]
        assert a["fractions"] == b["fractions"]
        assert a["hint"] == b["hint"]  # the stored runs' losses read back too


def test_a_job_without_shares_keeps_its_keys_and_shape(
    client: TestClient, worker: Worker, dataset: dict[str, Any]
) -> None:
    response = client.post("/api/v1/jobs", json=job_spec(str(dataset["id"])))
    job = response.json()
    assert worker.run_one() is True
    runs = client.get(f"/api/v1/jobs/{job['id']}/runs").json()["items"]
    probes = ("base", "c0", "c1", "c2")
    assert {r["key"] for r in runs} == {f"r{r}:{p}" for r in (0, 1) for p in probes}
    assert all(r["main_train_fraction"] is None for r in runs)
    ranking = client.get(f"/api/v1/jobs/{job['id']}/ranking").json()
    assert ranking["main_train_fractions"] == []
    for c in ranking["candidates"]:
        assert c["fractions"] == []
        assert c["fraction_summary"] is None


@pytest.mark.parametrize(
    ("budget", "method", "field", "says"),
    [
        ({"main_train_fractions": [0.1, 0.5]}, "probe", "budget.main_train_fractions", "include 1"),
        ({"main_train_fractions": [1.0]}, "probe", "budget.main_train_fractions", "below it"),
        (
            {"main_train_fractions": [0.1, 0.1, 1.0]},
            "probe",
            "budget.main_train_fractions",
            "twice",
        ),
        (
            {"main_train_fractions": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0]},
            "probe",
            "budget.main_train_fractions",
            "at most 6",
        ),
        ({"main_train_fractions": [0.0, 1.0]}, "probe", "budget.main_train_fractions", ""),
        ({"main_train_fractions": [0.5, 1.5]}, "probe", "budget.main_train_fractions", ""),
        (
            {"main_train_fractions": [0.5, 1.0]},
            "screen+probe",
            "budget.main_train_fractions",
            "method to probe",
        ),
        (
            {"main_train_fractions": [0.5, 1.0], "subset_search": True},
            "probe",
            "budget.main_train_fractions",
            "subset_search off",
        ),
        (
            {"main_train_fractions": [0.5, 1.0], "main_train_fraction": 0.5},
            "probe",
            "budget.main_train_fraction",
            "left at 1",
        ),
        # 400 rows: a replicate keeps ~240 main labels, 0.001 of them is none.
        ({"main_train_fractions": [0.001, 1.0]}, "probe", "budget.main_train_fractions", "share"),
    ],
)
def test_bad_shares_are_refused_with_nothing_stored(
    client: TestClient,
    dataset: dict[str, Any],
    budget: dict[str, object],
    method: str,
    field: str,
    says: str,
) -> None:
    spec = job_spec(str(dataset["id"]), method=method, budget={**SMALL_BUDGET, **budget})
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert any(e["field"] == field and says in e["message"] for e in errors), errors
    sessions = client.app.state.sessions  # type: ignore[attr-defined]
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def _rows(*verdicts: str) -> list[dict[str, object]]:
    return [
        {"main_train_fraction": share, "verdict": verdict}
        for share, verdict in zip((0.1, 0.25, 1.0), verdicts, strict=True)
    ]


def test_the_sentence_says_where_a_candidate_helps() -> None:
    assert fraction_sentence(_rows("helpful", "helpful", "inconclusive")) == (
        "Helpful at 10% and 25% of the main labels; not at 100%: a small-data helper."
    )
    assert fraction_sentence(_rows("helpful", "inconclusive", "helpful")) == (
        "Helpful at 10% and 100% of the main labels; not at 25%."
    )
    assert fraction_sentence(_rows("helpful", "helpful", "helpful")) == (
        "Helpful at every share measured (10%, 25% and 100% of the main labels)."
    )
    assert fraction_sentence(_rows("inconclusive", "inconclusive", "harmful")) == (
        "Not helpful at any share measured (10%, 25% and 100% of the main labels); harmful at 100%."
    )
    assert fraction_sentence([]) is None


def test_a_share_is_in_its_runs_key_and_read_back_exactly() -> None:
    assert share_prefix(None) == ""  # a job without shares keeps the engine's keys
    for share in (0.1, 0.25, 1.0, 1 / 3):
        key = share_prefix(share) + "r0:c1"
        assert share_of(key) == share
    assert share_of("r0:c1") is None
    assert share_of("screen") is None
