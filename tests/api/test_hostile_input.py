"""Hostile and broken input beyond tests/api/test_validation.py: rate limits, bodies
without Content-Length, very wide and very long tables, labels with NaN / inf / mixed
types, formula injection in exported CSV, path-like file names, and the job-spec limits
and extremes not covered there. Every refusal is a clear 4xx problem+json that names
the field, and leaves no row and no stored file behind."""

from __future__ import annotations

import csv
import io
import json
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.db.models import Dataset, IdempotencyKey, Job
from app.main import create_app
from app.security.auth import create_key
from app.security.ratelimit import RateLimiter
from tests.conftest import family_csv, job_spec

# Checks of the request alone (no SQL difference to see): SQLite only, to keep CI short.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _counts(client):
    with client.app.state.sessions() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model))
            for model in (Dataset, Job, IdempotencyKey)
        )


def _stored(client) -> list[str]:
    root = client.app.state.storage.root
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _problem(response, status, field=None, message=None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    if message is not None:
        assert message in body["detail"] or any(
            message in e["message"] for e in body.get("errors", [])
        ), body
    return body


def _upload(client, name: str, content: bytes, status: int = 201):
    response = client.post("/api/v1/datasets", files={"file": (name, content)})
    assert response.status_code == status, response.text
    return response.json()


# --- rate limits -----------------------------------------------------------------------


def test_token_bucket_refills_at_the_configured_rate():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.take("a", "submit", 3) for _ in range(3)] == [0, 0, 0]  # a burst of 3
    assert limiter.take("a", "submit", 3) == pytest.approx(20.0)  # 3/min: one per 20 s
    assert limiter.take("b", "submit", 3) == 0  # another owner has its own bucket
    now[0] = 20.0
    assert limiter.take("a", "submit", 3) == 0
    assert limiter.take("a", "submit", 0) == 0  # 0 = no limit


