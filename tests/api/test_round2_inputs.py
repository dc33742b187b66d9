"""Security round 2, uploads and inputs (docs/security.md): each attack of issue 16 on
uploads, names, page tokens and list/error sizes, replayed against a real `auxsel serve`
process on SQLite and PostgreSQL. Every refusal is a 4xx problem+json naming the field,
leaves neither a data set row nor a stored file, and the server's memory stays bounded
(its VmHWM, read from /proc)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Iterator
from functools import cache, partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from app.db.models import Dataset
from tests.conftest import Proc, _pg_database, family_csv, job_spec, make_settings, start_server

MAX_ROWS = 1_000_000  # the default
MAX_DECODED_MB = 64
MAX_UPLOAD_MB = 2


class Live:
    def __init__(self, proc: Proc, url: str, data_dir: Path, db_url: str) -> None:
        self.proc, self.url, self.data_dir = proc, url, data_dir
        self.engine = create_engine(db_url, poolclass=NullPool)
        self.http = httpx.Client(base_url=url, timeout=120)

    def rows(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Dataset.__table__)) or 0)

    def files(self) -> list[str]:
        root = self.data_dir / "uploads"
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def peak_rss_mib(self) -> float:
        """The server process's peak resident memory so far (VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")

    def upload(self, filename: str, content: bytes, **data: str) -> httpx.Response:
        return self.http.post("/api/v1/datasets", files={"file": (filename, content)}, data=data)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    root = tmp_path_factory.mktemp(f"round2-{request.param}")
    databases = _pg_database() if request.param == "postgresql" else None
    db_url = next(databases) if databases else f"sqlite:///{root / 'auxsel.db'}"
    settings = make_settings(root / "data", db_url)
    proc, url = start_server(
        settings,
        root / "server.log",
        worker=False,
        AUXSEL_MAX_DECODED_MB=str(MAX_DECODED_MB),
        AUXSEL_MAX_UPLOAD_MB=str(MAX_UPLOAD_MB),
        AUXSEL_RATE_UPLOAD_PER_MIN="0",
        AUXSEL_RATE_SUBMIT_PER_MIN="0",
    )
    live = Live(proc, url, root / "data", db_url)
    try:
        yield live
    finally:
        live.http.close()
        live.engine.dispose()
        proc.stop()
        assert "Traceback" not in proc.output(), proc.output()[-4000:]
        if databases:
            databases.close()


def _problem(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])], body
    return body


def _parquet(table: pa.Table, **options: Any) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


@cache
def _zeros_bomb(columns: int, rows: int = 1_000_000) -> bytes:
    """int64 zero columns: ~4 KiB of zstd per million values, 8 MB each decoded."""
    zeros = pa.array(np.zeros(rows, dtype=np.int64))
    return _parquet(pa.table({f"c{i}": zeros for i in range(columns)}), compression="zstd")


@cache
def _text_bomb(rows: int = 20_000, width: int = 100_000) -> bytes:
    """One 100 kB string repeated per row: a 1 KiB file that decodes to 2 GB of text."""
    values = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(rows, dtype=np.int32)), pa.array(["a" * width])
    )
    return _parquet(pa.table({"s": values, "y": np.arange(rows) % 2}), compression="zstd")


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0und") -> bytes:
    out = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


CSV_OK = family_csv(n_rows=60)


def _nested(values: pa.Array) -> tuple[str, bytes]:
    return "a.parquet", _parquet(pa.table({"x": values, "y": [0, 1]}))


WIDE_NAMES = ",".join(f"c{i}" for i in range(2_001)).encode()
NESTED = {
    "list": pa.array([[1, 2], [3]]),
    "struct": pa.array([{"a": 1}, {"a": 2}]),
    "map": pa.array([[("k", 1)], [("k", 2)]], pa.map_(pa.string(), pa.int64())),
}


