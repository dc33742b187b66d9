"""Every bad request gets a 4xx problem+json naming the field and the fix, and nothing
is written for a rejected request."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.db.models import Dataset, IdempotencyKey, Job
from tests.conftest import family_csv, job_spec


def _counts(client):
    with client.app.state.sessions() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model))
            for model in (Dataset, Job, IdempotencyKey)
        )


def _problem(response, status, field=None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    if field is not None:
        fields = [e["field"] for e in body["errors"]]
        assert field in fields, body
    return body


def _spec_cases(dataset_id):
    base = job_spec(dataset_id)
    three = base["candidates"]
    return {
        "unknown dataset": (job_spec("ds_missing"), "dataset_id", "upload one first"),
        "unknown main column": (
            {**base, "main_task": {"column": "nope"}},
            "main_task.column",
            "not in data set",
        ),
        "unknown candidate column": (
            {**base, "candidates": [{"column": "nope"}]},
            "candidates[0].column",
            "not in",
        ),
        "candidate equals main": (
            {**base, "candidates": [{"column": "y"}]},
            "candidates[0].column",
            "main task itself",
        ),
        "label used as feature": (
            {**base, "features": ["x0", "rel_0_0.90"]},
            "features[1]",
            "is a label",
        ),
        "unknown feature": ({**base, "features": ["x0", "zz"]}, "features[1]", "not in"),
        "binary on a numeric column": (
            {**base, "main_task": {"column": "y", "kind": "binary"}},
            "main_task.kind",
            "binary needs exactly 2",
        ),
        "duplicate names": (
            {**base, "candidates": [*three, {"column": "x0", "name": "noise_0"}]},
            "candidates[3].name",
            "used twice",
        ),
        "metric for another kind": ({**base, "metric": "auroc"}, "metric", "does not apply"),
        "too many seeds": ({**base, "budget": {"seeds": 51}}, "budget.seeds", "AUXSEL_MAX_SEEDS"),
        "too many epochs": (
            {**base, "budget": {"epochs": 5000}},
            "budget.epochs",
            "AUXSEL_MAX_EPOCHS",
        ),
        "too wide": ({**base, "budget": {"hidden": [10000]}}, "budget.hidden[0]", "WIDTH"),
        "probe-epoch cap": (
            {**base, "budget": {"seeds": 10, "epochs": 100}},
            "budget",
            "AUXSEL_MAX_PROBE_EPOCHS",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown dataset",
        "unknown main column",
        "unknown candidate column",
        "candidate equals main",
        "label used as feature",
        "unknown feature",
        "binary on a numeric column",
        "duplicate names",
        "metric for another kind",
        "too many seeds",
        "too many epochs",
        "too wide",
        "probe-epoch cap",
    ],
)
def test_job_spec_errors(client, settings, dataset, case):
    settings.max_probe_epochs = 2000  # 10 seeds x 100 epochs x 4 probes exceeds it
    spec, field, message = _spec_cases(dataset["id"])[case]
    before = _counts(client)
    body = _problem(client.post("/api/v1/jobs", json=spec), 422, field)
    assert any(message in e["message"] for e in body["errors"]), body
    assert _counts(client) == before


def test_candidate_from_another_dataset_needs_its_features(client, dataset):
    narrow = client.post(
        "/api/v1/datasets",
        files={
            "file": (
                "narrow.csv",
                b"x0,label\n" + b"".join(b"%d,%d\n" % (i, i % 2) for i in range(40)),
            )
        },
    ).json()
    spec = job_spec(dataset["id"], candidates=[{"column": "label", "dataset_id": narrow["id"]}])
    before = _counts(client)
    body = _problem(client.post("/api/v1/jobs", json=spec), 422, "candidates")
    assert "lacks feature column(s)" in body["errors"][0]["message"]
    assert _counts(client) == before
    # With features both tables share, the same candidate is accepted.
    ok = client.post("/api/v1/jobs", json={**spec, "features": ["x0"]})
    assert ok.status_code == 202, ok.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"main_task": {"column": "y"}, "candidates": [{"column": "x0"}]}, "dataset_id"),
        ({"dataset_id": "d", "main_task": {"column": "y"}, "candidates": []}, "candidates"),
        (
            {
                "dataset_id": "d",
                "main_task": {"column": "y"},
                "candidates": [{"column": "a"}],
                "surprise": 1,
            },
            "surprise",
        ),
        (
            {
                "dataset_id": "d",
                "main_task": {"column": "y"},
                "candidates": [{"column": "a"}],
                "budget": {"seeds": "3"},
            },
            "budget.seeds",
        ),
        (
            {
                "dataset_id": "d",
                "main_task": {"column": "y"},
                "candidates": [{"column": "a"}],
                "budget": {"seeds": True},
            },
            "budget.seeds",
        ),
        (
            {
                "dataset_id": "d",
                "main_task": {"column": "y", "kind": "ordinal"},
                "candidates": [{"column": "a"}],
            },
            "main_task.kind",
        ),
        (
            {
                "dataset_id": "d",
                "main_task": {"column": "y"},
                "candidates": [{"column": "a"}],
                "method": "magic",
            },
            "method",
        ),
    ],
)
def test_malformed_job_bodies(client, body, field):
    before = _counts(client)
    _problem(client.post("/api/v1/jobs", json=body), 422, field)
    assert _counts(client) == before


def test_body_that_is_not_json(client):
    response = client.post(
        "/api/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    _problem(response, 422)


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("ragged.csv", b"a,b,c\n1,2,3\n4,5\n", "every row needs the same number of fields"),
        ("long.csv", b"a,b\n1,2\n3,4,5\n", "same number of fields"),
        ("header.csv", b"a,b,c\n", "no data rows"),
        ("dupe.csv", b"a,b,a\n1,2,3\n", "appears more than once"),
        ("latin1.csv", "name,city\nJos\u00e9,M\u00fcnchen\n".encode("latin-1"), "UTF-8"),
        ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 50, "neither CSV"),
        ("fake.parquet", b"a,b\n1,2\n", "not a Parquet file"),
        ("empty.csv", b"", "empty"),
        ("blank.csv", b"a,,c\n1,2,3\n", "empty name"),
    ],
)
def test_bad_uploads(client, filename, content, message):
    before = _counts(client)
    body = _problem(client.post("/api/v1/datasets", files={"file": (filename, content)}), 422)
    assert message in body["detail"], body
    assert _counts(client) == before
    assert client.app.state.storage.keys() == []  # the rejected file is gone


def test_upload_over_the_size_limit_is_refused(client, settings):
    settings.max_upload_mb = 0.01  # 10 KiB
    big = b"a,b\n" + b"1,2\n" * 20_000
    before = _counts(client)
    body = _problem(client.post("/api/v1/datasets", files={"file": ("big.csv", big)}), 413)
    assert "AUXSEL_MAX_UPLOAD_MB" in body["errors"][0]["message"]
    assert _counts(client) == before
    assert client.app.state.storage.keys() == []


def test_upload_needs_multipart_with_a_file(client):
    _problem(client.post("/api/v1/datasets", content=b"a,b\n1,2\n"), 415, "file")
    _problem(client.post("/api/v1/datasets", data={"name": "x"}, files={"other": ("a", b"1")}), 422)


def test_row_and_column_limits(client, settings):
    settings.max_columns = 3
    wide = b"a,b,c,d\n1,2,3,4\n"
    _problem(client.post("/api/v1/datasets", files={"file": ("w.csv", wide)}), 422, "file")
    settings.max_columns = 100
    settings.max_rows = 5
    tall = b"a\n" + b"1\n" * 6
    body = _problem(client.post("/api/v1/datasets", files={"file": ("t.csv", tall)}), 422)
    assert "AUXSEL_MAX_ROWS" in body["errors"][0]["message"]


def test_path_like_file_names_are_cleaned(client):
    response = client.post(
        "/api/v1/datasets", files={"file": ("../../etc/passwd.csv", family_csv())}
    )
    assert response.status_code == 201
    assert response.json()["filename"] == "passwd.csv"


def test_unknown_ids_are_404(client):
    _problem(client.get("/api/v1/jobs/job_nope"), 404)
    _problem(client.get("/api/v1/jobs/job_nope/ranking"), 404)
    _problem(client.post("/api/v1/jobs/job_nope/cancel"), 404)
    _problem(client.get("/api/v1/datasets/ds_nope"), 404)
    _problem(client.delete("/api/v1/datasets/ds_nope"), 404)
