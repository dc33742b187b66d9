"""`from auxsel import Client`, as a notebook uses it, against a real `auxsel serve`:
upload a DataFrame, submit, wait with a progress bar, and read the ranking and the probe
runs as DataFrames equal to the API's JSON."""

from __future__ import annotations

import io

import httpx
import pandas as pd
import pytest

from auxsel import ApiError, Client, JobFailedError
from tests.conftest import SMALL_BUDGET, family_csv

CANDIDATES = ["rel_0_0.90", "rel_1_0.20", "noise_0"]


@pytest.fixture(scope="module")
def server(secured_server: tuple[str, str]) -> tuple[str, str]:
    return secured_server


def _get(server: tuple[str, str], path: str) -> dict[str, object]:
    url, key = server
    response = httpx.get(url + path, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_notebook_session(server, monkeypatch, capsys):
    url, key = server
    # The defaults come from AUXSEL_URL and AUXSEL_API_KEY, as for the CLI.
    monkeypatch.setenv("AUXSEL_URL", url)
    monkeypatch.setenv("AUXSEL_API_KEY", key)
    frame = pd.read_csv(io.BytesIO(family_csv(n_rows=400)))
    with Client() as client:
        dataset = client.upload(frame, name="family")
        assert dataset.startswith("ds_")
        assert client.upload(frame, name="family") == dataset  # the same bytes: reused
        described = _get(server, f"/api/v1/datasets/{dataset}")
        assert described["format"] == "parquet"
        assert described["rows"] == 400

        job = client.submit(
            dataset, "y", CANDIDATES, recipe="quick", seed=0, name="notebook", **SMALL_BUDGET
        )
        spec = _get(server, f"/api/v1/jobs/{job}")["spec"]
        assert spec["name"] == "notebook"  # type: ignore[index]
        assert spec["budget"]["hidden"] == [16]  # type: ignore[index]
        final = client.wait(job)
        assert final["status"] == "succeeded"

        ranking = client.ranking(job)
        api = _get(server, f"/api/v1/jobs/{job}/ranking")
        candidates = api["candidates"]
        assert isinstance(candidates, list)
        pd.testing.assert_frame_equal(ranking, pd.DataFrame.from_records(candidates))
        assert ranking["name"].tolist() == [c["name"] for c in candidates]
        assert ranking["rank"].tolist() == [1, 2, 3]
        assert ranking["gain"].tolist() == [c["gain"] for c in candidates]
        assert ranking["verdict"].tolist() == [c["verdict"] for c in candidates]
        assert ranking.attrs["baseline"] == api["baseline"]
        assert ranking.attrs["recipe_text"] == api["recipe_text"]

        runs = client.runs(job)
        api_runs = _get(server, f"/api/v1/jobs/{job}/runs")["items"]
        assert isinstance(api_runs, list)
        assert runs["key"].tolist() == [r["key"] for r in api_runs]
        assert runs[ranking.attrs["metric"]].tolist() == [
            r["metrics"][ranking.attrs["metric"]] for r in api_runs
        ]

        same = client.compare(job, job)
        assert same["name"].tolist() == ranking["name"].tolist()
        assert (same["rank_change"] == 0).all()
    assert "succeeded" in capsys.readouterr().out  # the progress bar's last state


def test_errors_carry_the_problem_and_cancel(server):
    url, key = server
    with Client(url=url, api_key=key) as client:
        dataset = client.upload(pd.read_csv(io.BytesIO(family_csv(n_rows=400))))
        with pytest.raises(ApiError) as refused:
            client.submit(dataset, "nope", CANDIDATES, recipe="quick")
        assert refused.value.status == 422
        assert refused.value.problem["errors"][0]["field"] == "main_task.column"
        with pytest.raises(ApiError) as unknown:
            client.ranking("job_nope")
        assert unknown.value.status == 404
        assert "job_nope" in str(unknown.value)

        job = client.submit(
            dataset, "y", CANDIDATES, recipe="quick", epochs=500, seeds=5, patience=0
        )
        assert client.cancel(job)["cancel_requested"] is True
        with pytest.raises(JobFailedError) as failed:
            client.wait(job, progress=False, timeout_s=120)
        assert failed.value.job["status"] == "canceled"
    with pytest.raises(ApiError) as no_key:
        Client(url=url, api_key="auxsel_no_no").ranking("job_x")
    assert no_key.value.status == 401
