"""The job page of a job at several shares of the main labels
(``budget.main_train_fractions``) in Chromium at 1280 and 390 px: the gain-against-share
chart, a curve with its interval band per candidate in the candidate's own colour, and
one sentence per candidate that says at which shares it is helpful (the API's)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from app.dashboard.charts import candidate_colour
from app.settings import Settings
from tests.browser.conftest import DESKTOP, PHONE, screenshot
from tests.browser.test_dashboard import SMALL, _select_role, _submit, _upload, _wait
from tests.browser.test_job_page import NO_SIDEWAYS_SCROLL_JS

SHARES = [0.1, 0.25, 1.0]

SERIES_JS = """() => Chart.getChart('shares-chart').data.datasets.map(d => ({
  label: d.label, band: d.bandOf || null, colour: d.borderColor || null,
  fill: d.fill ?? null, xs: d.data.map(p => p.x)}))"""


@pytest.fixture(scope="module")
def shares_job(live: tuple[str, Settings]) -> tuple[str, str, dict[str, Any]]:
    """A finished job at three shares: (url, job id, its ranking)."""
    url, _ = live
    dataset_id = _upload(url, rows=400)
    job_id = _submit(url, dataset_id, {**SMALL, "main_train_fractions": SHARES}, name="shares")
    assert _wait(url, job_id)["status"] == "succeeded"
    ranking = httpx.get(f"{url}/api/v1/jobs/{job_id}/ranking").json()
    return url, job_id, dict(ranking)


def test_the_job_page_draws_gain_against_share_with_bands_and_sentences(
    page: Any, shares_job: tuple[str, str, dict[str, Any]]
) -> None:
    url, job_id, ranking = shares_job
    page.goto(f"{url}/jobs/{job_id}")
    expect(page.locator("#shares-chart")).to_be_visible()
    page.wait_for_function("() => window.Chart && Chart.getChart('shares-chart')")
    names = [c["name"] for c in ranking["candidates"]]
    series = page.evaluate(SERIES_JS)
    lines = [s for s in series if s["band"] is None]
    bands = [s for s in series if s["band"] is not None]
    assert [s["label"] for s in lines] == names
    for line in lines:
        assert line["xs"] == SHARES  # a point at every share
        assert line["colour"] == candidate_colour(line["label"])  # its colour everywhere
    # Every curve has its interval band: low and high, the high filled down to the low.
    assert sorted(b["band"] for b in bands) == sorted(names * 2)
    assert [b["fill"] for b in bands].count("-1") == len(names)
    # One sentence per candidate, the ranking's own, naming the shares in percent.
    for c in ranking["candidates"]:
        item = page.locator(f'#share-summaries li[data-candidate="{c["name"]}"]')
        expect(item.locator(".share-sentence")).to_have_text(c["fraction_summary"])
        expect(item.locator(".gap-hint")).to_have_text(c["hint"]["gap_text"])
        assert "10%" in c["fraction_summary"]
        assert "100%" in c["fraction_summary"]
        helpful = [f["main_train_fraction"] for f in c["fractions"] if f["verdict"] == "helpful"]
        assert c["helpful_at"] == helpful
    # The learning curves are the all-labels share's, and say so.
    expect(page.locator("#curves-title")).to_contain_text("at 100% of the main labels")
    screenshot(page, "job-share-curves")


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1280", "390"])
def test_the_share_section_fits_without_sideways_scrolling(
    page: Any, shares_job: tuple[str, str, dict[str, Any]], size: dict[str, int]
) -> None:
    url, job_id, _ = shares_job
    page.set_viewport_size(size)
    page.goto(f"{url}/jobs/{job_id}")
    page.wait_for_function("() => window.Chart && Chart.getChart('shares-chart')")
    expect(page.locator("#share-summaries")).to_be_visible()
    assert page.evaluate(NO_SIDEWAYS_SCROLL_JS)
    box = page.locator("#shares-chart").bounding_box()
    assert box is not None
    assert box["width"] <= size["width"]


def test_the_form_submits_shares_and_shows_their_error_at_the_field(
    page: Any, idle: tuple[str, Settings]
) -> None:
    url, _ = idle
    dataset_id = _upload(url, rows=400)
    page.goto(f"{url}/submit?dataset={dataset_id}")
    page.wait_for_selector('#columns-table tr[data-column="y"]')
    page.select_option("#main-column", "y")
    _select_role(page, "rel_0_0.90", "candidate")
    page.fill("#main_train_fractions", "0.25, 0.5")  # without 1: refused
    page.click("#submit-button")
    error = page.locator("[id='error-budget.main_train_fractions']")
    expect(error).to_contain_text("Must include 1")
    assert page.get_attribute("#main_train_fractions", "aria-invalid") == "true"
    page.fill("#main_train_fractions", "1, 0.25, 0.5")
    page.click("#submit-button")
    page.wait_for_url(f"{url}/jobs/job_*")
    job_id = page.url.rsplit("/", 1)[1]
    budget = httpx.get(f"{url}/api/v1/jobs/{job_id}").json()["spec"]["budget"]
    assert budget["main_train_fractions"] == [0.25, 0.5, 1.0]
    # The idle server's other tests play the worker and claim the oldest queued job.
    assert httpx.post(f"{url}/api/v1/jobs/{job_id}/cancel").status_code == 202
