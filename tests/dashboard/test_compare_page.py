"""The compare page (/compare?a=&b=) as the server renders it: GET /api/v1/jobs/compare's
answer side by side, differences marked, candidates only in one job listed, and its
problems (a job not found, not finished) as messages."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from fastapi.testclient import TestClient

from app.dashboard import views
from app.jobs.worker import Worker
from app.main import create_app
from tests.conftest import family_csv, job_spec, make_settings
from tests.dashboard.table_html import table_rows


class _Pair(NamedTuple):
    client: TestClient
    a: str
    b: str
    api: dict[str, Any]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[_Pair]:
    """Two finished jobs on one data set: another seed, one candidate fewer."""
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'auxsel.db'}")
    with TestClient(create_app(settings)) as client:
        state = client.app.state  # type: ignore[attr-defined]
        ds = client.post("/api/v1/datasets", files={"file": ("f.csv", family_csv())}).json()
        a = client.post("/api/v1/jobs", json=job_spec(ds["id"], name="first")).json()["id"]
        spec = job_spec(ds["id"], name="second", seed=1, candidates=["rel_0_0.90", "noise_0"])
        b = client.post("/api/v1/jobs", json=spec).json()["id"]
        worker = Worker(settings, state.sessions, state.storage, worker_id="w")
        assert worker.run_one()
        assert worker.run_one()
        api = client.get("/api/v1/jobs/compare", params={"a": a, "b": b}).json()
        yield _Pair(client, a, b, api)


def test_the_compare_page_shows_both_rankings_and_marks_what_changed(pair: _Pair):
    client, a, b, api = pair
    page = client.get("/compare", params={"a": a, "b": b})
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Compare: first → second" in re.sub(r"<[^>]+>", "", text)
    assert f'href="/jobs/{a}"' in text
    rows = table_rows(page.text, "compare")
    assert [r["Candidate"] for r in rows] == [c["name"] for c in api["candidates"]]
    for row, c in zip(rows, api["candidates"], strict=True):
        if c["a"] is None or c["b"] is None:
            assert row["Rank change"] == ("only in a" if c["b"] is None else "only in b")
            assert row["@class"].strip().endswith("one-side")
            continue
        assert row["Rank a"] == str(c["a"]["rank"])
        assert row["Rank b"] == str(c["b"]["rank"])
        change = c["rank_change"]
        expected = "same" if change == 0 else (f"up {change}" if change > 0 else f"down {-change}")
        assert row["Rank change"].endswith(expected)
        assert row["Gain b − a"] == views.signed(c["gain_difference"])
        # A changed rank or verdict marks the row (tinted) and says so in words.
        changed = change != 0 or c["verdict_changed"]
        assert ("changed" in row["@class"].split()) == changed
        assert ("data-verdict-changed" in row) == c["verdict_changed"]
        assert row["Verdict b"].endswith("changed") == c["verdict_changed"]
    # Candidates only in one job are listed under their side.
    assert api["only_in_a"] == ["rel_1_0.20"]
    only_a = text.split('id="only-in-a"')[1].split("</section>")[0]
    assert "<li>rel_1_0.20</li>" in only_a
    assert "None: a ranked every candidate of b." in text


def test_the_list_checkboxes_reach_the_same_page_without_script(pair: _Pair):
    client, a, b, _ = pair
    by_form = client.get(f"/compare?job={a}&job={b}")
    by_params = client.get("/compare", params={"a": a, "b": b})
    assert by_form.status_code == 200
    assert table_rows(by_form.text, "compare") == table_rows(by_params.text, "compare")


def test_compare_problems_read_as_messages(pair: _Pair):
    client, a, _, _ = pair
    nothing = client.get("/compare")
    assert nothing.status_code == 200
    assert "Select two jobs on the jobs list to compare." in nothing.text
    one = client.get("/compare", params={"job": a})
    assert one.status_code == 422
    missing = client.get("/compare", params={"a": a, "b": "job_nope"})
    assert missing.status_code == 404
    assert "job_nope" in html.unescape(missing.text)
