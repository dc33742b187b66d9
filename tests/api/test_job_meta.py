"""Tags and a note per job: PATCH /api/v1/jobs/{id}, their limits, the owner check, and
GET /api/v1/jobs's tag, text and status filters (with pagination) and top candidate."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.jobs.meta import MAX_NOTE_LENGTH, MAX_TAG_LENGTH, MAX_TAGS
from app.jobs.worker import Worker
from app.main import create_app
from app.security.auth import create_key
from app.settings import Settings
from tests.conftest import family_csv, job_spec

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _problem(response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return dict(response.json())


def _fields(problem: dict[str, object]) -> set[str]:
    return {str(e["field"]) for e in problem["errors"]}  # type: ignore[attr-defined]


def test_set_and_edit_tags_and_note(client: TestClient, dataset):
    job = client.post("/api/v1/jobs", json=job_spec(str(dataset["id"]), name="churn")).json()
    assert job["tags"] == []
    assert job["note"] == ""
    url = f"/api/v1/jobs/{job['id']}"
    response = client.patch(url, json={"tags": ["baseline", "v2", "baseline"], "note": "first"})
    assert response.status_code == 200, response.text
    assert response.json()["tags"] == ["baseline", "v2"]  # duplicates dropped, order kept
    assert response.json()["note"] == "first"
    # A field left out is kept; the spec (what trains) is untouched.
    edited = client.patch(url, json={"note": "rerun with more seeds"}).json()
    assert edited["tags"] == ["baseline", "v2"]
    assert edited["note"] == "rerun with more seeds"
    assert edited["spec"] == job["spec"]
    shown = client.get(url).json()  # the status poll shows them too
    assert shown["tags"] == ["baseline", "v2"]
    assert shown["note"] == "rerun with more seeds"
    cleared = client.patch(url, json={"tags": [], "note": ""}).json()
    assert cleared["tags"] == []
    assert cleared["note"] == ""


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}, "tags"),
        ({"tags": ["x" * (MAX_TAG_LENGTH + 1)]}, "tags[0]"),
        ({"tags": ["ok", "no,commas"]}, "tags[1]"),
        ({"tags": ["  "]}, "tags[0]"),
        ({"note": "n" * (MAX_NOTE_LENGTH + 1)}, "note"),
        ({"notes": "typo"}, "notes"),
    ],
)
def test_limits_are_422_naming_the_field(client: TestClient, dataset, body, field):
    job = client.post("/api/v1/jobs", json=job_spec(str(dataset["id"]))).json()
    problem = _problem(client.patch(f"/api/v1/jobs/{job['id']}", json=body), 422)
    assert field in _fields(problem), problem
    assert client.get(f"/api/v1/jobs/{job['id']}").json()["tags"] == []  # nothing stored


@SQLITE_ONLY
def test_another_owners_job_is_not_found(settings: Settings):
    settings.auth = "on"
    with TestClient(create_app(settings)) as client:
        sessions = client.app.state.sessions  # type: ignore[attr-defined]
        alice, bob = (
            {"Authorization": f"Bearer {create_key(sessions, o).key}"} for o in ("alice", "bob")
        )
        ds = client.post(
            "/api/v1/datasets", files={"file": ("d.csv", family_csv())}, headers=alice
        ).json()
        job = client.post("/api/v1/jobs", json=job_spec(ds["id"]), headers=alice).json()
        url = f"/api/v1/jobs/{job['id']}"
        _problem(client.patch(url, json={"tags": ["mine"]}, headers=bob), 404)
        assert client.get(url, headers=alice).json()["tags"] == []
        assert client.patch(url, json={"tags": ["mine"]}, headers=alice).status_code == 200
        # Bob's list filtered by Alice's tag shows none of her jobs.
        listed = client.get("/api/v1/jobs", params={"tag": "mine"}, headers=bob).json()
        assert listed["items"] == []


def test_filter_by_tag_text_and_status_with_pages(client: TestClient, dataset):
    ds = str(dataset["id"])
    made = {}
    for name, tags in (
        ("churn baseline", ["baseline"]),
        ("churn 100%_wide", ["wide", "sweep"]),
        ("fraud", ["base"]),  # "base" is not "baseline": a tag filter is exact
        ("other", []),
    ):
        job = client.post("/api/v1/jobs", json=job_spec(ds, name=name)).json()
        client.patch(f"/api/v1/jobs/{job['id']}", json={"tags": tags})
        made[name] = job["id"]

    def names(**params: object) -> list[str]:
        body = client.get("/api/v1/jobs", params=params).json()
        return sorted(j["name"] for j in body["items"])

    assert names(tag="baseline") == ["churn baseline"]
    assert names(tag="base") == ["fraud"]
    assert names(tag="sweep") == ["churn 100%_wide"]
    assert names(q="CHURN") == ["churn 100%_wide", "churn baseline"]  # ignoring case
    assert names(q="swe") == ["churn 100%_wide"]  # in a tag
    assert names(q="100%_") == ["churn 100%_wide"]  # % and _ are literal
    assert names(q="%") == ["churn 100%_wide"]
    assert names(q="zzz") == []
    assert names(status="queued", q="churn") == ["churn 100%_wide", "churn baseline"]
    assert names(status="succeeded", q="churn") == []
    # Pagination keeps the filter: two pages of one, then none.
    first = client.get("/api/v1/jobs", params={"q": "churn", "page_size": 1})
    token = first.json()["next_page_token"]
    assert token
    assert 'rel="next"' in first.headers["link"]
    assert "q=churn" in first.headers["link"]
    second = client.get("/api/v1/jobs", params={"q": "churn", "page_size": 1, "page_token": token})
    assert len(second.json()["items"]) == 1
    assert second.json()["items"][0]["id"] != first.json()["items"][0]["id"]
    assert second.json()["next_page_token"] is None


def test_text_search_finds_the_main_task_and_the_data_set_name(client: TestClient, dataset):
    """``?q=`` is the job list's search box: besides name and tags it finds a job by its
    main task (display name or column) and by its data set's name."""
    ds = str(dataset["id"])
    other = client.post(
        "/api/v1/datasets", files={"file": ("tox21_assays.csv", family_csv(seed=1))}
    ).json()
    made = {
        "named": job_spec(ds, name="a", main_task={"column": "y", "name": "Churn risk"}),
        "by column": job_spec(
            ds, name="b", main_task={"column": "rel_1_0.20"}, candidates=[{"column": "y"}]
        ),
        "other data": job_spec(str(other["id"]), name="c"),
    }
    for spec in made.values():
        assert client.post("/api/v1/jobs", json=spec).status_code == 202

    def names(q: str) -> list[str]:
        body = client.get("/api/v1/jobs", params={"q": q}).json()
        return sorted(j["name"] for j in body["items"])

    assert names("churn RISK") == ["a"]  # the main task's display name
    assert names("rel_1_0.2") == ["b"]  # its column
    assert names("TOX21") == ["c"]  # the data set's name
    assert names("family") == ["a", "b"]
    assert names("0.9") == []  # a candidate's column is not the main task


