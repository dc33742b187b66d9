"""Error answers that say what went wrong in the user's terms: a file sent in the wrong
form field names the field expected and the one received; a body that is not JSON is
reported against the body, with the decoder's reason and position; and a plain column
name is accepted for a task."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.conftest import family_csv, job_spec

PROBLEM = "application/problem+json"


def _problem(response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    return dict(response.json())


def _stored(client: TestClient) -> list[str]:
    return list(client.app.state.storage.keys())  # type: ignore[attr-defined]


def test_a_file_in_the_wrong_form_field_names_the_expected_one(client: TestClient):
    body = _problem(
        client.post("/api/v1/datasets", files={"data": ("t.csv", family_csv(n_rows=60))}), 422
    )
    assert body["expected_field"] == "file"
    assert body["received_field"] == "data"
    assert "`file`" in str(body["detail"])
    assert "'data'" in str(body["detail"])
    assert "too long" not in str(body["detail"])
    assert body["errors"] == [
        {"field": "file", "message": "Send the table as `file` (received 'data')."}
    ]
    assert _stored(client) == []
    assert client.get("/api/v1/datasets").json()["items"] == []


def test_a_long_unknown_form_field_is_named_as_unknown(client: TestClient):
    body = _problem(
        client.post(
            "/api/v1/datasets",
            data={"table": "a,b\n" * 2000},
            files={"file": ("t.csv", family_csv(n_rows=60))},
        ),
        422,
    )
    assert "unknown field 'table'" in str(body["detail"])
    assert body["received_field"] == "table"
    assert _stored(client) == []


def test_a_form_without_a_file_lists_what_it_received(client: TestClient):
    multipart = b'--b0und\r\nContent-Disposition: form-data; name="nmae"\r\n\r\nx\r\n--b0und--\r\n'
    response = client.post(
        "/api/v1/datasets",
        content=multipart,
        headers={"Content-Type": "multipart/form-data; boundary=b0und"},
    )
    body = _problem(response, 422)
    assert "no `file` part" in str(body["detail"])
    assert "'nmae'" in str(body["detail"])


def test_the_file_part_without_a_filename_is_still_the_table(client: TestClient):
    # curl -F 'file=<t.csv' sends the table as a plain form value.
    boundary = "b0und"
    content = family_csv(n_rows=60)
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"\r\n\r\n'.encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/api/v1/datasets",
        content=multipart,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 60


def test_invalid_json_is_reported_against_the_body_with_its_position(client: TestClient):
    text = '{"dataset_id": "ds_x",}'
    body = _problem(
        client.post(
            "/api/v1/jobs", content=text.encode(), headers={"Content-Type": "application/json"}
        ),
        422,
    )
    errors = body["errors"]
    assert isinstance(errors, list)
    assert len(errors) == 1
    assert errors[0]["field"] == "body"
    message = errors[0]["message"]
    assert message.startswith("The body is not valid JSON: ")
    assert f"at character {text.index('}')}" in message
    assert "[" not in str(body["detail"]).split(":")[0]
    assert str(body["detail"]).startswith("body: The body is not valid JSON")


def test_a_column_name_is_shorthand_for_a_task(client: TestClient, dataset):
    spec = job_spec(
        str(dataset["id"]), main_task="y", candidates=["rel_0_0.90", {"column": "noise_0"}]
    )
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 202, response.text
    stored = client.get(f"/api/v1/jobs/{response.json()['id']}").json()["spec"]
    assert stored["main_task"]["column"] == "y"
    assert [c["column"] for c in stored["candidates"]] == ["rel_0_0.90", "noise_0"]
    assert stored["candidates"][0] == {
        "column": "rel_0_0.90", "kind": None, "name": None, "dataset_id": None
    }  # fmt: skip


def test_a_bad_shorthand_is_still_a_field_error(client: TestClient, dataset):
    for main, field in (("", "main_task.column"), (3, "main_task")):
        spec = job_spec(str(dataset["id"]), main_task=main)
        body = _problem(client.post("/api/v1/jobs", json=spec), 422)
        assert body["errors"][0]["field"] == field, body  # type: ignore[index]
    body = _problem(
        client.post("/api/v1/jobs", json=job_spec(str(dataset["id"]), main_task="nope")), 422
    )
    assert body["errors"][0]["field"] == "main_task.column"  # type: ignore[index]


def test_the_openapi_document_offers_the_shorthand(client: TestClient):
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    spec = next(v for k, v in schemas.items() if k.startswith("JobSpec"))
    main = spec["properties"]["main_task"]
    assert {"type": "string", "minLength": 1, "maxLength": 255} in main["anyOf"]
    items = spec["properties"]["candidates"]["items"]
    assert any(branch.get("type") == "string" for branch in items["anyOf"])
    json.dumps(document)  # serialisable
