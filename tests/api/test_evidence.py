"""Every candidate's label evidence in the ranking: JSON and CSV, equal to the engine's;
null for a job stored before it."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from app.jobs import ranking_csv, results
from app.jobs.views import CandidateOut, RankingOut
from tests.api.conftest import engine_advice
from tests.conftest import job_spec


def test_ranking_carries_label_evidence(client, worker, dataset):
    response = client.post("/api/v1/jobs", json=job_spec(dataset["id"]))
    assert response.status_code == 202, response.text
    job = response.json()
    assert worker.run_one() is True
    ranking = client.get(f"/api/v1/jobs/{job['id']}/ranking").json()
    advice = engine_advice()
    for got, want in zip(ranking["candidates"], advice.candidates, strict=True):
        assert want.evidence is not None
        assert got["evidence"]["labelled"] == want.evidence.labelled
        assert got["evidence"]["overlap"] == want.evidence.overlap
        assert got["evidence"]["label_correlation"] == pytest.approx(want.evidence.correlation)
        assert got["evidence"]["mutual_info"] == pytest.approx(want.evidence.mutual_info)
        assert got["evidence_disagrees"] is want.evidence_disagrees
    by_name = {c["name"]: c["evidence"] for c in ranking["candidates"]}
    # The closely related candidate correlates with the main label more than noise does.
    assert by_name["rel_0_0.90"]["label_correlation"] > by_name["noise_0"]["label_correlation"]

    csv = client.get(f"/api/v1/jobs/{job['id']}/ranking", params={"format": "csv"})
    table = pd.read_csv(io.StringIO(csv.text))
    for column in ("labelled", "overlap", "label_correlation", "mutual_info", "evidence_disagrees"):
        assert column in table.columns
    assert list(table["overlap"]) == [c["evidence"]["overlap"] for c in ranking["candidates"]]
    assert list(table["label_correlation"]) == pytest.approx(
        [c["evidence"]["label_correlation"] for c in ranking["candidates"]]
    )


def test_a_job_from_before_evidence_shows_none():
    details = results._details({"proxies": {}, "metrics": {}})
    assert details["evidence"] is None
    assert details["evidence_disagrees"] is False
    assert results._evidence(None) is None
    candidate = CandidateOut(
        rank=1,
        name="a",
        column="a",
        kind="binary",
        dataset_id=None,
        gain=None,
        se=None,
        ci_low=None,
        ci_high=None,
        rel_gain=None,
        p_value=None,
        q_value=None,
        verdict="not_probed",
        seeds=0,
        secondary=None,
        disagreement=False,
        proxies={},
        metrics={},
        per_seed=[],
        errors=[],
        evidence=results._evidence(details["evidence"]),
        evidence_disagrees=bool(details["evidence_disagrees"]),
    )
    rows = ranking_csv.ranking_rows(RankingOut.model_construct(candidates=[candidate]))
    assert rows[0]["label_correlation"] is None
    assert rows[0]["evidence_disagrees"] is False
