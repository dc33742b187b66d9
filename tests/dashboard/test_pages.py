"""Dashboard pages without a browser: routing, sign-in cookie rules, headers, and the
pure helpers behind the charts. (tests/browser drives the pages in Chromium.)"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from fastapi.testclient import TestClient

import engine
from app.dashboard import STATIC, charts, views
from app.db.models import CandidateScore, Job
from app.db.session import write_transaction
from app.jobs.failures import explain
from app.jobs.views import CandidateOut, ProbeRunList, ProbeRunOut, RankingOut
from app.jobs.worker import Worker
from app.main import create_app
from app.security.auth import create_key
from app.security.sessions import COOKIE, csrf_token
from app.settings import Settings
from tests.conftest import family_csv, job_spec, make_settings


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'auxsel.db'}", **overrides)


@pytest.fixture
def open_client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path))) as client:
        yield client


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    with TestClient(create_app(_settings(tmp_path, auth="on"))) as client:
        yield client, create_key(client.app.state.sessions, "alice").key  # type: ignore[attr-defined]


class _FinishedJob(NamedTuple):
    client: TestClient
    job_id: str
    ranking: dict[str, Any]
    sessions: Any  # the app's sessionmaker, to edit stored rows


@pytest.fixture
def finished_job(tmp_path: Path) -> Iterator[_FinishedJob]:
    """The app with one default job run to the end by an in-process worker, and its
    ranking as the API returns it."""
    settings = _settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        state = client.app.state  # type: ignore[attr-defined]
        dataset = client.post("/api/v1/datasets", files={"file": ("f.csv", family_csv())})
        job_id = client.post("/api/v1/jobs", json=job_spec(dataset.json()["id"])).json()["id"]
        assert Worker(settings, state.sessions, state.storage, worker_id="w").run_one()
        ranking = client.get(f"/api/v1/jobs/{job_id}/ranking").json()
        yield _FinishedJob(client, job_id, ranking, state.sessions)


def test_pages_are_kept_out_of_the_api_schema(open_client: TestClient):
    paths = open_client.get("/openapi.json").json()["paths"]
    assert all(p.startswith(("/api/", "/healthz", "/readyz")) for p in paths)
    for page in ("/", "/submit"):
        response = open_client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in response.headers["content-security-policy"]
    assert open_client.get("/jobs/job_missing").status_code == 404
    assert open_client.get("/static/vendor/chart-4.6.1.umd.min.js").status_code == 200
    assert (STATIC / "vendor" / "chart.js-LICENSE.md").read_text().startswith("The MIT License")


def test_vendored_files_match_the_hashes_in_their_readme():
    """Swagger UI and Chart.js are served from this package, pinned: each file listed in
    vendor/README.md with a sha256 has exactly that content."""
    vendor = STATIC / "vendor"
    readme = (vendor / "README.md").read_text()
    entries = re.split(r"^\s*- `([^`]+)`", readme, flags=re.M)[1:]
    listed = [
        (name, digest.group(1))
        for name, text in zip(entries[::2], entries[1::2], strict=True)
        if (digest := re.search(r"sha256 ([0-9a-f]{64})", text))
    ]
    names = {name for name, _ in listed}
    assert {"swagger-ui-bundle-5.35.0.js", "swagger-ui-5.35.0.css", "swagger-ui-LICENSE"} <= names
    assert "chart-4.6.1.umd.min.js" in names
    for name, digest in listed:
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name


def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_clears_it(secured):
    client, key = secured
    response = client.get("/jobs/job_x?tab=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=%2Fjobs%2Fjob_x%3Ftab%3D1"

    origin = {"Origin": "http://testserver"}
    wrong = client.post("/signin", data={"key": "auxsel_x_y", "next": "/"}, headers=origin)
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    assert COOKIE not in wrong.cookies

    right = client.post(
        "/signin", data={"key": key, "next": "/submit"}, headers=origin, follow_redirects=False
    )
    assert right.status_code == 303
    assert right.headers["location"] == "/submit"
    cookie = right.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert key not in cookie  # a session id, never the key
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain http
    assert client.get("/", follow_redirects=False).status_code == 200
    # The same cookie opens the API to the page scripts.
    assert client.get("/api/v1/jobs").status_code == 200

    token = csrf_token(client.cookies[COOKIE])
    out = client.post(
        "/signout", data={"csrf_token": token}, headers=origin, follow_redirects=False
    )
    assert out.headers["location"] == "/signin"
    assert f'{COOKIE}=""' in out.headers["set-cookie"]


def test_the_cookie_is_secure_over_https_and_next_stays_on_site(tmp_path: Path):
    app = create_app(_settings(tmp_path, auth="on"))
    with TestClient(app, base_url="https://auxsel.example") as client:
        key = create_key(client.app.state.sessions, "bob").key  # type: ignore[attr-defined]
        response = client.post(
            "/signin",
            data={"key": key, "next": "//evil.example/x"},
            headers={"Origin": "https://auxsel.example"},
            follow_redirects=False,
        )
        assert response.headers["location"] == "/"
        assert "Secure" in response.headers["set-cookie"]


def test_a_revoked_or_stale_cookie_leads_back_to_sign_in(secured):
    client, _ = secured
    client.cookies.set(COOKIE, "auxsel_gone_gone")
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin")


def test_sign_in_is_skipped_when_keys_are_off(open_client: TestClient):
    response = open_client.get("/signin?next=/submit", follow_redirects=False)
    assert response.headers["location"] == "/submit"
    assert "Sign out" not in open_client.get("/").text


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/jobs/x", "/jobs/x"),
        (None, "/"),
        ("https://evil.example", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("jobs", "/"),
    ],
)
def test_safe_next(target, expected):
    assert views.safe_next(target) == expected


def _run(candidates: list[str], curve: list[float | None], error: str | None = None):
    return ProbeRunOut(
        key="k",
        replicate=0,
        candidates=candidates,
        metrics={},
        curve=curve,
        best_epoch=0,
        epochs=len(curve),
        error=error,
    )


def test_mean_curves_average_over_the_replicates_that_reached_each_epoch():
    runs = ProbeRunList(
        job_id="job_x",
        metric="loss",
        items=[
            _run([], [1.0, 0.5, 0.25]),
            _run([], [3.0, 1.5]),  # stopped early
            _run(["b"], [2.0, None]),
            _run(["a"], [4.0]),
            _run(["a"], [9.0], error="diverged"),
        ],
    )
    curves = charts.mean_curves(runs, order=["b", "a"])
    assert [s["name"] for s in curves["series"]] == [charts.BASELINE, "b", "a"]
    baseline = curves["series"][0]
    assert baseline["mean"] == [2.0, 1.0, 0.25]
    assert baseline["n"] == [2, 2, 1]
    assert baseline["replicates"] == 2
    assert (baseline["low"], baseline["high"]) == ([1.0, 0.5, 0.25], [3.0, 1.5, 0.25])
    assert baseline["colour"] is None  # drawn in the text colour, dashed
    assert curves["series"][1]["mean"] == [2.0, None]
    assert curves["series"][2]["mean"] == [4.0]  # the failed run is left out


def test_chart_data_carries_no_nan():
    ranking = RankingOut.model_construct(
        metric="loss",
        candidates=[
            CandidateOut.model_construct(name="a", gain=0.1, ci_low=float("nan"), ci_high=0.2,
                verdict="inconclusive", proxies={"tag": 0.3, "cos": None},
                per_seed=[0.05, float("nan"), 0.15]),
            CandidateOut.model_construct(name="b", gain=None, ci_low=None, ci_high=None,
                verdict="inconclusive", proxies={"tag": 0.1}, per_seed=[]),
        ],
    )  # fmt: skip
    assert charts.gain_chart(ranking)["low"] == [None]
    assert charts.gain_chart(ranking)["names"] == ["a"]
    assert charts.gain_chart(ranking)["per_seed"] == [[0.05, 0.15]]
    assert charts.proxy_names(ranking) == ["tag"]
    assert charts.proxy_points(ranking) == {
        "tag": [{"name": "a", "x": 0.3, "y": 0.1, "verdict": "inconclusive"}]
    }


def test_number_formats():
    assert views.signed(0.01234) == "+0.0123"
    assert views.signed(-0.00001) == "-1.00e-05"
    assert views.signed(None) == "–"
    assert views.percent(0.051) == "+5.1%"
    assert views.number(0.03456) == "0.0346"


def test_failure_reasons_read_as_sentences():
    assert "stopped responding" in explain({"reason": "worker_lost", "detail": None})
    assert "could not be used" in explain({"reason": "invalid_input", "detail": "x"})
    assert "unexpected error" in explain({"reason": "internal_error", "detail": "x"})
    assert "reason: disk_full" in explain({"reason": "disk_full", "detail": None})
    assert "without a recorded reason" in explain(None)


def test_the_submit_form_offers_the_recipes_and_leaves_their_knobs_empty(
    open_client: TestClient,
):
    """Knob inputs start empty with the default recipe's values as placeholders (the
    page script swaps them for the chosen recipe's), so a job sends only what was typed."""
    page = open_client.get("/submit").text
    select = re.search(r'<select id="recipe"[^>]*>(.*?)</select>', page, flags=re.S)
    assert select is not None
    options = re.findall(r'<option value="(\w+)"( selected)?>', select.group(1))
    assert options == [
        (n, " selected" if n == engine.DEFAULT_RECIPE else "") for n in engine.RECIPE_NAMES
    ]
    recipes = json.loads(html.unescape(re.search(r"data-recipes='([^']*)'", page).group(1)))
    assert recipes["quick"]["hidden"] == list(engine.RECIPES["quick"]["hidden"])
    full = engine.RECIPES[engine.DEFAULT_RECIPE]
    for knob in ("epochs", "lam", "batch_size", "lr", "patience", "hidden"):
        tag = re.search(rf'<input id="{knob}"[^>]*>', page)
        assert tag is not None, knob
        assert 'value=""' in tag.group(0), knob
        shown = ", ".join(map(str, full[knob])) if knob == "hidden" else str(full[knob])
        assert f'placeholder="{shown}"' in tag.group(0), knob
    assert 'id="error-recipe"' in page  # a refused recipe is shown by its field


