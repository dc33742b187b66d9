"""The dashboard in a real browser against a real server: submit through the form, watch
progress, read and sort the ranking, see the charts drawn, export, cancel, read why a
job failed, see validation errors next to their fields, and sign in with a key."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

import engine
from app.db.models import CandidateScore
from app.db.repositories import claims
from app.db.session import make_engine, make_sessionmaker, write_transaction
from app.settings import Settings
from tests.browser.conftest import screenshot
from tests.conftest import BITS, HANG_S, TOX_LABELS, family_csv, tox_csv

CANDIDATES = ["rel_0_0.90", "rel_1_0.20", "noise_0"]
# A job of a few seconds, long enough to watch; the tests never assume how long.
WATCHABLE = {
    "seeds": 2,
    "max_replicates": 2,
    "epochs": 40,
    "hidden": [16],
    "batch_size": 64,
    "patience": 0,
}
SMALL = {"seeds": 2, "max_replicates": 2, "epochs": 3, "hidden": [16], "batch_size": 64}
FINISHED = ("succeeded", "failed", "canceled")

PROGRESS_JS = "el => ({value: el.value, max: el.max})"
FULL_BAR_JS = (
    "sel => { const el = document.querySelector(sel); return !!el && el.value === el.max; }"
)
PAINTED_PIXELS_JS = """id => {
  const canvas = document.getElementById(id);
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return painted;
}"""


def _csv(tmp_path: Path, rows: int = 1000) -> Path:
    path = tmp_path / "family.csv"
    path.write_bytes(family_csv(n_rows=rows))
    return path


def _upload(url: str, rows: int = 1000, headers: dict[str, str] | None = None) -> str:
    response = httpx.post(
        f"{url}/api/v1/datasets",
        files={"file": ("family.csv", family_csv(n_rows=rows))},
        headers=headers,
    )
    # 200: the same bytes were uploaded to this server before (the stored data set).
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def _submit(
    url: str,
    dataset_id: str,
    budget: dict[str, Any],
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> str:
    spec = {
        "dataset_id": dataset_id,
        "main_task": {"column": "y"},
        "candidates": [{"column": c} for c in CANDIDATES],
        "recipe": "quick",  # small knobs over the short probe
        "budget": budget,
        **extra,
    }
    response = httpx.post(f"{url}/api/v1/jobs", json=spec, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _wait(url: str, job_id: str, timeout: float = HANG_S) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/api/v1/jobs/{job_id}").json()
        if job["status"] in FINISHED:
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def _follow_to_end(page: Any, bar: str, status: str, timeout: float = HANG_S) -> list[float]:
    """Fractions the progress bar showed while the page followed a job to its end.

    Nothing here depends on how fast the machine is: the loop only samples until the
    status says the job ended, and the final value is read after that, by waiting for
    the bar to be full (the job page reloads itself when the job ends)."""
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = page.eval_on_selector(bar, PROGRESS_JS)
            seen.append(value["value"] / value["max"])
            if page.locator(status).inner_text() in FINISHED:
                break
        except Exception:  # the page reloads itself when the job ends
            pass
        page.wait_for_timeout(100)
    else:
        raise AssertionError(f"gave up waiting for the job to end; progress seen: {seen}")
    expect(page.locator(status)).to_have_text("succeeded", timeout=HANG_S * 1000)
    page.wait_for_function(FULL_BAR_JS, arg=bar, timeout=timeout * 1000)
    final = page.eval_on_selector(bar, PROGRESS_JS)
    seen.append(final["value"] / final["max"])
    return seen


def _select_role(page: Any, column: str, role: str, kind: str | None = None) -> None:
    row = page.locator(f'#columns-table tr[data-column="{column}"]')
    row.locator("select.role").select_option(role)
    if kind is not None:
        row.locator("select.kind").select_option(kind)


def test_submit_watch_progress_and_read_the_ranking(page: Any, live_server: str, tmp_path: Path):
    url = live_server
    page.goto(f"{url}/submit")
    page.set_input_files("#file", str(_csv(tmp_path)))
    page.wait_for_selector("#upload-status:has-text('Uploaded: 1000 rows')")
    page.select_option("#main-column", "y")
    for column in CANDIDATES:
        _select_role(page, column, "candidate")
    assert "3 candidate(s)" in page.inner_text("#role-counts")
    page.fill("#name", "browser study")
    # The knobs left empty show the chosen recipe's values, and take them.
    assert page.input_value("#recipe") == "full"
    assert page.get_attribute("#hidden", "placeholder") == "256, 64"
    assert page.input_value("#lr") == ""
    page.select_option("#recipe", "quick")
    assert page.get_attribute("#hidden", "placeholder") == "32"
    assert page.get_attribute("#lr", "placeholder") == "0.003"
    page.fill("#seeds", str(WATCHABLE["seeds"]))
    page.fill("#epochs", str(WATCHABLE["epochs"]))
    page.fill("#hidden", "16")
    page.fill("#batch_size", "64")
    page.fill("#patience", "0")
    screenshot(page, "submit-filled")
    page.click("#submit-button")
    page.wait_for_url(f"{url}/jobs/job_*")
    job_id = page.url.rsplit("/", 1)[1]
    assert page.inner_text("h1").startswith("browser study")

    # The page follows the job to its end (part-way values are checked step by step in
    # test_pages_follow_a_running_job_step_by_step, where the test sets the pace).
    seen = _follow_to_end(page, "#job [data-field=progress]", "#job h1 [data-field=status]")
    assert seen[-1] == 1.0
    assert seen == sorted(seen), f"progress went backwards: {seen}"

    # Ranking: the API's order, with verdict badges and intervals.
    rows = page.locator("#ranking tbody tr")
    page.wait_for_selector("#ranking tbody tr")
    api_ranking = httpx.get(f"{url}/api/v1/jobs/{job_id}/ranking").json()
    expected = [c["name"] for c in api_ranking["candidates"]]
    # It answers for the recipe chosen, the knobs typed over it and the rest its own.
    assert api_ranking["recipe"] == "quick"
    assert "trunk 16," in api_ranking["recipe_text"]
    assert "lr 0.003" in api_ranking["recipe_text"]
    assert "patience 0," in api_ranking["recipe_text"], api_ranking["recipe_text"]
    answers = page.inner_text("#answers-for")
    assert answers == f"Answers for: {api_ranking['recipe_text']}"
    assert api_ranking["estimand"] in page.inner_text("#estimand")
    assert [rows.nth(i).get_attribute("data-candidate") for i in range(rows.count())] == expected
    assert page.locator("#ranking .badge").count() == 3
    assert page.locator("#baseline .card").count() >= 2

    # Charts are drawn: Chart.js holds the data and the canvases carry painted pixels.
    gains = page.evaluate("() => Chart.getChart('gains-chart').data.datasets[0].data.length")
    assert gains == 3
    curves = page.evaluate(
        "() => Chart.getChart('curves-chart').data.datasets"
        ".filter(d => !d.bandOf).map(d => d.label)"
    )
    assert curves[0].startswith("baseline")
    assert sorted(curves[1:]) == sorted(CANDIDATES)
    for canvas in ("gains-chart", "curves-chart"):
        assert page.evaluate(PAINTED_PIXELS_JS, canvas) > 1000, f"{canvas} is blank"

    # Sorting by q-value, by mouse and then by keyboard.
    q_header = page.locator("#ranking th", has=page.locator("button", has_text="q-value"))
    q_header.locator("button").click()
    assert q_header.get_attribute("aria-sort") == "ascending"
    q_values = [c["q_value"] for c in api_ranking["candidates"]]
    shown = [
        float(v)
        for v in page.eval_on_selector_all(
            "#ranking tbody tr td:nth-child(5)", "cells => cells.map(c => c.dataset.value)"
        )
    ]
    assert shown == sorted(q_values)
    q_header.locator("button").focus()
    page.keyboard.press("Enter")
    assert q_header.get_attribute("aria-sort") == "descending"

    # Exports are the API's own answers.
    with page.expect_download() as download:
        page.click("#export-csv")
    csv_text = Path(download.value.path()).read_text()
    assert csv_text == httpx.get(f"{url}/api/v1/jobs/{job_id}/ranking?format=csv").text
    assert csv_text.splitlines()[0].startswith("rank,name")
    with page.expect_download() as download:
        page.click("#export-json")
    assert json.loads(Path(download.value.path()).read_text()) == api_ranking
    screenshot(page, "job-succeeded")

    page.goto(f"{url}/")
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    assert row.locator("[data-field=status]").inner_text() == "succeeded"
    assert row.locator("[data-field=dataset]").inner_text() == "family"
    screenshot(page, "jobs")


def test_jobs_page_follows_jobs_without_reloading(page: Any, live_server: str):
    url = live_server
    dataset_id = _upload(url)
    job_id = _submit(url, dataset_id, {**WATCHABLE, "epochs": 60}, name="followed live")
    page.goto(f"{url}/")
    page.evaluate("() => { window.notReloaded = true; }")
    selector = f'tr[data-job-id="{job_id}"]'
    row = page.locator(selector)
    seen = _follow_to_end(
        page, f"{selector} [data-field=progress]", f"{selector} [data-field=status]"
    )
    assert seen[-1] == 1.0
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert row.locator("[data-field=ranking-csv]").is_visible()

    # A job submitted elsewhere shows up on its own, at the top.
    other = _submit(url, dataset_id, SMALL, name="submitted elsewhere")
    page.locator(f'tr[data-job-id="{other}"]').wait_for(timeout=HANG_S * 1000)
    assert page.locator("#jobs tbody tr").first.get_attribute("data-job-id") == other
    assert page.evaluate("() => window.notReloaded") is True


def test_pages_follow_a_running_job_step_by_step(page: Any, idle: tuple[str, Settings]):
    """Part-way progress, shown live without a reload, on the job page and the jobs list.

    The server runs no worker: the test plays the worker's part through the same
    repository calls a worker makes (claim, total, progress, cancel check, finish), so
    every state the pages must show is set by the test and waited for, however fast or
    slow the machine is."""
    url, settings = idle
    job_id = _submit(url, _upload(url, rows=400), SMALL, name="held part-way")
    engine = make_engine(settings.resolved_database_url)
    factory = make_sessionmaker(engine)
    total = 40

    def report(done: int) -> bool | None:
        with write_transaction(factory) as session:
            return claims.renew(session, claim, lease_s=600, progress=done)

    page.goto(f"{url}/jobs/{job_id}")
    page.evaluate("() => { window.notReloaded = true; }")
    status = page.locator("#job h1 [data-field=status]")
    text = page.locator("#job [data-field=progress-text]")
    expect(status).to_have_text("queued")

    with write_transaction(factory) as session:
        claim = claims.claim(session, "browser-test", lease_s=600)
        assert claim is not None
        assert claim.job_id == job_id
        assert claims.set_total(session, claim, total, 0)
    for done in (10, 25):
        assert report(done) is False  # no cancel asked for
        expect(text).to_have_text(f"{done} / {total}", timeout=HANG_S * 1000)
        expect(status).to_have_text("running")
        bar = page.eval_on_selector("#job [data-field=progress]", PROGRESS_JS)
        assert bar["value"] / bar["max"] == pytest.approx(done / total)
    assert page.evaluate("() => window.notReloaded") is True
    screenshot(page, "job-running")

    # The jobs list shows the same job part-way and follows it too.
    page.goto(f"{url}/")
    page.evaluate("() => { window.notReloaded = true; }")
    row = f'tr[data-job-id="{job_id}"]'
    expect(page.locator(f"{row} [data-field=progress-text]")).to_have_text(f"25 / {total}")
    assert report(30) is False
    expect(page.locator(f"{row} [data-field=progress-text]")).to_have_text(
        f"30 / {total}", timeout=HANG_S * 1000
    )
    expect(page.locator(f"{row} [data-field=status]")).to_have_text("running")
    assert page.evaluate("() => window.notReloaded") is True

    # A cancel from the API reaches the "worker" at its next report; the list follows.
    assert httpx.post(f"{url}/api/v1/jobs/{job_id}/cancel").status_code in (200, 202)
    assert report(31) is True
    with write_transaction(factory) as session:
        assert claims.finish(session, claim, status="canceled")
    engine.dispose()
    expect(page.locator(f"{row} [data-field=status]")).to_have_text("canceled")


def test_validation_errors_show_next_to_their_fields(page: Any, live_server: str):
    url = live_server
    dataset_id = _upload(url, rows=400)
    page.goto(f"{url}/submit?dataset={dataset_id}")
    page.wait_for_selector('#columns-table tr[data-column="y"]')

    # No main task chosen: the API's complaint sits under the main-task picker.
    _select_role(page, "rel_0_0.90", "candidate")
    page.click("#submit-button")
    main_error = page.locator("[id='error-main_task.column']")
    main_error.wait_for()
    assert page.get_attribute("#main-column", "aria-invalid") == "true"

    # A bad kind on a candidate and too many replicates: each message by its own field.
    page.select_option("#main-column", "y")
    _select_role(page, "rel_0_0.90", "candidate", kind="binary")
    page.fill("#seeds", "51")
    page.click("#submit-button")
    seeds_error = page.locator("[id='error-budget.seeds']")
    seeds_error.wait_for()
    assert "AUXSEL_MAX_SEEDS" in seeds_error.inner_text()
    assert page.get_attribute("#seeds", "aria-invalid") == "true"
    assert main_error.is_hidden()  # fixed fields lose their message
    row = page.locator('#columns-table tr[data-column="rel_0_0.90"]')
    kind_error = row.locator(".error-kind")
    assert kind_error.is_visible()
    assert "binary needs exactly 2" in kind_error.inner_text()
    assert row.locator("select.kind").get_attribute("aria-invalid") == "true"
    assert "declare kind regression" in row.locator(".error-role").inner_text()
    assert page.locator("#form-errors li").count() == 3  # the summary lists all of them
    assert page.url.endswith(f"/submit?dataset={dataset_id}")
    screenshot(page, "submit-errors")

    # Fixed, it goes through.
    row.locator("select.kind").select_option("")
    page.select_option("#recipe", "quick")
    page.fill("#seeds", "2")
    page.fill("#epochs", "3")
    page.fill("#hidden", "16")
    page.click("#submit-button")
    page.wait_for_url(f"{url}/jobs/job_*")


def test_the_form_submits_soft_sharing(page: Any, idle: tuple[str, Settings]):
    """Sharing and coupling are budget knobs of the form: a soft-sharing job is what the
    API receives, and the coupling's placeholder is the recipe's."""
    url, _ = idle
    dataset_id = _upload(url, rows=400)
    page.goto(f"{url}/submit?dataset={dataset_id}")
    page.wait_for_selector('#columns-table tr[data-column="y"]')
    page.select_option("#main-column", "y")
    _select_role(page, "rel_0_0.90", "candidate")
    assert page.get_attribute("#coupling", "placeholder") == str(engine.RECIPES["full"]["coupling"])
    page.select_option("#sharing", "soft_trace")
    page.fill("#coupling", "-1")
    page.click("#submit-button")
    coupling_error = page.locator("[id='error-budget.coupling']")
    coupling_error.wait_for()
    assert page.get_attribute("#coupling", "aria-invalid") == "true"
    page.fill("#coupling", "0.5")
    page.click("#submit-button")
    page.wait_for_url(f"{url}/jobs/job_*")
    job_id = page.url.rsplit("/", 1)[1]
    budget = httpx.get(f"{url}/api/v1/jobs/{job_id}").json()["spec"]["budget"]
    assert (budget["sharing"], budget["coupling"]) == ("soft_trace", 0.5)
    # The idle server's other tests play the worker and claim the oldest queued job.
    assert httpx.post(f"{url}/api/v1/jobs/{job_id}/cancel").status_code == 202
    assert httpx.get(f"{url}/api/v1/jobs/{job_id}").json()["status"] == "canceled"


def test_proxy_scores_get_a_column_each_and_a_scatter(page: Any, live: tuple[str, Any]):
    """Proxies come from the screening methods; here they are written into a finished
    job's stored scores, as a screening job would leave them."""
    url, settings = live
    job_id = _submit(url, _upload(url, rows=400), SMALL)
    assert _wait(url, job_id)["status"] == "succeeded"
    engine = make_engine(settings.resolved_database_url)
    # The write lock up front, as the server's own writers take it (SQLite).
    with write_transaction(make_sessionmaker(engine)) as session:
        scores = session.scalars(select(CandidateScore).where(CandidateScore.job_id == job_id))
        for i, score in enumerate(scores):
            score.details = {**score.details, "proxies": {"lookahead": 0.1 * i, "cosine": None}}
    engine.dispose()

    page.goto(f"{url}/jobs/{job_id}")
    headers = page.eval_on_selector_all("#ranking thead th", "ths => ths.map(t => t.innerText)")
    assert "lookahead" in headers
    assert "cosine" not in headers  # no candidate has it
    points = page.evaluate("() => Chart.getChart('proxy-chart').data.datasets[0].data")
    assert sorted(p["x"] for p in points) == pytest.approx([0.0, 0.1, 0.2])
    assert page.evaluate(PAINTED_PIXELS_JS, "proxy-chart") > 500
    page.locator("#proxy-title").scroll_into_view_if_needed()
    screenshot(page, "job-proxies")


