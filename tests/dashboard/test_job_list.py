"""The jobs list ("/") as the server renders it: the columns an MLflow or W&B user looks
for (name, main task, method, top candidate with its verdict, duration, status, tags),
the controls that sort, filter and select jobs to compare."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from fastapi.testclient import TestClient

from app.dashboard import views
from app.jobs.spec import BudgetIn
from app.jobs.worker import Worker
from app.main import create_app
from tests.conftest import family_csv, job_spec, make_settings
from tests.dashboard.table_html import table_rows


class _Two(NamedTuple):
    client: TestClient
    done: dict[str, Any]
    queued: dict[str, Any]
    ranking: dict[str, Any]


@pytest.fixture
def two_jobs(tmp_path: Path) -> Iterator[_Two]:
    """One job run to the end (tagged), and one still queued."""
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'auxsel.db'}")
    with TestClient(create_app(settings)) as client:
        state = client.app.state  # type: ignore[attr-defined]
        ds = client.post("/api/v1/datasets", files={"file": ("f.csv", family_csv())}).json()
        done = client.post("/api/v1/jobs", json=job_spec(ds["id"], name="churn run")).json()
        assert Worker(settings, state.sessions, state.storage, worker_id="w").run_one()
        client.patch(f"/api/v1/jobs/{done['id']}", json={"tags": ["baseline", "q4"]})
        queued = client.post(
            "/api/v1/jobs", json=job_spec(ds["id"], name="waiting", method="screen")
        ).json()
        ranking = client.get(f"/api/v1/jobs/{done['id']}/ranking").json()
        done = client.get(f"/api/v1/jobs/{done['id']}").json()
        yield _Two(client, done, queued, ranking)


def test_the_list_shows_the_columns_users_compare_jobs_by(two_jobs: _Two):
    client, done, queued, ranking = two_jobs
    page = client.get("/")
    assert page.status_code == 200
    rows = {r["@data-job-id"]: r for r in table_rows(page.text, "jobs-table")}
    assert list(rows) == [queued["id"], done["id"]]  # newest first

    finished = rows[done["id"]]
    assert finished["Name"].startswith("churn run")
    assert finished["Main task"] == "y"
    assert finished["Method"] == done["spec"]["method"]
    top = ranking["candidates"][0]
    assert (
        finished["Top candidate"] == f"{top['name']} {top['verdict']} {views.signed(top['gain'])}"
    )
    assert finished["Status"].startswith("succeeded")
    assert finished["Tags"] == "baseline q4"
    assert finished["Data set"] == "f.csv"
    # The duration is the job's own run time, as people read it.
    started = done["started_at"]
    assert started is not None
    assert finished["Duration"].endswith(" s")

    waiting = rows[queued["id"]]
    assert waiting["Method"] == "screen"
    assert waiting["Top candidate"] == "–"  # no ranking yet
    assert waiting["Duration"] == "–"  # not started
    assert waiting["Status"].startswith("queued")
    assert waiting["Tags"] == ""


def test_the_list_offers_sorting_filtering_and_compare(two_jobs: _Two):
    text = html.unescape(two_jobs.client.get("/").text)
    # Every data column's header is one button (the whole cell sorts).
    for label in ("Name", "Main task", "Method", "Top candidate", "Duration", "Status", "Tags"):
        assert f'data-type="text">{label}</button>' in text or (
            f'data-type="number">{label}</button>' in text
        ), label
    assert 'id="job-filter" type="search"' in text
    assert 'id="status-filter"' in text
    # A checkbox per job, sent to /compare (without script too: ?job=a&job=b).
    assert 'action="/compare"' in text
    for job in (two_jobs.done, two_jobs.queued):
        assert f'name="job" value="{job["id"]}"' in text


def test_the_search_box_searches_all_jobs_on_the_server(two_jobs: _Two):
    client, done, queued, _ = two_jobs
    page = client.get("/", params={"q": "WAIT"})
    rows = [r["@data-job-id"] for r in table_rows(page.text, "jobs-table")]
    assert rows == [queued["id"]]
    text = html.unescape(page.text)
    assert 'name="q" form="job-search" value="WAIT"' in text  # the box keeps the search
    assert "1 job found" in text
    by_tag = client.get("/", params={"q": "q4"})
    assert [r["@data-job-id"] for r in table_rows(by_tag.text, "jobs-table")] == [done["id"]]
    none = html.unescape(client.get("/", params={"q": "no such job"}).text)
    assert table_rows(none, "jobs-table") == []
    assert "No job matches the search." in none
    assert "0 jobs found" in none


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "–"), (0.4, "0 s"), (59.9, "59 s"), (61, "1 min 1 s"), (7320, "2 h 2 min")],
)
def test_durations_read_as_people_say_them(seconds, text):
    assert views.duration(seconds) == text


def test_clone_opens_the_form_with_the_jobs_spec(two_jobs: _Two):
    client, done, _, _ = two_jobs
    job_page = html.unescape(client.get(f"/jobs/{done['id']}").text)
    assert f'id="clone" href="/submit?from={done["id"]}"' in job_page
    assert '<span class="tag">baseline</span>' in job_page  # the job page shows its tags
    page = client.get("/submit", params={"from": done["id"]})
    assert page.status_code == 200
    found = re.search(r'<script type="application/json" id="clone-spec">(.*?)</script>', page.text)
    assert found
    clone = json.loads(html.unescape(found.group(1)))
    spec = done["spec"]
    assert clone["name"] == f"{done['name']} (copy)"
    assert clone["from"] == done["id"]
    assert clone["tags"] == ["baseline", "q4"]  # its tags come along; its note does not

    def given(value: Any) -> Any:  # the spec without its unset (null) fields
        if isinstance(value, dict):
            return {k: given(v) for k, v in value.items() if v is not None}
        return [given(v) for v in value] if isinstance(value, list) else value

    for key in ("dataset_id", "main_task", "candidates", "method", "metric", "recipe", "seed"):
        assert clone[key] == given(spec[key]), key
    # Knobs it set away from the defaults travel; the form shows the defaults of the rest.
    defaults = BudgetIn().model_dump(mode="json")
    assert clone["budget"] == {k: v for k, v in spec["budget"].items() if v != defaults[k]}
    assert clone["budget"]  # the test budget is small: its knobs are set
    assert f'<option value="{spec["dataset_id"]}" selected>' in page.text
    missing = client.get("/submit", params={"from": "job_nope"})
    assert "No job job_nope to copy" in missing.text


def test_a_clone_says_which_candidates_from_another_data_set_it_leaves_out(two_jobs: _Two):
    client, done, _, _ = two_jobs
    other = client.post(
        "/api/v1/datasets", files={"file": ("assays.csv", family_csv(seed=1))}
    ).json()
    spec = job_spec(
        done["spec"]["dataset_id"],
        name="two sources",
        candidates=[
            {"column": "rel_0_0.90"},
            {"column": "rel_1_0.20", "name": "assay B", "dataset_id": other["id"]},
        ],
    )
    job = client.post("/api/v1/jobs", json=spec)
    assert job.status_code == 202, job.text
    page = html.unescape(client.get("/submit", params={"from": job.json()["id"]}).text)
    assert 'id="clone-dropped"' in page
    assert "1 of its candidates came from another data set and are left out" in page
    assert "assay B</strong> (column rel_1_0.20) from data set assays.csv" in page
    # A clone whose candidates are all from its own data set says nothing of the kind.
    plain = client.get("/submit", params={"from": done["id"]}).text
    assert 'id="clone-dropped"' not in plain
