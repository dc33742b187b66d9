"""What a job shows before it has a final ranking: probe runs stored replicate by
replicate while it runs, kept after a cancel part-way through a round, and a ranking
from them marked provisional."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.jobs import attempt
from app.jobs.worker import Worker
from app.settings import Settings
from engine.metrics import HIGHER_IS_BETTER
from tests.conftest import SMALL_BUDGET, job_spec

# One round of three replicates (3 chunks of the baseline and three pairings each).
BUDGET = {**SMALL_BUDGET, "seeds": 3, "max_replicates": 3}
PER_REPLICATE = 4  # baseline + three candidates


@pytest.fixture(autouse=True)
def one_replicate_per_chunk(settings: Settings) -> None:
    """Every replicate its own chunk (a job of few candidates shares one by default)."""
    settings.chunk_min_probes = 1


@pytest.fixture
def on_store(monkeypatch: pytest.MonkeyPatch) -> list[Callable[[int], None]]:
    """Hooks run right after the worker commits a chunk of probe runs (in the worker's
    own thread, so the job is still running and waits for them): the test's ordering."""
    hooks: list[Callable[[int], None]] = []
    stores = 0
    original = attempt.JobRun.store

    def store(self: attempt.JobRun, rows: Any, *args: Any) -> None:
        nonlocal stores
        original(self, rows, *args)
        stores += 1
        for hook in hooks:
            hook(stores)

    monkeypatch.setattr(attempt.JobRun, "store", store)
    return hooks