def test_a_failed_job_says_why(page: Any, idle: tuple[str, Settings]):
    """A job that fails in the worker (every job the data could refuse is refused at
    submission now) shows the plain-words reason and the engine's detail. The test plays
    the worker, so the failure is the one a worker writes, set and waited for."""
    url, settings = idle
    job_id = _submit(url, _upload(url, rows=400), SMALL, name="fails")
    detail = "No usable feature columns: every feature is constant in the training rows."
    engine = make_engine(settings.resolved_database_url)
    with write_transaction(make_sessionmaker(engine)) as session:
        claim = claims.claim(session, "browser-test", lease_s=600)
        assert claim is not None
        assert claim.job_id == job_id
        assert claims.finish(
            session, claim, status="failed", error_reason="invalid_input", error_detail=detail
        )
    engine.dispose()
    job = _wait(url, job_id)
    assert job["status"] == "failed"
    page.goto(f"{url}/jobs/{job_id}")
    assert "could not be used" in page.inner_text("#failure-reason")
    assert "No usable feature columns" in page.inner_text("#failure-detail")
    assert page.locator("#export-csv").count() == 0
    screenshot(page, "job-failed")


def test_cancel_a_running_job(page: Any, live_server: str):
    url = live_server
    dataset_id = _upload(url)
    long = {**WATCHABLE, "epochs": 1000}
    job_id = _submit(url, dataset_id, long, name="too long")
    page.goto(f"{url}/jobs/{job_id}")
    page.wait_for_selector("#job h1 [data-field=status]:has-text('running')")
    page.click("#cancel")
    page.wait_for_selector("#job h1 [data-field=status]:has-text('canceled')")
    assert page.locator("#cancel").count() == 0
    assert _wait(url, job_id)["status"] == "canceled"