def _send(live: Live, case: str) -> httpx.Response:
    """Each way POST /api/v1/datasets refuses an upload (app/api/routes/datasets.py,
    app/data/storage.py, app/data/tables.py, app/services/datasets.py)."""
    multipart = {"Content-Type": "multipart/form-data; boundary=b0und"}
    if case == "not-multipart":
        return live.http.post("/api/v1/datasets", content=CSV_OK)
    if case == "declared-too-large":
        body = _multipart([("file", "a.csv", b"a,b\n" + b"1,2\n" * (MAX_UPLOAD_MB * 2**19))])
        return live.http.post("/api/v1/datasets", content=body, headers=multipart)
    if case == "streamed-too-large":
        chunk = b"1,2\n" * 2**16

        def stream() -> Iterator[bytes]:
            yield b'--b0und\r\nContent-Disposition: form-data; name="file"; filename="a.csv"'
            yield b"\r\n\r\na,b\n"
            for _ in range(MAX_UPLOAD_MB * 5):
                yield chunk
            yield b"\r\n--b0und--\r\n"

        return live.http.post("/api/v1/datasets", content=stream(), headers=multipart)
    if case == "malformed-multipart":
        body = b"--b0und\r\nContent-Disposition: form-data; name=file; filename=a.csv\r\n"
        body += b"\r\n" + CSV_OK + b"\r\n--b0und\r\nNone--b0und--\r\n"
        return live.http.post("/api/v1/datasets", content=body, headers=multipart)
    if case == "field-too-long":
        body = _multipart([("file", "a.csv", CSV_OK), ("name", None, b"n" * 5000)])
        return live.http.post("/api/v1/datasets", content=body, headers=multipart)
    if case == "two-files":
        body = _multipart([("file", "a.csv", CSV_OK), ("file", "b.csv", CSV_OK)])
        return live.http.post("/api/v1/datasets", content=body, headers=multipart)
    if case == "no-file":
        body = _multipart([("name", None, b"x"), ("other", "a.csv", b"a,b\n1,2\n")])
        return live.http.post("/api/v1/datasets", content=body, headers=multipart)
    if case == "nul-in-name":
        return live.upload("a.csv", CSV_OK, name="evil\x00name")
    tables: dict[str, Callable[[], tuple[str, bytes]]] = {  # built when sent
        "binary": lambda: ("a.csv", b"\x00\x01\x02" * 100),
        "fake-parquet": lambda: ("a.parquet", CSV_OK),
        "empty": lambda: ("a.csv", b"  \n"),
        "not-utf8-at-start": lambda: ("a.csv", b"a,b\n1,\xff\xfe\n"),
        "not-utf8-after-64k": lambda: ("a.csv", b"a,b\n" + b"1,xx\n" * 20_000 + b"2,\xff\xfe\n"),
        "header-only": lambda: ("a.csv", b"a,b\n"),
        "too-many-columns": lambda: (
            "a.csv",
            WIDE_NAMES + b"\n" + b",".join([b"1"] * 2_001) + b"\n",
        ),
        "too-many-rows": lambda: ("a.csv", b"a\n" + b"1\n" * (MAX_ROWS + 1)),
        "empty-column-name": lambda: ("a.csv", b"a,,b\n1,2,3\n"),
        "duplicate-column-name": lambda: ("a.csv", b"a,a\n1,2\n"),
        "column-name-too-long": lambda: ("a.csv", b"a," + b"b" * 256 + b"\n1,2\n"),
        "ragged-row": lambda: ("a.csv", b"a,b\n1,2\n3\n"),
        "integer-beyond-int64": lambda: ("a.csv", b"a,b\n1,2\n99999999999999999999,3\n"),
        "parquet-corrupt": lambda: ("a.parquet", b"PAR1" + b"\x07" * 1000),
        "parquet-too-many-columns": lambda: (
            "a.parquet",
            _parquet(pa.table({f"c{i}": [1, 2] for i in range(2_001)})),
        ),
        "parquet-too-many-rows": lambda: (
            "a.parquet",
            _parquet(pa.table({"a": np.zeros(MAX_ROWS + 1)}), compression="zstd"),
        ),
        "parquet-nul-in-column-name": lambda: (
            "a.parquet",
            _parquet(pa.table({"a\x00b": [1, 2], "y": [0, 1]})),
        ),
        **{f"parquet-nested-{kind}": partial(_nested, values) for kind, values in NESTED.items()},
        "parquet-zeros-bomb": lambda: ("a.parquet", _zeros_bomb(100)),
        "parquet-text-bomb": lambda: ("a.parquet", _text_bomb()),
    }
    name, content = tables[case]()
    return live.upload(name, content)


