"""The jobs list, compare and clone in Chromium, at desktop and phone width: sort by a
header cell (mouse and keyboard), filter, select two jobs and compare them (a changed
rank highlighted), clone a job into the form, edit it and submit a new job."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import httpx
import pytest
from playwright.sync_api import expect

from app.dashboard.routes import PAGE_SIZE
from app.settings import Settings
from tests.browser.conftest import DESKTOP, PHONE, screenshot
from tests.browser.test_dashboard import SMALL, _submit, _upload, _wait
from tests.conftest import HANG_S

ROWS_JS = "rows => rows.filter(r => !r.hidden).map(r => r.dataset.jobId)"
SIZES = pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1280", "390"])


class Jobs(NamedTuple):
    url: str
    alpha: dict[str, Any]  # three candidates, tagged "baseline"
    beta: dict[str, Any]  # only alpha's last-ranked candidate: it moves up to rank 1
    last: str


@pytest.fixture(scope="module")
def jobs(live: tuple[str, Settings]) -> Jobs:
    url = live[0]
    dataset = _upload(url, rows=400)
    alpha_id = _submit(url, dataset, SMALL, name="alpha study")
    httpx.patch(f"{url}/api/v1/jobs/{alpha_id}", json={"tags": ["baseline"]}).raise_for_status()
    alpha = _wait(url, alpha_id)
    assert alpha["status"] == "succeeded"
    ranking = httpx.get(f"{url}/api/v1/jobs/{alpha_id}/ranking").json()
    last = ranking["candidates"][-1]
    assert last["rank"] == 3
    beta_id = _submit(
        url, dataset, SMALL, name="beta study", seed=1, candidates=[{"column": last["column"]}]
    )
    beta = _wait(url, beta_id)
    assert beta["status"] == "succeeded"
    return Jobs(url, alpha, beta, last["name"])


def _shown(page: Any) -> list[str]:
    return list(page.eval_on_selector_all("#jobs-table tbody tr", ROWS_JS))


def _seconds(job: dict[str, Any]) -> float:
    start, end = (datetime.fromisoformat(job[k]) for k in ("started_at", "finished_at"))
    return (end - start).total_seconds()


@SIZES
def test_sort_by_a_header_cell_and_filter(page: Any, jobs: Jobs, size: dict[str, int]):
    page.set_viewport_size(size)
    page.goto(f"{jobs.url}/")
    alpha, beta = jobs.alpha["id"], jobs.beta["id"]
    page.locator(f'tr[data-job-id="{beta}"]').wait_for()
    assert _shown(page)[:2] == [beta, alpha]  # newest first
    row = page.locator(f'tr[data-job-id="{alpha}"]')
    expect(row.locator("[data-field=top-name]")).to_have_text(
        httpx.get(f"{jobs.url}/api/v1/jobs/{alpha}/ranking").json()["candidates"][0]["name"]
    )
    expect(row.locator("[data-field=tags]")).to_have_text("baseline")

    # A click on the Name header cell sorts by name, then the other way.
    name = page.locator("#jobs-table th", has=page.locator("button", has_text="Name"))
    name.click()
    expect(name).to_have_attribute("aria-sort", "ascending")
    assert _shown(page) == [alpha, beta]
    name.click()
    expect(name).to_have_attribute("aria-sort", "descending")
    assert _shown(page) == [beta, alpha]
    expect(page.locator("#sort-status")).to_have_text("Sorted by Name, descending.")

    # By keyboard: the Duration header's button, Enter: shortest run first.
    duration = page.locator("#jobs-table th", has=page.locator("button", has_text="Duration"))
    duration.locator("button").focus()
    page.keyboard.press("Enter")
    expect(duration).to_have_attribute("aria-sort", "ascending")
    expect(name).not_to_have_attribute("aria-sort", "descending")
    by_time = sorted((jobs.alpha, jobs.beta), key=_seconds)
    assert _shown(page) == [j["id"] for j in by_time]

    # The search box (through the API): a tag, then a name word, then nothing matching.
    box = page.locator("#job-filter")
    count = page.locator("#filter-count")
    box.fill("baseline")
    expect(count).to_have_text("1 job found")
    assert _shown(page) == [alpha]
    box.fill("beta")
    expect(page.locator(f'tr[data-job-id="{alpha}"]')).to_have_count(0)
    assert _shown(page) == [beta]
    box.fill("no such job")
    expect(page.locator("[data-no-match]")).to_be_visible()
    assert _shown(page) == []
    box.fill("")
    expect(count).to_have_text("")
    expect(page.locator(f'tr[data-job-id="{alpha}"]')).to_have_count(1)
    assert {alpha, beta} <= set(_shown(page))
    if size == PHONE:
        screenshot(page, "jobs-list")


@SIZES
def test_select_two_jobs_and_compare(page: Any, jobs: Jobs, size: dict[str, int]):
    page.set_viewport_size(size)
    page.goto(f"{jobs.url}/")
    alpha, beta = jobs.alpha["id"], jobs.beta["id"]
    button = page.locator("#compare-button")
    expect(button).to_be_disabled()
    page.locator(f'tr[data-job-id="{alpha}"] input[data-field=select]').check()
    expect(button).to_be_disabled()  # one job is not a comparison
    page.locator(f'tr[data-job-id="{beta}"] input[data-field=select]').check()
    expect(button).to_be_enabled()
    button.click()
    page.wait_for_url(f"**/compare?a={alpha}&b={beta}")

    # alpha ranked it last of three; beta tested it alone: up two, highlighted.
    moved = page.locator(f'#compare tr[data-candidate="{jobs.last}"]')
    expect(moved.locator("[data-field=rank-change]")).to_have_text("▲ up 2")
    assert "changed" in (moved.get_attribute("class") or "").split()
    background = moved.evaluate("el => getComputedStyle(el).backgroundColor")
    plain = page.locator("#compare tbody tr:not(.changed)").first
    assert background != plain.evaluate("el => getComputedStyle(el).backgroundColor")
    assert moved.locator("[data-field=rank-change]").is_visible()
    # alpha's other two candidates are only in alpha.
    only_a = page.locator("#only-in-a li")
    expect(only_a).to_have_count(2)
    assert jobs.last not in only_a.all_inner_texts()
    if size == DESKTOP:
        screenshot(page, "compare")


def test_clone_fills_the_form_and_submits_a_new_job(page: Any, jobs: Jobs):
    alpha = jobs.alpha
    page.goto(f"{jobs.url}/jobs/{alpha['id']}")
    page.click("#clone")
    page.wait_for_url(f"**/submit?from={alpha['id']}")
    page.wait_for_selector('#columns-table tr[data-column="y"].main')
    assert page.input_value("#name") == "alpha study (copy)"
    assert page.input_value("#main-column") == "y"
    assert page.input_value("#recipe") == alpha["spec"]["recipe"]
    assert page.input_value("#epochs") == str(alpha["spec"]["budget"]["epochs"])
    candidates = [c["column"] for c in alpha["spec"]["candidates"]]
    for column in candidates:
        assert page.input_value(f'#columns-table tr[data-column="{column}"] select.role') == (
            "candidate"
        )
    assert page.input_value("#tags") == "baseline"  # its tags come along, not its note
    screenshot(page, "clone-form")

    # Edit before submitting: another seed, a new name, one more tag and a note.
    page.fill("#seed", "7")
    page.fill("#name", "alpha study, seed 7")
    page.fill("#tags", "baseline, seed7")
    page.fill("#note", "Does the ranking hold on another seed?")
    page.click("#submit-button")
    page.wait_for_url(lambda u: "/jobs/job_" in u and alpha["id"] not in u, timeout=HANG_S * 1000)
    new_id = page.url.rsplit("/", 1)[1]
    new = httpx.get(f"{jobs.url}/api/v1/jobs/{new_id}").json()
    assert new["name"] == "alpha study, seed 7"
    assert new["spec"]["seed"] == 7
    assert new["tags"] == ["baseline", "seed7"]
    assert new["note"] == "Does the ranking hold on another seed?"
    for key in ("dataset_id", "main_task", "candidates", "method", "metric", "recipe"):
        assert new["spec"][key] == alpha["spec"][key], key
    assert new["spec"]["budget"] == alpha["spec"]["budget"]  # every knob, shown or not
    assert _wait(jobs.url, new_id)["status"] == "succeeded"


def test_edit_tags_and_note_on_the_job_page(page: Any, jobs: Jobs):
    beta = jobs.beta["id"]
    page.goto(f"{jobs.url}/jobs/{beta}")
    page.click("#edit-meta summary")
    page.fill("#meta-tags", "rerun, seed1, rerun")
    page.fill("#meta-note", "Only the weakest candidate, alone.")
    page.click("#meta-save")
    expect(page.locator("#meta-status")).to_have_text("Saved.")
    expect(page.locator("#job-meta [data-field=tags] .tag")).to_have_text(["rerun", "seed1"])
    stored = httpx.get(f"{jobs.url}/api/v1/jobs/{beta}").json()
    assert stored["tags"] == ["rerun", "seed1"]
    assert stored["note"] == "Only the weakest candidate, alone."
    # A tag the API refuses: its message, and nothing changed.
    page.fill("#meta-tags", "no,good, bad!tag")
    page.click("#meta-save")
    expect(page.locator("#meta-status")).to_contain_text("tags[2]")
    assert httpx.get(f"{jobs.url}/api/v1/jobs/{beta}").json()["tags"] == ["rerun", "seed1"]
    # The list finds it by its new tag.
    page.goto(f"{jobs.url}/")
    page.fill("#job-filter", "seed1")
    expect(page.locator("#filter-count")).to_have_text("1 job found")
    assert _shown(page) == [beta]


@pytest.fixture(scope="module")
def many(idle: tuple[str, Settings]) -> tuple[str, str]:
    """A job, then more than a first page of newer ones after it (on the worker-less server
    they stay queued): (url, the first job's id)."""
    url = idle[0]
    dataset = _upload(url, rows=400)
    needle = _submit(url, dataset, SMALL, name="needle in a pile", tags=["needle"])
    with httpx.Client(base_url=url, timeout=HANG_S) as client:
        for i in range(PAGE_SIZE + 1):
            body = {
                "dataset_id": dataset,
                "main_task": "y",
                "candidates": ["noise_0"],
                "recipe": "quick",
                "budget": SMALL,
                "name": f"hay {i}",
            }
            client.post("/api/v1/jobs", json=body).raise_for_status()
    return url, needle


@SIZES
def test_search_finds_a_job_beyond_the_first_page(
    page: Any, many: tuple[str, str], size: dict[str, int]
):
    url, needle = many
    page.set_viewport_size(size)
    page.goto(f"{url}/")
    expect(page.locator("#jobs-table tbody tr")).to_have_count(PAGE_SIZE)
    assert needle not in _shown(page)  # the oldest job is on the next page
    expect(page.locator("[data-pager]")).to_be_visible()

    page.fill("#job-filter", "NEEDLE")
    expect(page.locator("#filter-count")).to_have_text("1 job found")
    assert _shown(page) == [needle]
    expect(page.locator("[data-pager]")).to_be_hidden()
    assert "q=NEEDLE" in page.url  # a reload or a shared link keeps the search
    if size == DESKTOP:
        screenshot(page, "jobs-search")
    page.reload()
    assert _shown(page) == [needle]
    expect(page.locator("#job-filter")).to_have_value("NEEDLE")

    # A search with more matches than a page says so and pages through them.
    page.fill("#job-filter", "hay")
    expect(page.locator("#filter-count")).to_have_text(f"{PAGE_SIZE}+ jobs found")
    page.locator("[data-pager] a").click()
    expect(page.locator("#filter-count")).to_have_text("1 job found")
    expect(page.locator("#jobs-table tbody tr a[data-field=link]")).to_have_text("hay 0")