def test_the_job_page_states_the_recipe_and_estimand_old_jobs_included(finished_job: _FinishedJob):
    client, job_id, ranking, sessions = finished_job
    assert ranking["recipe"] == "quick"
    text = html.unescape(client.get(f"/jobs/{job_id}").text)
    assert f"Answers for:</strong> {ranking['recipe_text']}" in text
    assert f"Each gain estimates the {ranking['estimand']}." in text
    assert f"q ≤ {engine.Q_LEVEL}" in text  # the verdicts are q-gated

    # A job from before recipes: no recipe in its spec (every knob set, the short
    # probe's of then) nor in its result. It shows the recipe its budget implies.
    with write_transaction(sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        old_budget = {
            **{k: list(v) if isinstance(v, tuple) else v
               for k, v in engine.RECIPES["quick"].items()},
            **{k: v for k, v in job.spec["budget"].items() if v is not None},
        }  # fmt: skip
        job.spec = {k: v for k, v in job.spec.items() if k != "recipe"} | {"budget": old_budget}
        job.result = {
            k: v for k, v in job.result.items() if k not in ("recipe", "recipe_text", "estimand")
        }
    old = client.get(f"/api/v1/jobs/{job_id}/ranking").json()
    assert (old["recipe"], old["recipe_text"], old["estimand"]) == (
        ranking["recipe"], ranking["recipe_text"], ranking["estimand"]
    )  # fmt: skip
    assert client.get(f"/api/v1/jobs/{job_id}").json()["spec"]["recipe"] == "quick"
    text = html.unescape(client.get(f"/jobs/{job_id}").text)
    assert f"Answers for:</strong> {ranking['recipe_text']}" in text


def test_the_job_page_shows_label_evidence_and_flags_disagreement(finished_job: _FinishedJob):
    client, job_id, ranking, sessions = finished_job
    page = client.get(f"/jobs/{job_id}").text
    text = html.unescape(page)
    assert ">Label |r|</button></th>" in text
    head = text[text.index('<table id="ranking"') : text.index("</thead>")]
    assert head.count('data-type="number"') + head.count('data-type="text"') == len(
        re.findall(r"<th ", head)
    )  # every column keeps its sort button
    for c in ranking["candidates"]:
        evidence = c["evidence"]
        assert f"overlap {evidence['overlap']} of {evidence['labelled']}" in text
        value = f'data-value="{evidence["label_correlation"]}"'
        assert value in page
    assert "the probe and the label correlation disagree" not in text.split("</table>")[0]

    # A flagged candidate shows the marker; a job from before evidence shows "–".
    with write_transaction(sessions) as session:
        scores = session.query(CandidateScore).filter_by(job_id=job_id).all()
        first, rest = scores[0], scores[1:]
        first.details = {**first.details, "evidence_disagrees": True}
        for score in rest:
            score.details = {
                k: v
                for k, v in score.details.items()
                if k not in ("evidence", "evidence_disagrees")
            }
    text = html.unescape(client.get(f"/jobs/{job_id}").text)
    table = text.split("</table>")[0]
    assert table.count("the probe and the label correlation disagree: check this") == 1
    assert table.count("overlap ") == 1


def test_a_candidate_keeps_its_colour_whatever_the_other_candidates():
    def colours(names: list[str]) -> dict[str, str | None]:
        runs = ProbeRunList(
            job_id="j", metric="loss", items=[_run([n], [1.0]) for n in names] + [_run([], [1.0])]
        )
        return {s["name"]: s["colour"] for s in charts.mean_curves(runs, names)["series"]}

    one = colours(["rel_0_0.90", "noise_0", "rel_1_0.20"])
    other = colours(["noise_0", "other", "rel_0_0.90"])
    assert one["rel_0_0.90"] == other["rel_0_0.90"] == charts.candidate_colour("rel_0_0.90")
    assert one["noise_0"] == other["noise_0"]
    assert set(one.values()) - {None} <= set(charts.PALETTE)
    # Names spread over the palette rather than landing on one colour.
    assert len({charts.candidate_colour(f"task_{i}") for i in range(40)}) >= len(charts.PALETTE) - 2