REJECTIONS: dict[str, tuple[int, str | None]] = {
    # The body limit in front of the route may answer these, without a field.
    "not-multipart": (415, None),
    "declared-too-large": (413, None),
    "streamed-too-large": (413, None),
    "malformed-multipart": (400, "file"),
    "field-too-long": (422, "name"),
    "two-files": (422, "file"),
    "no-file": (422, "file"),
    "nul-in-name": (422, "name"),
    "binary": (422, "file"),
    "fake-parquet": (422, "file"),
    "empty": (422, "file"),
    "not-utf8-at-start": (422, "file"),
    "not-utf8-after-64k": (422, "file"),
    "header-only": (422, "file"),
    "too-many-columns": (422, "file"),
    "too-many-rows": (422, "file"),
    "empty-column-name": (422, "file"),
    "duplicate-column-name": (422, "file"),
    "column-name-too-long": (422, "file"),
    "ragged-row": (422, "file"),
    "integer-beyond-int64": (422, "file"),
    "parquet-corrupt": (422, "file"),
    "parquet-too-many-columns": (422, "file"),
    "parquet-too-many-rows": (422, "file"),
    "parquet-nul-in-column-name": (422, "file"),
    "parquet-nested-list": (422, "file"),
    "parquet-nested-struct": (422, "file"),
    "parquet-nested-map": (422, "file"),
    "parquet-zeros-bomb": (422, "file"),
    "parquet-text-bomb": (422, "file"),
}


def test_parquet_bombs_are_refused_before_they_decode(live: Live) -> None:
    """The attack of issue 16 at 100 columns: a 450 KiB zstd file of a million rows of
    zeros (763 MiB once decoded, twice that through pandas), and a 1 KiB file whose one
    100 kB string repeats on 20,000 rows (2 GB decoded)."""
    # First in this module: the server has decoded nothing large yet.
    assert live.upload("warm.csv", family_csv(n_rows=80, seed=9)).status_code == 201
    rows, files = live.rows(), live.files()
    before = live.peak_rss_mib()
    zeros = _zeros_bomb(100)
    assert len(zeros) < 2**20
    _problem(live.upload("bomb.parquet", zeros), 422, "file")
    text = _text_bomb()
    assert len(text) < 2**20
    body = _problem(live.upload("text.parquet", text), 422, "file")
    assert "AUXSEL_MAX_DECODED_MB" in body["errors"][0]["message"]
    grown = live.peak_rss_mib() - before
    assert grown < 200, f"the server's peak RSS grew by {grown:.0f} MiB"
    assert (live.rows(), live.files()) == (rows, files)


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_every_rejected_upload_leaves_neither_row_nor_file(live: Live, case: str) -> None:
    rows, files = live.rows(), live.files()
    status, field = REJECTIONS[case]
    _problem(_send(live, case), status, field)
    assert live.rows() == rows
    assert live.files() == files


def test_a_rejected_copy_of_a_stored_file_keeps_the_original(live: Live) -> None:
    content = family_csv(n_rows=70, seed=5)
    first = live.upload("a.csv", content)
    assert first.status_code == 201, first.text
    rows, files = live.rows(), live.files()
    _problem(live.upload("a.csv", content, name="copy\x00"), 422, "name")
    assert (live.rows(), live.files()) == (rows, files)
    assert live.http.get(f"/api/v1/datasets/{first.json()['id']}").status_code == 200


def test_the_refusals_name_the_limit_to_change(live: Live) -> None:
    bomb = _problem(_send(live, "parquet-zeros-bomb"), 422, "file")
    assert f"the limit is {MAX_DECODED_MB} MiB" in bomb["detail"]
    assert "AUXSEL_MAX_DECODED_MB" in bomb["errors"][0]["message"]
    long_name = _problem(_send(live, "column-name-too-long"), 422, "file")
    assert "256 characters; the limit is 255" in long_name["detail"]
    assert "AUXSEL_MAX_COLUMN_NAME_CHARS" in long_name["errors"][0]["message"]
    big = _problem(_send(live, "integer-beyond-int64"), 422, "file")
    assert "Column 'a'" in big["detail"]
    assert "99999999999999999999" in big["detail"]
    utf8 = _problem(_send(live, "not-utf8-after-64k"), 422, "file")
    assert "line 20,002" in utf8["detail"]
    nested = _problem(_send(live, "parquet-nested-list"), 422, "file")
    assert "'x' hold nested values" in nested["detail"]


# --- NUL and other names the database cannot hold --------------------------------------