def _submit(client: TestClient, dataset: dict[str, object], **overrides: object) -> str:
    response = client.post(
        "/api/v1/jobs", json=job_spec(str(dataset["id"]), budget=BUDGET, **overrides)
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _assert_matches_runs(ranking: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    """Each candidate's per-replicate gains are its paired runs' metric minus the
    baseline of the same replicate's (oriented: positive is better), over exactly the
    stored replicates."""
    metric = ranking["metric"]
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    base = {r["replicate"]: r["metrics"][metric] for r in runs if not r["candidates"]}
    assert ranking["replicates"] == len(base)
    for c in ranking["candidates"]:
        paired = sorted(  # a pairing counts where its replicate's baseline is stored
            (r["replicate"], r["metrics"][metric])
            for r in runs
            if r["candidates"] == [c["name"]] and r["replicate"] in base
        )
        want = [sign * (value - base[rep]) for rep, value in paired]
        assert c["seeds"] == len(paired)
        assert c["per_seed"] == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert c["gain"] == pytest.approx(sum(want) / len(want), rel=1e-9, abs=1e-12)


def test_runs_and_a_provisional_ranking_while_the_job_runs(
    client, worker: Worker, dataset, on_store
):
    job_id = _submit(client, dataset)
    seen: list[tuple[str, int, bool, int]] = []

    def look(stores: int) -> None:
        status = client.get(f"/api/v1/jobs/{job_id}").json()["status"]
        runs = client.get(f"/api/v1/jobs/{job_id}/runs").json()["items"]
        ranking = client.get(f"/api/v1/jobs/{job_id}/ranking").json()
        _assert_matches_runs(ranking, runs)
        seen.append((status, len(runs), ranking["provisional"], ranking["replicates"]))
        assert ranking["next_steps"] == []  # still running: the next step is to wait
        if stores == 1:
            page = client.get(f"/jobs/{job_id}").text
            assert 'id="provisional-note"' in page
            assert "Provisional ranking</strong> from the 1 replicate stored so far" in page

    on_store.append(look)
    assert worker.run_one() is True
    # After each replicate's chunk, the job still running already shows its runs and
    # a provisional ranking of exactly them.
    assert seen == [("running", PER_REPLICATE * k, True, k) for k in (1, 2, 3)]
    assert client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "succeeded"
    final = client.get(f"/api/v1/jobs/{job_id}/ranking").json()
    assert final["provisional"] is False
    assert final["replicates"] == 3
    _assert_matches_runs(final, client.get(f"/api/v1/jobs/{job_id}/runs").json()["items"])
    assert "provisional-note" not in client.get(f"/jobs/{job_id}").text


def test_no_ranking_before_the_first_replicate(client, dataset):
    job_id = _submit(client, dataset)  # queued: nothing trained yet
    response = client.get(f"/api/v1/jobs/{job_id}/ranking")
    assert response.status_code == 409
    assert response.json()["type"].endswith("ranking-not-ready")


def test_a_job_canceled_part_way_through_a_round_keeps_its_runs(
    client, worker: Worker, settings, dataset, on_store
):
    settings.progress_interval_s = 0.0  # every epoch reads the cancel flag
    job_id = _submit(client, dataset)

    def cancel_after_first(stores: int) -> None:
        if stores == 1:
            assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 202

    on_store.append(cancel_after_first)
    assert worker.run_one() is True
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    assert job["status"] == "canceled"
    assert job["progress"]["done"] < job["progress"]["total"]
    runs = client.get(f"/api/v1/jobs/{job_id}/runs").json()["items"]
    # Replicate 0 finished before the cancel and is kept; the round was not.
    assert {r["replicate"] for r in runs} == {0}
    assert sorted(tuple(r["candidates"]) for r in runs) == sorted(
        [(), ("rel_0_0.90",), ("rel_1_0.20",), ("noise_0",)]
    )
    page = client.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    assert "probe runs that completed are kept below" in page.text
    assert f"{len(runs)} probe runs stored" in page.text
    # ... and ranks them, provisionally, on the page and over the API.
    ranking = client.get(f"/api/v1/jobs/{job_id}/ranking").json()
    assert ranking["provisional"] is True
    _assert_matches_runs(ranking, runs)
    assert "before the job was canceled" in page.text
    csv = client.get(f"/api/v1/jobs/{job_id}/ranking?format=csv")
    assert "provisional-ranking.csv" in csv.headers["content-disposition"]
    assert all(line.endswith(",True") for line in csv.text.strip().splitlines()[1:])
    # One replicate gives no interval: the next step is to let a job finish.
    assert ranking["next_steps"][0].startswith("The job stopped after 1 of the 3 replicates")
    for name in ("rel_0_0.90", "rel_1_0.20", "noise_0"):
        assert f'data-candidate="{name}"' in page.text


def test_a_cancel_inside_a_chunk_keeps_the_probes_that_had_finished(
    client, worker: Worker, settings, dataset, monkeypatch
):
    """A few-candidate job trains its whole first round as one chunk (the default
    32-probe floor): a cancel inside it keeps the probes early stopping had ended, with
    the very runs they have when the job runs to its end, and ranks them provisionally."""
    settings.chunk_min_probes = Settings().chunk_min_probes  # the default, one chunk
    settings.progress_interval_s = 0.0  # every epoch reads the cancel flag
    budget = {**BUDGET, "epochs": 40, "patience": 2, "lr": 0.03}
    spec = job_spec(str(dataset["id"]), budget=budget)

    def key(run: dict[str, Any]) -> tuple[int, tuple[str, ...]]:
        return run["replicate"], tuple(run["candidates"])

    # The same job run to its end: which probes stop first, and the runs they give.
    twin = client.post("/api/v1/jobs", json=spec).json()["id"]
    assert worker.run_one() is True
    full = {key(r): r for r in client.get(f"/api/v1/jobs/{twin}/runs").json()["items"]}
    assert len(full) == 3 * PER_REPLICATE
    # Cancel after the epoch in which the first baseline stopped.
    at = min(r["epochs"] for r in full.values() if not r["candidates"])
    kept = {k: r for k, r in full.items() if r["epochs"] <= at}
    assert len(kept) < len(full), "every probe stops by then: no cancel inside the chunk"

    job_id = client.post("/api/v1/jobs", json=spec).json()["id"]
    original = attempt.JobRun.progress

    def progress(self: attempt.JobRun, done: int, total: int) -> None:
        if self.claim.job_id == job_id and done >= 3 * PER_REPLICATE * at:
            client.post(f"/api/v1/jobs/{job_id}/cancel")
        original(self, done, total)

    monkeypatch.setattr(attempt.JobRun, "progress", progress)
    assert worker.run_one() is True
    assert client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "canceled"
    runs = client.get(f"/api/v1/jobs/{job_id}/runs").json()["items"]
    assert {key(r) for r in runs} == set(kept)
    for run in runs:
        assert run["metrics"] == kept[key(run)]["metrics"]
        assert run["epochs"] == kept[key(run)]["epochs"]
    ranking = client.get(f"/api/v1/jobs/{job_id}/ranking").json()
    assert ranking["provisional"] is True
    _assert_matches_runs(ranking, runs)
    page = client.get(f"/jobs/{job_id}").text
    assert 'id="provisional-note"' in page
    assert f"{len(runs)} probe runs stored" in page
