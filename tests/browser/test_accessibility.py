"""axe-core (vendored: tests/browser/vendor/axe-4.14.1.min.js, MPL-2.0, licence beside it)
on the dashboard's pages in real Chromium, at desktop and phone width: no serious or
critical violation on the job list, the job page, the submit form (also filled as a
clone of a job) or the compare page. Each page's full
result is written under artifacts/axe/ (CI keeps it beside the screenshots)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.browser.conftest import DESKTOP, PHONE
from tests.browser.test_dashboard import SMALL, _submit, _upload, _wait
from tests.conftest import ROOT

AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
RESULTS = ROOT / "artifacts" / "axe"
BLOCKING = ("serious", "critical")
# axe's WCAG 2.x A and AA rules and its best practices.
RUN_AXE_JS = """async () => {
  const result = await axe.run(document, {
    runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']},
    resultTypes: ['violations'],
  });
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(' ')),
  }));
}"""


@pytest.fixture(scope="module")
def finished_job(live: tuple[str, Settings]) -> str:
    url, _ = live
    job_id = _submit(url, _upload(url, rows=400), SMALL)
    assert _wait(url, job_id)["status"] == "succeeded"
    return job_id


@pytest.fixture(scope="module")
def second_job(live: tuple[str, Settings], finished_job: str) -> str:
    """Another finished job (another seed, one candidate), to compare with the first."""
    url, _ = live
    job_id = _submit(url, _upload(url, rows=400), SMALL, seed=1, candidates=[{"column": "noise_0"}])
    assert _wait(url, job_id)["status"] == "succeeded"
    return job_id


def _violations(browser: Any, url: str, viewport: dict[str, int]) -> list[dict[str, Any]]:
    # The pages' Content-Security-Policy forbids injected scripts, so axe's context
    # bypasses it; the pages themselves are unchanged.
    context = browser.new_context(bypass_csp=True, viewport=viewport)
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_load_state("networkidle")
        page.add_script_tag(path=str(AXE))
        return list(page.evaluate(RUN_AXE_JS))
    finally:
        context.close()


@pytest.mark.parametrize("width", ["1280", "390"])
@pytest.mark.parametrize("name", ["jobs", "job", "submit", "clone", "compare"])
def test_no_serious_accessibility_violations(
    browser: Any,
    live: tuple[str, Settings],
    finished_job: str,
    second_job: str,
    name: str,
    width: str,
) -> None:
    url, _ = live
    path = {
        "jobs": "/",
        "job": f"/jobs/{finished_job}",
        "submit": "/submit",
        "clone": f"/submit?from={finished_job}",
        "compare": f"/compare?a={finished_job}&b={second_job}",
    }[name]
    violations = _violations(browser, url + path, DESKTOP if width == "1280" else PHONE)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}-{width}.json").write_text(json.dumps(violations, indent=2))
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert not blocking, json.dumps(blocking, indent=2)


def test_axe_reports_what_it_should(browser: Any, tmp_path: Path) -> None:
    """The check can fail: an unnamed button and a form field without a label are
    reported as critical, so an empty list above means axe ran and found nothing."""
    page_file = tmp_path / "broken.html"
    page_file.write_text(
        '<!doctype html><html lang="en"><head><title>t</title></head>'
        '<body><main><button></button><input type="text"></main></body></html>'
    )
    found = {v["id"]: v["impact"] for v in _violations(browser, page_file.as_uri(), DESKTOP)}
    assert found.get("button-name") == "critical"
    assert found.get("label") == "critical"
