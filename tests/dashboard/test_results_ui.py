"""The job page's result sections through the real app (server-rendered HTML): a
screen+probe job with subset search run by an in-process worker, then its stored result
edited into the cases a user must read correctly (few confirmed candidates, a search
that accepted and rejected sets)."""

from __future__ import annotations

import html
import json
import platform
import re
from collections.abc import Iterator
from importlib import metadata
from typing import Any, NamedTuple

import pytest
import torch
from fastapi.testclient import TestClient

from app.dashboard.charts import BASELINE
from app.db.models import Job
from app.db.session import write_transaction
from app.jobs.worker import Worker
from app.main import create_app
from tests.conftest import family_csv, job_spec, make_settings


class Screened(NamedTuple):
    client: TestClient
    job_id: str
    ranking: dict[str, Any]
    sessions: Any


@pytest.fixture(scope="module")
def screened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Screened]:
    tmp = tmp_path_factory.mktemp("screened")
    settings = make_settings(tmp / "data", f"sqlite:///{tmp / 'auxsel.db'}")
    with TestClient(create_app(settings)) as client:
        state = client.app.state  # type: ignore[attr-defined]
        dataset = client.post("/api/v1/datasets", files={"file": ("f.csv", family_csv())})
        spec = job_spec(dataset.json()["id"], method="screen+probe")
        spec["budget"] = {  # type: ignore[index]
            **spec["budget"],  # type: ignore[dict-item]
            "confirm_top": 1,
            "confirm_random": 1,
            "subset_search": True,
            "subset_budget": 3,
            "screen_epochs": 2,
        }
        response = client.post("/api/v1/jobs", json=spec)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        assert Worker(settings, state.sessions, state.storage, worker_id="w").run_one()
        ranking = client.get(f"/api/v1/jobs/{job_id}/ranking").json()
        yield Screened(client, job_id, ranking, state.sessions)


@pytest.fixture(autouse=True)
def _restore_result(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test that edits the screened job's stored result leaves it as it found it."""
    if "screened" not in request.fixturenames:
        yield
        return
    screened: Screened = request.getfixturevalue("screened")
    with write_transaction(screened.sessions) as session:
        job = session.get(Job, screened.job_id)
        assert job is not None
        saved = job.result
    yield
    with write_transaction(screened.sessions) as session:
        job = session.get(Job, screened.job_id)
        assert job is not None
        job.result = saved


def _edit_result(screened: Screened, **changes: object) -> str:
    """Replace parts of the job's stored result; the page as the app renders it after."""
    with write_transaction(screened.sessions) as session:
        job = session.get(Job, screened.job_id)
        assert job is not None
        assert job.result is not None
        job.result = {**job.result, **changes}
    response = screened.client.get(f"/jobs/{screened.job_id}")
    assert response.status_code == 200
    return html.unescape(response.text)


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).strip()


def _section(page: str, element_id: str) -> str:
    start = page.index(f'id="{element_id}"')
    return page[start : page.index("</section>", start)]


def _agreement(n: int, rho: float, low: float, high: float, p: float, names: str) -> object:
    """An agreement as the engine stores it, over the candidates named by ``names``
    (one letter each), the last of them drawn at random."""
    return {
        "proxy": "lookahead",
        "spearman": rho,
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
        "n": n,
        "confirmed": list(names),
        "random": list(names[-1:]),
    }


def _agreement_sentence(page: str) -> str:
    start = page.index(">", page.index('id="agreement"')) + 1
    return _text(page[start : page.index("</p>", start)])


def _step(members: list[str], gain: float, improvement: float | None, accepted: bool) -> object:
    better = (None, None) if improvement is None else (improvement - 0.01, improvement + 0.01)
    return {
        "members": members,
        "gain": gain,
        "ci_low": gain - 0.01,
        "ci_high": gain + 0.01,
        "improvement": improvement,
        "improvement_ci_low": better[0],
        "improvement_ci_high": better[1],
        "accepted": accepted,
    }


def test_no_result_is_rendered_as_raw_python_or_key_value_pairs(screened: Screened):
    page = html.unescape(screened.client.get(f"/jobs/{screened.job_id}").text)
    assert screened.ranking["method"] == "screen+probe"
    assert screened.ranking["agreement"] is not None
    assert screened.ranking["subset"] is not None
    for raw in ("{'", "'members'", "True", "SPEARMAN", "CI_LOW", "P_VALUE", "stop_reason"):
        assert raw not in page, raw
    # Two candidates confirmed, too few for a rank correlation: said in words.
    assert screened.ranking["agreement"]["n"] == 2
    assert _agreement_sentence(page) == (
        "The lookahead proxy's agreement with the probes could not be measured on the "
        "n = 2 confirmed candidates (1 drawn at random): it needs at least 3 candidates "
        "whose proxy scores and gains both vary."
    )
    # The real search found no helpful candidate: it says so in words.
    summary = _text(_section(page, "subset"))
    assert "No subset is recommended." in summary
    assert "no candidate was helpful on its own" in summary


