"""The job page in Chromium at desktop (1280 px) and phone (390 px) width: the verdict in
view without sideways scrolling, whole header cells that sort (mouse and keyboard), the
charts' replicate points, bands and per-candidate colours that hold from job to job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from app.settings import Settings
from tests.browser.test_dashboard import SMALL, _submit, _upload, _wait

SHARED = ["rel_0_0.90", "noise_0"]

CURVE_COLOURS_JS = """() => Object.fromEntries(Chart.getChart('curves-chart').data.datasets
  .filter(d => !d.bandOf).map(d => [d.label, d.borderColor]))"""


@pytest.fixture(scope="module")
def two_jobs(live: tuple[str, Settings]) -> tuple[str, str, str]:
    """Two finished jobs: three candidates, then two of them in the other order and
    without the third: (url, first job, second job)."""
    url, _ = live
    dataset_id = _upload(url, rows=400)
    first = _submit(url, dataset_id, SMALL, name="first")
    second = _submit(
        url, dataset_id, SMALL, name="second", candidates=[{"column": c} for c in SHARED[::-1]]
    )
    for job_id in (first, second):
        assert _wait(url, job_id)["status"] == "succeeded"
    return url, first, second


def _shoot(page: Any, directory: Path, name: str) -> None:
    page.screenshot(path=directory / f"{name}.png", full_page=True)


def test_charts_show_replicates_bands_and_stable_colours(
    page: Any, two_jobs: tuple[str, str, str], screenshot_dir: Path
):
    url, first, second = two_jobs
    colours = []
    for job_id in (first, second):
        page.goto(f"{url}/jobs/{job_id}")
        expect(page.locator("#curves-chart")).to_be_visible()
        page.wait_for_function("() => window.Chart && Chart.getChart('curves-chart')")
        colours.append(page.evaluate(CURVE_COLOURS_JS))
        # Each replicate's gain is a point on the interval chart.
        per_replicate = page.evaluate(
            "() => Chart.getChart('gains-chart').data.datasets[2].data.length"
        )
        candidates = page.locator("#ranking tbody tr").count()
        assert per_replicate == candidates * SMALL["seeds"]
        # Every curve has a band (lowest to highest replicate) filled to its partner.
        bands = page.evaluate(
            "() => Chart.getChart('curves-chart').data.datasets.filter(d => d.bandOf)"
            ".map(d => [d.bandOf, d.fill])"
        )
        assert len(bands) == 2 * len(colours[-1])
        assert [b[1] for b in bands].count("-1") == len(colours[-1])
        # The baseline's legend swatch is a dashed line, not a filled box.
        legend = page.evaluate(
            "() => { const i = Chart.getChart('curves-chart').legend.legendItems[0];"
            " return {text: i.text, style: i.pointStyle, dash: i.lineDash}; }"
        )
        assert legend["text"].startswith("baseline")
        assert legend["style"] == "line"
        assert legend["dash"]
        _shoot(page, screenshot_dir, f"job-charts-{job_id}")
    one, other = colours
    for name in SHARED:
        assert one[name] == other[name], name
    assert len(set(one.values())) == len(one)  # baseline and candidates tell apart here