def test_submissions_over_the_rate_are_429_with_retry_after(client, settings, dataset):
    settings.rate_submit_per_min = 3
    for _ in range(3):
        assert client.post("/api/v1/jobs", json=job_spec(dataset["id"])).status_code == 202
    before = _counts(client)
    response = client.post("/api/v1/jobs", json=job_spec(dataset["id"]))
    body = _problem(response, 429, "rate", "3 job submissions per minute")
    assert body["type"].endswith("/rate-limited")
    assert "AUXSEL_RATE_SUBMIT_PER_MIN" in body["errors"][0]["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 20
    assert _counts(client) == before
    # Reads are not limited.
    assert client.get("/api/v1/jobs").status_code == 200


def test_uploads_over_the_rate_are_429_before_the_body_is_read(client, settings):
    settings.rate_upload_per_min = 2
    _upload(client, "a.csv", family_csv(seed=1))
    _upload(client, "b.csv", family_csv(seed=2))
    before, files = _counts(client), _stored(client)
    response = client.post("/api/v1/datasets", files={"file": ("c.csv", family_csv(seed=3))})
    _problem(response, 429, "rate", "2 uploads per minute")
    assert int(response.headers["Retry-After"]) >= 1
    assert _counts(client) == before
    assert _stored(client) == files


def test_rate_limits_are_per_api_key_owner(settings):
    settings.auth = "on"
    settings.rate_submit_per_min = 1
    with TestClient(create_app(settings)) as client:
        alice = create_key(client.app.state.sessions, "alice")
        bob = create_key(client.app.state.sessions, "bob")
        for key in (alice, bob):
            auth = {"Authorization": f"Bearer {key.key}"}
            ds = client.post(
                "/api/v1/datasets", files={"file": ("d.csv", family_csv())}, headers=auth
            ).json()
            first = client.post("/api/v1/jobs", json=job_spec(ds["id"]), headers=auth)
            assert first.status_code == 202, first.text
            again = client.post("/api/v1/jobs", json=job_spec(ds["id"]), headers=auth)
            _problem(again, 429)


# --- bodies without (or lying about) Content-Length --------------------------------------


def _multipart_stream(boundary: str, rows: int):
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\na,b\n"
    ).encode()
    for _ in range(rows // 1000):
        yield b"1,2\n" * 1000
    yield f"\r\n--{boundary}--\r\n".encode()


def test_chunked_upload_without_content_length_is_cut_off_at_the_limit(client, settings):
    settings.max_upload_mb = 0.05  # 50 KiB
    boundary = "b0undary"
    before = _counts(client)
    response = client.post(
        "/api/v1/datasets",
        content=_multipart_stream(boundary, 200_000),  # 800 KB, streamed, no length
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    body = _problem(response, 413, "file")
    assert "rejected while streaming" in body["detail"]
    assert _counts(client) == before
    assert _stored(client) == []


@SQLITE_ONLY
def test_huge_json_bodies_are_refused_while_streaming(client):
    big = b'{"dataset_id": "' + b"x" * (2 << 20) + b'"}'
    _problem(
        client.post("/api/v1/jobs", content=big, headers={"Content-Type": "application/json"}), 413
    )

    def stream():
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    response = client.post(
        "/api/v1/jobs", content=stream(), headers={"Content-Type": "application/json"}
    )
    _problem(response, 413)
    assert _counts(client) == (0, 0, 0)


# --- very wide, very long ------------------------------------------------------------------


@SQLITE_ONLY
def test_a_hundred_thousand_columns_are_refused_quickly_with_the_exact_count(client):
    header = ",".join(f"c{i}" for i in range(100_000)).encode()
    content = header + b"\n" + b",".join([b"1"] * 100_000) + b"\n"
    start = time.monotonic()
    body = _problem(
        client.post("/api/v1/datasets", files={"file": ("wide.csv", content)}), 422, "file"
    )
    # Generous for a loaded CI machine; parsing every cell would take minutes.
    assert time.monotonic() - start < 60
    assert "100,000 columns; the limit is 2,000" in body["detail"]
    assert _stored(client) == []


@SQLITE_ONLY
def test_a_wide_parquet_file_is_refused_from_its_metadata(client):
    table = pa.table({f"c{i}": [1, 2] for i in range(2_500)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    body = _problem(
        client.post("/api/v1/datasets", files={"file": ("wide.parquet", buffer.getvalue())}),
        422,
        "file",
    )
    assert "2,500 columns" in body["detail"]
    assert _stored(client) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_million_unique_strings_upload_fast_and_are_refused_as_a_label(client):
    rows = 1_000_000
    content = b"x,z,s\n" + b"".join(b"%d,%d,id%07d\n" % (i % 7, i % 3, i) for i in range(rows))
    start = time.monotonic()
    dataset = _upload(client, "ids.csv", content)
    took = time.monotonic() - start
    # A bound against quadratic work, generous for a loaded CI machine (idle: ~5 s).
    assert took < 180, took
    profile = {c["name"]: c for c in dataset["profile"]}
    assert profile["s"]["unique"] == rows
    assert dataset["rows"] == rows
    spec = {
        "dataset_id": dataset["id"],
        "main_task": {"column": "s"},
        "candidates": [{"column": "z"}],
    }
    body = _problem(client.post("/api/v1/jobs", json=spec), 422, "main_task.column")
    assert "'s' has 1,000,000 distinct values" in body["detail"]
    assert "identifiers or free text cannot be a label" in body["detail"]
    as_candidate = {**spec, "main_task": {"column": "z"}, "candidates": [{"column": "s"}]}
    _problem(client.post("/api/v1/jobs", json=as_candidate), 422, "candidates[0].column")


# --- labels with NaN, inf, mixed types, extreme values ----------------------------------------


LABELS_CSV = (
    "x0,x1,y,with_inf,mixed,all_missing,some_missing,huge\n"
    + "".join(
        f"{i},{(i * 7) % 11},{i % 5},{'inf' if i == 3 else i % 4},"
        f"{'n/a?' if i == 5 else i % 3},,{'' if i % 4 == 0 else i % 2},{i * 1e30}\n"
        for i in range(60)
    )
).encode()


@pytest.fixture
def labels(client):
    return _upload(client, "labels.csv", LABELS_CSV)


@pytest.mark.parametrize(
    ("task", "field", "message"),
    [
        ({"column": "with_inf"}, "main_task.column", "'with_inf' holds 1 infinite value(s)"),
        ({"column": "mixed"}, "main_task.column", "'mixed' mixes numbers and text"),
        ({"column": "all_missing"}, "main_task.column", "every value is missing"),
        ({"column": "huge"}, "main_task.column", "beyond ±1e30"),
    ],
)
def test_bad_main_labels_are_422_naming_the_column(client, labels, task, field, message):
    before = _counts(client)
    spec = {"dataset_id": labels["id"], "main_task": task, "candidates": [{"column": "y"}]}
    body = _problem(client.post("/api/v1/jobs", json=spec), 422, field)
    assert any(message in e["message"] for e in body["errors"]), body
    assert _counts(client) == before


@pytest.mark.parametrize("column", ["with_inf", "mixed", "all_missing", "huge"])
def test_bad_candidate_labels_are_422_naming_the_column(client, labels, column):
    spec = {
        "dataset_id": labels["id"],
        "main_task": {"column": "y"},
        "candidates": [{"column": "some_missing"}, {"column": column}],
    }
    body = _problem(client.post("/api/v1/jobs", json=spec), 422, "candidates[1].column")
    assert f"{column!r}" in body["detail"]


def test_mixed_labels_are_accepted_as_declared_categories_and_missing_labels_skipped(
    client, labels
):
    profile = {c["name"]: c for c in labels["profile"]}
    assert profile["mixed"]["mixed"] == {"numbers": 3, "text": 1, "example": "n/a?"}
    assert profile["with_inf"]["infinite"] == 1
    assert profile["huge"]["huge"] > 0
    spec = {
        "dataset_id": labels["id"],
        "main_task": {"column": "y"},
        # Missing labels (some_missing) are masked out of the loss, not refused.
        "candidates": [{"column": "mixed", "kind": "multiclass"}, {"column": "some_missing"}],
        "features": ["x0", "x1"],
    }
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 202, response.text


# --- exported CSV and file names ----------------------------------------------------------------


def test_formula_cells_in_the_ranking_csv_are_escaped(client, worker):
    family = family_csv().decode()
    header, rest = family.split("\n", 1)
    header = header.replace("rel_0_0.90", '=HYPERLINK("http://evil";"x")')
    dataset = _upload(client, "f.csv", f"{header}\n{rest}".encode())
    spec = job_spec(
        dataset["id"],
        candidates=[
            {"column": '=HYPERLINK("http://evil";"x")'},
            {"column": "rel_1_0.20", "name": "+cmd|' /C calc'!A0"},
            {"column": "noise_0", "name": "@SUM(A1:A9)"},
        ],
    )
    job = client.post("/api/v1/jobs", json=spec).json()
    assert worker.run_one()
    response = client.get(f"/api/v1/jobs/{job['id']}/ranking", params={"format": "csv"})
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    cells = [r[k] for r in rows for k in ("name", "column")]
    assert '\'=HYPERLINK("http://evil";"x")' in cells
    assert "'+cmd|' /C calc'!A0" in cells
    assert "'@SUM(A1:A9)" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")]
    # The JSON ranking keeps the names as they are.
    names = {
        c["name"] for c in client.get(f"/api/v1/jobs/{job['id']}/ranking").json()["candidates"]
    }
    assert "@SUM(A1:A9)" in names


SEPARATOR_ATTACKS = {  # sent: exported
    "x;=cmd|' /C calc'!A0": "x;'=cmd|' /C calc'!A0",  # issue 16: split on ;, =cmd ran
    "y\t=1+1": "y\t'=1+1",
    "z,@SUM(1)": "z,'@SUM(1)",
    "w; -2+3": "w; '-2+3",
    "v|=HYPERLINK(0)": "v|'=HYPERLINK(0)",
    "=a;+b": "'=a;'+b",
    "-1": "'-1",
    "plain, text - fine": "plain, text - fine",
}


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


@SQLITE_ONLY
def test_formulas_after_a_separator_in_the_ranking_csv_are_escaped(client, worker):
    """OWASP CSV injection: a cell that holds a separator followed by a trigger is a
    formula for a program that splits on that separator. Every text cell is quoted and
    such cells prefixed, so no way of splitting the file yields a cell starting with a
    trigger."""
    names = ["rel_0_0.90", "rel_1_0.20", "noise_0"]
    dataset = _upload(client, "f.csv", family_csv())
    sent = list(SEPARATOR_ATTACKS)[:3]
    candidates = [{"column": c, "name": n} for c, n in zip(names, sent, strict=True)]
    job = client.post("/api/v1/jobs", json=job_spec(dataset["id"], candidates=candidates))
    assert job.status_code == 202, job.text
    assert worker.run_one()
    response = client.get(f"/api/v1/jobs/{job.json()['id']}/ranking", params={"format": "csv"})
    assert response.status_code == 200
    text = response.text
    names_out = [row["name"] for row in csv.DictReader(io.StringIO(text))]
    assert sorted(names_out) == sorted(SEPARATOR_ATTACKS[n] for n in sent)
    for delimiter in (",", ";", "\t", "|"):
        for row in csv.reader(io.StringIO(text), delimiter=delimiter):
            for cell in row:
                assert _is_number(cell) or not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (
                    delimiter,
                    cell,
                )


def test_csv_cells_with_a_hidden_formula_are_escaped_and_quoted():
    from app.data.export import csv_bytes

    frame = pd.DataFrame({"name": list(SEPARATOR_ATTACKS), "x": range(len(SEPARATOR_ATTACKS))})
    text = csv_bytes(frame).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert [r[0] for r in rows[1:]] == list(SEPARATOR_ATTACKS.values())
    assert text.splitlines()[1].startswith("\"x;'=cmd")


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("..\\..\\Windows\\system32\\evil.csv", "evil.csv"),
        ("/etc/passwd", "passwd"),
        ("....//....//x.csv", "x.csv"),
        (".hidden.csv", "hidden.csv"),
        ("C:\\Users\\me\\data.csv", "data.csv"),
        ("..", "upload"),
        ("x" * 1000 + ".csv", "x" * 200),
    ],
)
@SQLITE_ONLY
def test_path_like_and_odd_file_names_never_reach_the_filesystem(client, sent, kept):
    dataset = _upload(client, sent, family_csv())
    assert dataset["filename"] == kept
    # Storage is content-addressed: the only file is <sha[:2]>/<sha>.
    sha = dataset["sha256"]
    assert _stored(client) == [f"{sha[:2]}/{sha}"]


# --- job-spec limits and extremes not covered in test_validation.py --------------------------


def _spec_with(dataset_id, **budget):
    return job_spec(dataset_id, budget={"seeds": 2, "max_replicates": 2, "epochs": 3, **budget})


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (lambda s: s["budget"].update(hidden=[8] * 9), "budget.hidden", "AUXSEL_MAX_HIDDEN_LAYERS"),
        (lambda s: s["budget"].update(hidden=[0]), "budget.hidden[0]", "Widths run from 1"),
        (lambda s: s["budget"].update(hidden=[]), "budget.hidden", None),
        (lambda s: s["budget"].update(seeds=10**30), "budget.seeds", "AUXSEL_MAX_SEEDS"),
        (lambda s: s["budget"].update(epochs=0), "budget.epochs", None),
        (lambda s: s["budget"].update(epochs=10**12), "budget.epochs", "AUXSEL_MAX_EPOCHS"),
        (lambda s: s["budget"].update(lam=-1.0), "budget.lam", None),
        (lambda s: s["budget"].update(lam=1e9), "budget.lam", None),
        (lambda s: s["budget"].update(lr=0.0), "budget.lr", None),
        (lambda s: s["budget"].update(batch_size=0), "budget.batch_size", None),
        (lambda s: s["budget"].update(main_train_fraction=0.0), "budget.main_train_fraction", None),
        (lambda s: s["budget"].update(main_train_fraction=1.5), "budget.main_train_fraction", None),
        (lambda s: s["budget"].update(patience=-1), "budget.patience", None),
        (lambda s: s["budget"].update(subset_search="yes"), "budget.subset_search", None),
        (lambda s: s.update(seed=-1), "seed", None),
        (lambda s: s.update(seed=2**31), "seed", None),
        (lambda s: s.update(features=[]), "features", "at least one feature"),
        (lambda s: s.update(features=["x0", "x0"]), "features[1]", "listed twice"),
        (lambda s: s.update(name="n" * 256), "name", None),
        (lambda s: s["main_task"].update(dataset_id="ds_other"), "main_task.dataset_id", None),
        (lambda s: s["main_task"].update(column=""), "main_task.column", None),
        (lambda s: s["candidates"][0].update(extra=1), "candidates[0].extra", "Unknown field"),
        (lambda s: s["budget"].update(learning_rate=0.1), "budget.learning_rate", "Unknown field"),
    ],
)
@SQLITE_ONLY
def test_more_job_spec_limits(client, dataset, change, field, message):
    spec = _spec_with(dataset["id"])
    change(spec)
    before = _counts(client)
    body = _problem(client.post("/api/v1/jobs", json=spec), 422, field)
    if message is not None:
        assert any(message in e["message"] for e in body["errors"]), body
    assert _counts(client) == before