def test_screening_proxies_are_ranking_columns_and_a_scatter(screened: Screened):
    page = html.unescape(screened.client.get(f"/jobs/{screened.job_id}").text)
    head = page[page.index('<table id="ranking"') : page.index("</thead>")]
    for proxy in ("lookahead", "grad_cosine"):
        assert f">{proxy}</button>" in head
    for c in screened.ranking["candidates"]:
        row = page[page.index(f'<tr data-candidate="{c["name"]}"') :]
        row = row[: row.index("</tr>")]
        assert f'data-value="{c["proxies"]["lookahead"]}"' in row
    # Candidates only screened say so rather than showing an empty gain.
    assert any(c["verdict"] == "not_probed" for c in screened.ranking["candidates"])
    assert "verdict-not_probed" in page
    assert 'id="proxy-chart"' in page


def test_agreement_on_four_candidates_has_no_interval_and_no_p_value(screened: Screened):
    # What the engine stores for ρ = 1 on 4 candidates: an interval pinned at 1, p = 0.
    page = _edit_result(screened, agreement=_agreement(4, 1.0, 0.99988, 1.0, 0.0, "abcd"))
    sentence = _agreement_sentence(page)
    assert "ranked the n = 4 confirmed candidates (1 drawn at random)" in sentence
    assert "Spearman ρ = 1.00" in sentence
    assert "no interval or p-value" in sentence
    assert "0.99988" not in page
    assert "[1.00" not in sentence
    assert "p = 0" not in sentence
    assert "Confirmed with paired probes: a, b, c, d (drawn at random: d)" in _text(page)


def test_agreement_on_enough_candidates_has_its_interval_and_p_value(screened: Screened):
    page = _edit_result(screened, agreement=_agreement(7, 0.6429, 0.0123, 0.9012, 0.119, "abcdefg"))
    assert (
        "the n = 7 confirmed candidates (1 drawn at random) with Spearman ρ = 0.64, "
        "95% interval [0.01, 0.90], p = 0.12." in _agreement_sentence(page)
    )
    # A perfect ordering has no Fisher-z interval; its p-value is the exact 2/n!.
    page = _edit_result(screened, agreement=_agreement(5, 1.0, 0.99997, 1.0, 0.0, "abcde"))
    sentence = _agreement_sentence(page)
    assert "exact p = 0.017" in sentence
    assert "0.99997" not in page
    assert "interval [" not in sentence


def test_the_subset_search_is_a_step_table(screened: Screened):
    first, second, third = "rel_0_0.90", "rel_1_0.20", "noise_0"
    subset = {
        "members": [first, second],
        "gain": 0.0232819,
        "ci_low": 0.01,
        "ci_high": 0.04,
        "verdict": "helpful",
        "path": [
            _step([first], 0.02, None, True),
            _step([first, second], 0.0232819, 0.0032, True),
            _step([first, second, third], 0.015, -0.008, False),
        ],
        "evaluated": 3,
        "budget": 3,
        "stop_reason": "budget",
    }
    page = _edit_result(screened, subset=subset)
    section = _section(page, "subset")
    summary = _text(section[: section.index("</p>")])
    assert (
        f"Train {first} + {second} together beside the main task: "
        "gain +0.0233 [+0.0100, +0.0400] helpful ." in summary
    )
    assert (
        "trained 3 of at most 3 subsets and stopped because "
        "it trained as many subsets as its budget allowed" in summary
    )
    body = section[section.index("<tbody>") : section.index("</tbody>")]
    rows = [_text(r) for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)]
    assert rows == [
        f"1 {first} +0.0200 [+0.0100, +0.0300] start ✓ accepted",
        f"2 {first} + {second} +0.0233 [+0.0133, +0.0333] +0.0032 [-0.0068, +0.0132] ✓ accepted",
        f"3 {first} + {second} + {third} +0.0150 [+0.0050, +0.0250] "
        "-0.0080 [-0.0180, +0.0020] ✗ rejected",
    ]
    assert "{'members'" not in page