def test_nul_in_any_name_of_a_job_is_422_naming_the_field(live: Live) -> None:
    dataset = live.upload("f.csv", family_csv(n_rows=80)).json()
    spec = job_spec(dataset["id"])
    attacks: list[tuple[str, dict[str, Any]]] = [
        ("name", {**spec, "name": "job\x00"}),
        ("main_task.column", {**spec, "main_task": {"column": "y\x00"}}),
        ("main_task.name", {**spec, "main_task": {"column": "y", "name": "\x00"}}),
        ("candidates[0].column", {**spec, "candidates": [{"column": "noise_0\x00"}]}),
        ("features", {**spec, "features": ["x0", "x\x00"]}),
        ("dataset_id", {**spec, "dataset_id": "ds_\x00"}),
    ]
    for field, body in attacks:
        problem = _problem(live.http.post("/api/v1/jobs", json=body), 422, field)
        assert "NUL" in json.dumps(problem)
    assert live.http.get("/api/v1/jobs").json()["items"] == []


def test_nul_in_urls_is_refused_not_500(live: Live) -> None:
    for path in ("/api/v1/datasets/ds_%00", "/api/v1/jobs/job_%00", "/api/v1/jobs/x%00/cancel"):
        _problem(live.http.get(path) if "cancel" not in path else live.http.post(path), 404)
    _problem(live.http.get("/api/v1/jobs?page_token=a%00b"), 422, "page_token")
    _problem(live.http.get("/submit?dataset=ds_%00"), 422, "dataset")


# --- read amplification -----------------------------------------------------------------


def test_the_data_set_list_carries_summaries_not_profiles(live: Live) -> None:
    """10 data sets of 300 columns with 255-character names were 41 MiB of list in the
    attack (2 KB names): the list now carries each one's column count, the profile
    stays on GET /api/v1/datasets/{id}."""
    names = [f"{i:03d}" + "n" * 252 for i in range(300)]
    header = ",".join(names).encode()
    ids = []
    for seed in range(3):
        rows = b"".join(
            ",".join(str((r * 7 + c + seed) % 5) for c in range(300)).encode() + b"\n"
            for r in range(20)
        )
        response = live.upload(f"wide{seed}.csv", header + b"\n" + rows)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    listed = live.http.get("/api/v1/datasets", params={"page_size": 100})
    assert listed.status_code == 200
    items = {item["id"]: item for item in listed.json()["items"]}
    assert all("profile" not in item for item in items.values())
    assert all(items[i]["columns"] == 300 for i in ids)
    assert len(listed.content) < 400 * len(items)
    full = live.http.get(f"/api/v1/datasets/{ids[0]}").json()
    assert [c["name"] for c in full["profile"]] == names


@pytest.mark.parametrize(
    ("hidden", "first"),
    [([0] * 20_000, "budget.hidden"), (["x"] * 20_000, "budget.hidden[0]")],
)
def test_error_lists_are_truncated_with_a_count(live: Live, hidden: list[Any], first: str) -> None:
    dataset = live.upload("f.csv", family_csv(n_rows=80)).json()
    spec = job_spec(dataset["id"], budget={"seeds": 1, "epochs": 1, "hidden": hidden})
    request = json.dumps(spec).encode()
    response = live.http.post(
        "/api/v1/jobs", content=request, headers={"Content-Type": "application/json"}
    )
    body = _problem(response, 422, first)
    assert len(body["errors"]) <= 20
    if len(body["errors"]) == 20:
        assert body["errors_omitted"] > 0
    assert len(response.content) < 8_000 < len(request)


# --- page tokens -------------------------------------------------------------------------


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


TOKENS = {
    "nested": _token(b"[" * 20_000 + b"]" * 20_000),  # the parser's recursion overflowed
    "nested-short": _token(b"[" * 150 + b"]" * 150),
    "object": _token(b'{"a": 1}'),
    "three": _token(b'["2026-01-01T00:00:00", "x", "y"]'),
    "numbers": _token(b"[1, 2]"),
    "nul-id": _token(b'["2026-01-01T00:00:00+00:00", "ds_\\u0000"]'),
    "bad-time": _token(b'["yesterday", "x"]'),
    "not-base64": "%%%",
}


@pytest.mark.parametrize("route", ["/api/v1/datasets", "/api/v1/jobs", "/"])
def test_hostile_page_tokens_are_422_naming_page_token(live: Live, route: str) -> None:
    for name, token in TOKENS.items():
        response = live.http.get(route, params={"page_token": token})
        assert response.status_code == 422, (name, response.status_code, response.text[:300])
        _problem(response, 422, "page_token")
    assert live.http.get(route).status_code == 200