@SQLITE_ONLY
def test_list_carries_the_top_candidate_of_succeeded_jobs(
    client: TestClient, worker: Worker, dataset
):
    ds = str(dataset["id"])
    done = client.post("/api/v1/jobs", json=job_spec(ds, name="done")).json()
    assert worker.run_one()
    queued = client.post("/api/v1/jobs", json=job_spec(ds, name="queued")).json()
    items = {j["id"]: j for j in client.get("/api/v1/jobs").json()["items"]}
    ranking = client.get(f"/api/v1/jobs/{done['id']}/ranking").json()
    first = ranking["candidates"][0]
    top = items[done["id"]]["top_candidate"]
    assert top == {"name": first["name"], "verdict": first["verdict"], "gain": first["gain"]}
    assert items[queued["id"]]["top_candidate"] is None


def test_tags_and_note_at_submission_stay_out_of_the_spec(client: TestClient, dataset):
    body = {**job_spec(str(dataset["id"])), "tags": ["sweep", "sweep", "v1"], "note": "why"}
    job = client.post("/api/v1/jobs", json=body).json()
    assert job["tags"] == ["sweep", "v1"]
    assert job["note"] == "why"
    # The spec is what trains: no metadata in it (a clone copies the spec alone).
    assert "tags" not in job["spec"]
    assert "note" not in job["spec"]
    listed = client.get("/api/v1/jobs", params={"tag": "v1"}).json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"tags": ["x" * (MAX_TAG_LENGTH + 1)]}, "tags[0]"),
        ({"tags": ["t"] * (MAX_TAGS + 1)}, "tags"),
        ({"note": "n" * (MAX_NOTE_LENGTH + 1)}, "note"),
        ({"note": "a\x00b"}, "note"),  # PostgreSQL cannot store a NUL
    ],
)
def test_submission_metadata_limits_are_422(client: TestClient, dataset, extra, field):
    body = {**job_spec(str(dataset["id"])), **extra}
    problem = _problem(client.post("/api/v1/jobs", json=body), 422)
    assert field in _fields(problem), problem
    assert client.get("/api/v1/jobs").json()["items"] == []  # nothing queued


def test_a_nul_in_an_edited_note_is_422(client: TestClient, dataset):
    job = client.post("/api/v1/jobs", json=job_spec(str(dataset["id"]))).json()
    problem = _problem(client.patch(f"/api/v1/jobs/{job['id']}", json={"note": "a\x00"}), 422)
    assert "note" in _fields(problem)
