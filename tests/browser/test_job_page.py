"""The job page in Chromium at desktop (1280 px) and phone (390 px) width: the verdict in
view without sideways scrolling, whole header cells that sort (mouse and keyboard), the
charts' replicate points, bands and per-candidate colours that hold from job to job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from app.settings import Settings
from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.test_dashboard import SMALL, _submit, _upload, _wait

SHARED = ["rel_0_0.90", "noise_0"]

NO_SIDEWAYS_SCROLL_JS = "() => document.documentElement.scrollWidth <= window.innerWidth"
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
        # The tooltip of a curve says how many replicates its mean is over.
        lines = page.evaluate(
            "() => { const c = Chart.getChart('curves-chart');"
            " c.tooltip.setActiveElements([{datasetIndex: 0, index: 0}], {x: 0, y: 0});"
            " c.update(); return c.tooltip.body.flatMap(b => b.lines); }"
        )
        assert lines[0].startswith("baseline (main task alone): ")
        assert lines[0].endswith(
            f"(mean of {SMALL['seeds']} of {SMALL['seeds']} replicates still training)"
        )
        _shoot(page, screenshot_dir, f"job-charts-{'first' if job_id == first else 'second'}")
    one, other = colours
    for name in SHARED:
        assert one[name] == other[name], name
    assert len(set(one.values())) == len(one)  # baseline and candidates tell apart here


TRAIN_CHART_JS = """id => { const c = Chart.getChart(id);
  return c ? c.data.datasets.filter(d => !d.bandOf).map(d => d.label) : null; }"""


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1280", "390"])
def test_training_and_auxiliary_curves_open_on_demand(
    page: Any, two_jobs: tuple[str, str, str], screenshot_dir: Path, size: dict[str, int]
):
    url, first, _ = two_jobs
    page.set_viewport_size(size)
    page.goto(f"{url}/jobs/{first}")
    page.wait_for_function("() => window.Chart && Chart.getChart('curves-chart')")
    more = page.locator("#more-curves")
    expect(more.locator("summary")).to_have_text("Show training and auxiliary-task curves")
    expect(page.locator("#train-curves-chart")).to_be_hidden()  # closed: nothing drawn
    assert page.evaluate(TRAIN_CHART_JS, "train-curves-chart") is None
    more.locator("summary").click()
    expect(page.locator("#train-curves-chart")).to_be_visible()
    page.wait_for_function("() => Chart.getChart('aux-curves-chart')")
    validation = page.evaluate(TRAIN_CHART_JS, "curves-chart")
    # The main task's training loss for the baseline and every candidate; the auxiliary
    # task's for the candidates only (the baseline trains none).
    assert page.evaluate(TRAIN_CHART_JS, "train-curves-chart") == validation
    assert page.evaluate(TRAIN_CHART_JS, "aux-curves-chart") == validation[1:]
    assert validation[0].startswith("baseline")
    y_title = "() => Chart.getChart('aux-curves-chart').options.scales.y.title.text"
    assert page.evaluate(y_title) == "auxiliary task training loss"
    assert page.evaluate(NO_SIDEWAYS_SCROLL_JS)
    page.wait_for_timeout(250)  # let the charts finish their first layout
    _shoot(page, screenshot_dir, f"job-train-curves-{size['width']}")


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1280", "390"])
def test_the_verdict_is_in_view_without_sideways_scrolling(
    page: Any, two_jobs: tuple[str, str, str], screenshot_dir: Path, size: dict[str, int]
):
    url, first, _ = two_jobs
    page.set_viewport_size(size)
    page.goto(f"{url}/jobs/{first}")
    rows = page.locator("#ranking tbody tr")
    expect(rows).to_have_count(3)
    assert page.evaluate(NO_SIDEWAYS_SCROLL_JS)
    for i in range(3):
        verdict = rows.nth(i).locator(".badge[class*='verdict-']")
        expect(verdict).to_be_visible()
        box = verdict.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= size["width"]
        assert verdict.inner_text() in ("helpful", "inconclusive", "harmful")
    # The candidate's name stays beside its verdict.
    name = rows.first.locator("td").nth(1)
    assert name.bounding_box()["x"] + name.bounding_box()["width"] <= size["width"]
    _shoot(page, screenshot_dir, f"job-ranking-{size['width']}")


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1280", "390"])
def test_a_click_anywhere_in_a_header_cell_sorts(
    page: Any, two_jobs: tuple[str, str, str], size: dict[str, int]
):
    url, first, _ = two_jobs
    page.set_viewport_size(size)
    page.goto(f"{url}/jobs/{first}")
    header = page.locator("#ranking thead th", has=page.locator("button", has_text="Candidate"))
    header.scroll_into_view_if_needed()
    box = header.bounding_box()
    assert box is not None
    # A corner of the cell, away from the label text.
    page.mouse.click(box["x"] + box["width"] - 3, box["y"] + box["height"] - 3)
    expect(header).to_have_attribute("aria-sort", "ascending")
    names = page.eval_on_selector_all(
        "#ranking tbody tr", "rows => rows.map(r => r.dataset.candidate)"
    )
    assert names == sorted(names)
    # The keyboard sorts the other way: Tab to the cell's button, then Enter.
    header.locator("button").focus()
    page.keyboard.press("Enter")
    expect(header).to_have_attribute("aria-sort", "descending")
    names = page.eval_on_selector_all(
        "#ranking tbody tr", "rows => rows.map(r => r.dataset.candidate)"
    )
    assert names == sorted(names, reverse=True)
    expect(page.locator("#sort-status")).to_have_text("Sorted by Candidate, descending.")
    page.keyboard.press("Space")
    expect(header).to_have_attribute("aria-sort", "ascending")


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["1280", "390"])
def test_screening_results_read_as_sentences_and_tables(
    page: Any, screened_job: str, screenshot_dir: Path, size: dict[str, int]
):
    page.set_viewport_size(size)
    page.goto(screened_job)
    agreement = page.locator("#agreement")
    expect(agreement).to_contain_text("confirmed candidates")
    expect(agreement).not_to_contain_text("interval [")  # too few confirmed for one
    expect(page.locator("#subset-summary")).to_contain_text("The search trained")
    for element in ("#agreement", "#subset-summary", "#proxy-chart"):
        box = page.locator(element).bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= size["width"], element
    assert page.evaluate(NO_SIDEWAYS_SCROLL_JS)
    assert "{'" not in page.inner_text("main")
    _shoot(page, screenshot_dir, f"job-screened-{size['width']}")


@pytest.fixture(scope="module")
def screened_job(live: tuple[str, Settings]) -> str:
    """A finished screen+probe job with subset search: its page's URL."""
    url, _ = live
    budget = {**SMALL, "confirm_top": 1, "confirm_random": 1, "subset_search": True,
              "subset_budget": 2, "screen_epochs": 2}  # fmt: skip
    job_id = _submit(url, _upload(url, rows=400), budget, method="screen+probe")
    assert _wait(url, job_id)["status"] == "succeeded"
    return f"{url}/jobs/{job_id}"