def test_candidate_limit_names_its_setting(client, settings, dataset):
    settings.max_candidates = 2
    body = _problem(client.post("/api/v1/jobs", json=job_spec(dataset["id"])), 422, "candidates")
    assert "AUXSEL_MAX_CANDIDATES" in body["detail"]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
@SQLITE_ONLY
def test_non_finite_numbers_in_the_json_body_are_422(client, dataset, literal):
    spec = _spec_with(dataset["id"])
    body = json.dumps(spec).replace('"seeds": 2', '"seeds": 2, "lam": LAM').encode()
    body = body.replace(b"LAM", literal)
    response = client.post(
        "/api/v1/jobs", content=body, headers={"Content-Type": "application/json"}
    )
    _problem(response, 422, "budget.lam")


def test_extreme_but_allowed_budgets_are_accepted_and_cancelable(client, dataset):
    spec = job_spec(dataset["id"], budget={"seeds": 50, "epochs": 1000, "hidden": [4096]})
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["progress"]["total"] == 50 * 1000 * 4
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel").json()["status"] == "canceled"


@SQLITE_ONLY
def test_overlong_idempotency_key_is_422(client, dataset):
    response = client.post(
        "/api/v1/jobs", json=job_spec(dataset["id"]), headers={"Idempotency-Key": "k" * 300}
    )
    _problem(response, 422, "idempotency-key")


@SQLITE_ONLY
@pytest.mark.parametrize(
    "body",
    [
        b"--b\r\nNone--b--\r\n",  # found by schemathesis: a 500 before it was caught
        b"--b\r\nContent-Disposition: form-data; name=[file]\r\n\r\nx\r\n--b--\r\n",
    ],
)
def test_malformed_multipart_is_400_and_stores_nothing(client, body):
    response = client.post(
        "/api/v1/datasets",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert _counts(client) == (0, 0, 0)
    assert _stored(client) == []