def test_sign_in_with_a_key(page: Any, secured_server: tuple[str, str]):
    url, key = secured_server
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    bearer = {"Authorization": f"Bearer {key}"}
    dataset_id = _upload(url, rows=400, headers=bearer)
    job_id = _submit(url, dataset_id, SMALL, headers=bearer)

    # A deep link while signed out goes through the sign-in page and back.
    page.goto(f"{url}/jobs/{job_id}")
    assert page.url.startswith(f"{url}/signin?next=")
    page.fill("#key", "auxsel_nope_wrong")
    page.click("button[type=submit]")
    assert "not valid" in page.inner_text("#key-error")
    assert page.get_attribute("#key", "aria-invalid") == "true"
    screenshot(page, "signin-error")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/jobs/{job_id}")
    page.wait_for_selector("#job h1 [data-field=status]:has-text('succeeded')")

    cookie = next(c for c in page.context.cookies() if c["name"] == "auxsel_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain http here; Secure when the request is https
    assert key not in cookie["value"]  # a server-side session id, never the key
    assert "auxsel_session" not in page.evaluate("() => document.cookie")
    assert not any(key in u for u in requested), "the key appeared in a URL"

    # The live jobs list calls the API with the cookie.
    with page.expect_response(
        lambda r: "/api/v1/jobs?" in r.url and r.status == 200, timeout=HANG_S * 1000
    ):  # the list's first poll, with the cookie
        page.goto(f"{url}/")
        page.wait_for_selector(f'tr[data-job-id="{job_id}"]')

    page.click("text=Sign out")
    page.wait_for_url(f"{url}/signin")
    assert not [c for c in page.context.cookies() if c["name"] == "auxsel_session"]
    # Sign-out revoked the session on the server: the old cookie opens nothing.
    stale = httpx.get(f"{url}/api/v1/jobs", cookies={"auxsel_session": cookie["value"]})
    assert stale.status_code == 401
    page.goto(f"{url}/")
    assert page.url.startswith(f"{url}/signin")


def test_pages_need_no_sign_in_when_keys_are_off(page: Any, live_server: str):
    page.goto(f"{live_server}/signin")
    assert page.url == f"{live_server}/"
    assert page.locator("text=Sign out").count() == 0


def test_the_form_starts_from_the_column_roles_and_saves_them(page: Any, idle: Any):
    """A table with seven label columns: the form starts with only the fingerprint bits
    as features (labels and the SMILES id left out), shows each role's reason, saves a
    changed role, and the job it submits lists exactly its inputs."""
    url, _settings = idle
    response = httpx.post(f"{url}/api/v1/datasets", files={"file": ("tox.csv", tox_csv())})
    assert response.status_code == 201, response.text
    dataset_id = response.json()["id"]
    page.goto(f"{url}/submit?dataset={dataset_id}")
    page.wait_for_selector('#columns-table tr[data-column="NR-AR"]')

    def row(column: str) -> Any:
        return page.locator(f'#columns-table tr[data-column="{column}"]')

    for column in BITS:
        assert row(column).locator("select.role").input_value() == "feature"
    for column in TOX_LABELS:
        assert row(column).locator("select.dataset-role").input_value() == "label"
        assert row(column).locator("select.role").input_value() == "ignored"
    assert row("smiles").locator("select.dataset-role").input_value() == "id"
    assert row("smiles").locator("select.role").input_value() == "ignored"
    assert "Partially labelled" in row("SR-p53").locator(".role-reason").inner_text()

    # The owner says NR-AhR is a feature after all, and saves it.
    row("NR-AhR").locator("select.dataset-role").select_option("feature")
    assert row("NR-AhR").locator("select.role").input_value() == "feature"
    page.click("#save-roles")
    expect(page.locator("#roles-status")).to_have_text("Saved the roles of 1 column(s).")
    stored = httpx.get(f"{url}/api/v1/datasets/{dataset_id}").json()["roles"]["NR-AhR"]
    assert stored == {"role": "feature", "reason": "Set by the data set's owner.", "set_by": "user"}
    page.reload()
    page.wait_for_selector('#columns-table tr[data-column="NR-AR"]')
    assert row("NR-AhR").locator("select.role").input_value() == "feature"

    page.select_option("#main-column", "NR-AR")
    _select_role(page, "SR-ARE", "candidate")
    page.select_option("#recipe", "quick")
    page.fill("#seeds", "2")
    page.fill("#epochs", "3")
    page.click("#submit-button")
    page.wait_for_url(f"{url}/jobs/job_*")
    shown = page.inner_text("#input-columns")
    assert shown == ", ".join([*BITS, "NR-AhR"])
    job = httpx.get(f"{url}/api/v1/jobs/{page.url.rsplit('/', 1)[1]}").json()
    assert job["inputs"] == [*BITS, "NR-AhR"]
    assert "features" not in job["spec"] or job["spec"]["features"] is None
