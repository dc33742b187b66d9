"""Column roles (feature, label, id, ignore): inferred at upload, editable, and what a
job's inputs are made of. A label must never silently become an input: with seven
label columns, a job on one candidate must not train on the other six."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from app.db.models import Dataset, Job
from app.demo import demo_family
from app.jobs import attempt
from app.jobs.worker import Worker
from tests.conftest import BITS, TOX_LABELS, family_csv, job_spec, tox_csv


def _upload(client: TestClient, data: bytes, name: str = "t.csv") -> dict[str, Any]:
    response = client.post("/api/v1/datasets", files={"file": (name, data)})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _jobs(client: TestClient) -> int:
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def _roles(dataset: dict[str, Any]) -> dict[str, str]:
    return {name: r["role"] for name, r in dataset["roles"].items()}


def test_roles_are_inferred_on_the_demo_table(client: TestClient):
    """`auxsel demo`'s table: the 32 numbered inputs x0..x31 are features; y (by its
    name) and the candidates beside the x block are labels, each with its reason."""
    family = demo_family(0)
    dataset = _upload(client, family.frame.to_csv(index=False).encode(), "demo.csv")
    roles = dataset["roles"]
    assert list(roles) == list(family.frame.columns)  # every column, in the table's order
    assert _roles(dataset) == {
        **{f"x{i}": "feature" for i in range(32)},
        "y": "label",
        **dict.fromkeys(family.candidates, "label"),  # rel_0_0.95 ... noise_1
    }
    assert set(family.candidates) >= {"rel_0_0.95", "noise_1"}
    assert "'y' names a target" in roles["y"]["reason"]
    assert "32 numbered feature columns x<n>" in roles["rel_0_0.95"]["reason"]
    assert "32 numbered feature columns" in roles["x7"]["reason"]
    assert {r["set_by"] for r in roles.values()} == {"inferred"}
    # Stored: the data set's page shows the same roles.
    assert client.get(f"/api/v1/datasets/{dataset['id']}").json()["roles"] == roles


def test_a_job_on_one_candidate_does_not_train_on_the_other_labels(client: TestClient):
    """The reported bug: one candidate on a table with seven label columns. The inputs
    are the fingerprint bits only: not the other five labels, not the SMILES id."""
    dataset = _upload(client, tox_csv(), "tox.csv")
    roles = dataset["roles"]
    assert _roles(dataset) == {
        "smiles": "id",
        **dict.fromkeys(BITS, "feature"),
        **dict.fromkeys(TOX_LABELS, "label"),
    }
    assert "Partially labelled" in roles["NR-AR"]["reason"]
    assert "names an identifier" in roles["smiles"]["reason"]
    spec = job_spec(dataset["id"], main_task={"column": "NR-AR"}, candidates=[{"column": "SR-ARE"}])
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 202, response.text
    assert response.json()["inputs"] == BITS
    again = client.get(response.headers["location"]).json()
    assert again["inputs"] == BITS


def test_a_label_named_in_features_is_refused_with_the_fix(client: TestClient):
    dataset = _upload(client, tox_csv(), "tox.csv")
    spec = job_spec(
        dataset["id"],
        main_task={"column": "NR-AR"},
        candidates=[{"column": "SR-ARE"}],
        features=[*BITS, "NR-AhR"],
    )
    before = _jobs(client)
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert "features[16]" in body["detail"]
    assert "'NR-AhR'" in body["detail"]
    [error] = body["errors"]
    assert error["field"] == "features[16]"
    assert "'NR-AhR' has the role label" in error["message"]
    assert "Drop it from `features`" in error["message"]
    assert f"PATCH /api/v1/datasets/{dataset['id']}/columns" in error["message"]
    assert _jobs(client) == before  # nothing queued

    # The fix it names: once the owner says NR-AhR is a feature, the same job is taken.
    patched = client.patch(
        f"/api/v1/datasets/{dataset['id']}/columns", json={"roles": {"NR-AhR": "feature"}}
    )
    assert patched.status_code == 200, patched.text
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 202, response.text
    assert response.json()["inputs"] == [*BITS, "NR-AhR"]


def test_editing_roles_changes_new_jobs_and_old_jobs_keep_their_inputs(
    client: TestClient, worker: Worker, monkeypatch: pytest.MonkeyPatch
):
    dataset = _upload(client, family_csv())
    xs = [f"x{i}" for i in range(6)]
    # family_csv has no sign of which columns are labels: all but y are features.
    assert _roles(dataset) == {
        **dict.fromkeys(xs, "feature"),
        "y": "label",
        "rel_0_0.90": "feature",
        "rel_1_0.20": "feature",
        "noise_0": "feature",
    }
    one = job_spec(dataset["id"], candidates=[{"column": "rel_0_0.90"}])
    old = client.post("/api/v1/jobs", json=one)
    assert old.status_code == 202, old.text
    assert old.json()["inputs"] == [*xs, "rel_1_0.20", "noise_0"]

    patched = client.patch(
        f"/api/v1/datasets/{dataset['id']}/columns",
        json={"roles": {"rel_1_0.20": "label", "noise_0": "ignore"}},
    )
    assert patched.status_code == 200, patched.text
    roles = patched.json()["roles"]
    assert roles["rel_1_0.20"] == {
        "role": "label",
        "reason": "Set by the data set's owner.",
        "set_by": "user",
    }
    assert roles["noise_0"]["role"] == "ignore"
    assert roles["rel_0_0.90"]["set_by"] == "inferred"  # the others keep theirs
    assert client.get(f"/api/v1/datasets/{dataset['id']}").json()["roles"] == roles

    new = client.post("/api/v1/jobs", json=one)
    assert new.status_code == 202, new.text
    assert new.json()["inputs"] == xs
    # The old job still shows, and trains on, what it was given at submission.
    assert client.get(old.headers["location"]).json()["inputs"] == [*xs, "rel_1_0.20", "noise_0"]
    used: list[object] = []
    real = attempt.build_context

    def spy(*args: Any, **kwargs: Any) -> Any:
        used.append(kwargs.get("inputs"))
        return real(*args, **kwargs)

    monkeypatch.setattr(attempt, "build_context", spy)
    assert worker.run_one() is True  # the oldest queued job first
    assert used == [[*xs, "rel_1_0.20", "noise_0"]]
    finished = client.get(old.headers["location"]).json()
    assert finished["status"] == "succeeded", finished
    assert finished["inputs"] == [*xs, "rel_1_0.20", "noise_0"]
    page = client.get(f"/jobs/{old.json()['id']}")
    assert page.status_code == 200
    shown = page.text.split('id="input-columns">')[1].split("</p>")[0]
    assert shown == ", ".join([*xs, "rel_1_0.20", "noise_0"])


def test_bad_role_edits_are_refused_and_change_nothing(client: TestClient):
    dataset = _upload(client, family_csv())
    url = f"/api/v1/datasets/{dataset['id']}/columns"

    unknown = client.patch(url, json={"roles": {"nope": "label", "rel_0_0.90": "label"}})
    assert unknown.status_code == 422, unknown.text
    assert unknown.headers["content-type"].startswith("application/problem+json")
    [error] = unknown.json()["errors"]
    assert error["field"] == "roles.nope"
    assert "No column 'nope'" in error["message"]
    assert "'x0'" in error["message"]

    bad_role = client.patch(url, json={"roles": {"rel_0_0.90": "target"}})
    assert bad_role.status_code == 422, bad_role.text
    assert bad_role.headers["content-type"].startswith("application/problem+json")
    [error] = bad_role.json()["errors"]
    assert error["field"] == "roles.rel_0_0.90"
    assert all(r in error["message"] for r in ("'feature'", "'label'", "'id'", "'ignore'"))

    for body in ({"roles": {}}, {"roles": {"y": "label"}, "extra": 1}, {"y": "label"}):
        response = client.patch(url, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")

    missing = client.patch("/api/v1/datasets/ds_nope/columns", json={"roles": {"y": "label"}})
    assert missing.status_code == 404
    # Nothing was changed by any of them.
    assert client.get(f"/api/v1/datasets/{dataset['id']}").json()["roles"] == dataset["roles"]


def test_each_inference_rule_with_the_reason_a_user_reads(client: TestClient):
    """One table with a column for each rule (docs/datasets.md, "How roles are inferred");
    no feature series and no sparse columns, so the plain columns stay features."""
    n = 60
    rng = np.random.default_rng(1)
    words = ["the", "customer", "called", "about", "a", "late", "refund", "twice"]
    frame = pd.DataFrame(
        {
            "row": np.arange(n) * 7 + 3,  # integers unique per row
            "customer_id": rng.integers(0, 5, n),  # an id by its name, even repeating
            "region": ["eu", "us", "apac"] * (n // 3),  # a categorical feature
            "age": rng.integers(18, 80, n),
            "score": rng.normal(size=n),
            "source": ["web"] * n,  # constant
            "signed_up": pd.date_range("2024-01-01", periods=n, freq="D"),
            "note": [" ".join(rng.choice(words, 6)) + f" #{i}" for i in range(n)],
            "churn_label": rng.integers(0, 2, n),
            "y": np.arange(n),  # a target's name beats "unique integers"
        }
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    dataset = _upload(client, buffer.getvalue(), "mixed.parquet")
    roles = dataset["roles"]
    assert _roles(dataset) == {
        "row": "id",
        "customer_id": "id",
        "region": "feature",
        "age": "feature",
        "score": "feature",
        "source": "ignore",
        "signed_up": "ignore",
        "note": "ignore",
        "churn_label": "label",
        "y": "label",
    }
    assert roles["row"]["reason"] == "Integers, unique in every row."
    assert roles["customer_id"]["reason"] == "The name 'customer_id' names an identifier."
    assert roles["source"]["reason"] == "Constant: every row holds the same value."
    assert roles["signed_up"]["reason"] == "Dates are not used as features."
    assert roles["note"]["reason"].startswith("Free text: 60 distinct values in 60 rows")
    assert roles["churn_label"]["reason"] == "The name 'churn_label' names a target."
    spec = job_spec(
        dataset["id"], main_task={"column": "churn_label"}, candidates=[{"column": "y"}]
    )
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 202, response.text
    assert response.json()["inputs"] == ["region", "age", "score"]


def test_a_data_set_from_before_roles_gets_them_inferred_on_read(client: TestClient):
    """A data set stored before migration 0005 has no roles: reading it, submitting on
    it and editing it all work, with the roles inferred from its stored profile."""
    family = demo_family(0)
    dataset = _upload(client, family.frame.to_csv(index=False).encode(), "demo.csv")
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        session.execute(update(Dataset).values(roles=None))
        session.commit()
    read = client.get(f"/api/v1/datasets/{dataset['id']}").json()
    assert read["roles"] == dataset["roles"]  # the same rules, on the stored profile
    spec = job_spec(dataset["id"], candidates=[{"column": "rel_0_0.95"}])
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 202, response.text
    assert response.json()["inputs"] == [f"x{i}" for i in range(32)]
    patched = client.patch(
        f"/api/v1/datasets/{dataset['id']}/columns", json={"roles": {"x31": "ignore"}}
    )
    assert patched.status_code == 200, patched.text
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        stored = session.scalar(select(Dataset.roles))
    assert stored is not None
    assert list(stored) == list(family.frame.columns)  # every role is stored now
    assert stored["x31"]["set_by"] == "user"
    assert stored["y"] == dataset["roles"]["y"]