def test_a_job_whose_data_set_was_deleted_keeps_its_name_and_sha256(
    tmp_path_factory: pytest.TempPathFactory,
):
    tmp = tmp_path_factory.mktemp("deleted")
    settings = make_settings(tmp / "data", f"sqlite:///{tmp / 'auxsel.db'}")
    with TestClient(create_app(settings)) as client:
        state = client.app.state  # type: ignore[attr-defined]
        upload = client.post("/api/v1/datasets", files={"file": ("study.csv", family_csv())})
        dataset = upload.json()
        ran = client.post("/api/v1/jobs", json=job_spec(dataset["id"], name="ran")).json()["id"]
        assert Worker(settings, state.sessions, state.storage, worker_id="w").run_one()
        canceled = client.post("/api/v1/jobs", json=job_spec(dataset["id"], name="stopped"))
        canceled_id = canceled.json()["id"]
        assert client.post(f"/api/v1/jobs/{canceled_id}/cancel").status_code in (200, 202)

        before = html.unescape(client.get(f"/jobs/{ran}").text)
        assert f'<a id="dataset-ref" href="/submit?dataset={dataset["id"]}"' in before
        assert client.delete(f"/api/v1/datasets/{dataset['id']}").status_code == 204
        assert client.get(f"/api/v1/jobs/{ran}").json()["dataset_id"] is None

        for job_id in (ran, canceled_id):
            page = html.unescape(client.get(f"/jobs/{job_id}").text)
            head = _text(
                page[
                    page.index('<p class="sub">') : page.index(
                        "</p>", page.index('<p class="sub">')
                    )
                ]
            )
            assert head.startswith(f"Data set {dataset['name']} deleted ·"), head
            assert f'title="sha256 {dataset["sha256"]}"' in page
            assert "None" not in head
            assert "/submit?dataset=" not in page  # no link to a data set that is gone
        # The finished job's results are all still there.
        page = html.unescape(client.get(f"/jobs/{ran}").text)
        assert page.count("<tr data-candidate=") == 3
        jobs = html.unescape(client.get("/").text)
        assert (
            jobs.count(f'{dataset["name"]} <span class="badge badge-deleted">deleted</span>') == 2
        )
        assert ">None<" not in jobs


def test_the_provenance_block_names_data_software_recipe_and_seed(screened: Screened):
    page = html.unescape(screened.client.get(f"/jobs/{screened.job_id}").text)
    section = _section(page, "provenance")
    fields = dict(re.findall(r'data-field="(\w+)"><dt>[^<]*</dt><dd[^>]*>([^<]*)</dd>', section))
    dataset_id = screened.client.get(f"/api/v1/jobs/{screened.job_id}").json()["dataset_id"]
    dataset = screened.client.get(f"/api/v1/datasets/{dataset_id}").json()
    assert fields["data"] == dataset["name"]
    assert fields["sha256"] == dataset["sha256"]
    assert fields["auxsel"] == metadata.version("auxsel")
    assert fields["torch"] == torch.__version__
    assert fields["python"] == platform.python_version()
    assert fields["recipe"] == screened.ranking["recipe_text"]
    assert fields["seed"] == "0"

    # A job from before provenance says so rather than showing blanks.
    with write_transaction(screened.sessions) as session:
        job = session.get(Job, screened.job_id)
        assert job is not None
        assert job.result is not None
        job.result = {k: v for k, v in job.result.items() if k != "provenance"}
    section = _section(
        html.unescape(screened.client.get(f"/jobs/{screened.job_id}").text), "provenance"
    )
    assert section.count("not recorded (job from before provenance)") == 3
    assert dataset["sha256"] in section  # the live data set still has its hash


def test_training_and_auxiliary_curves_are_shown_on_demand(screened: Screened):
    """Every probe run carries its main-task and auxiliary-task training loss per epoch;
    the job page draws them, averaged over replicates, behind a disclosure."""
    client, job_id = screened.client, screened.job_id
    runs = client.get(f"/api/v1/jobs/{job_id}/runs").json()["items"]
    assert runs
    for run in runs:
        assert len(run["train_loss"]) == len(run["curve"]) == run["epochs"]
        assert len(run["aux_loss"]) == (run["epochs"] if run["candidates"] else 0)
        assert all(v is not None and v >= 0 for v in run["train_loss"] + run["aux_loss"])
    page = client.get(f"/jobs/{job_id}").text
    assert '<details id="more-curves">' in page  # closed until asked for
    assert "<summary>Show training and auxiliary-task curves</summary>" in page
    assert 'id="aux-curves-chart"' in page
    found = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', page)
    assert found
    charts = json.loads(html.unescape(found.group(1)))
    train = {s["name"]: s for s in charts["train_curves"]["series"]}
    aux = {s["name"]: s for s in charts["aux_curves"]["series"]}
    assert BASELINE in train
    assert BASELINE not in aux  # the main task alone has no auxiliary loss
    single = [r for r in runs if len(r["candidates"]) == 1]
    name = single[0]["candidates"][0]
    assert name in train
    assert name in aux
    # Each epoch's point is the mean over the replicates of that probe's stored curves.
    base = [r["train_loss"][0] for r in runs if not r["candidates"]]
    assert train[BASELINE]["mean"][0] == pytest.approx(sum(base) / len(base))
    firsts = [r["aux_loss"][0] for r in single if r["candidates"] == [name]]
    assert aux[name]["mean"][0] == pytest.approx(sum(firsts) / len(firsts))
    assert aux[name]["n"][0] == len(firsts)
