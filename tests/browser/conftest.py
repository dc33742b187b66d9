"""Headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against real
`auxsel serve` processes. scripts/test.sh installs Chromium when it runs as root; where
it is missing these tests fail, except for a non-root local run, where they skip."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from app.settings import Settings
from tests.conftest import HANG_S, ROOT, make_settings, start_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Every browser test's screenshots, kept by CI as artifacts ($AUXSEL_SCREENSHOT_DIR moves them).
SCREENSHOTS = Path(os.environ.get("AUXSEL_SCREENSHOT_DIR") or ROOT / "artifacts" / "screenshots")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = (
        f"Chromium not found ({CHROMIUM}); scripts/test.sh installs it with "
        "'apt-get install -y chromium' when run as root"
    )
    if os.environ.get("CI") or os.geteuid() == 0:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    _require_chromium()
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": LAUNCH_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": DESKTOP, "accept_downloads": True}


@pytest.fixture(scope="session", autouse=True)
def _waits_bound_hangs_only() -> None:
    """Playwright's own bounds (5 s for an expectation, 30 s for an action) are speed
    expectations; on a loaded machine a correct page can take longer to update."""
    expect.set_options(timeout=HANG_S * 1000)


@pytest.fixture
def context(context: Any) -> Any:
    context.set_default_timeout(HANG_S * 1000)
    return context


@pytest.fixture(autouse=True)
def page_errors(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Script errors and console errors (CSP violations among them) fail the test."""
    errors: list[str] = []
    if "page" in request.fixturenames:
        page = request.getfixturevalue("page")
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: (
                errors.append(f"console: {msg.text}")
                # Answers the test provokes on purpose (422, 401) are logged as failed loads.
                if msg.type == "error" and "Failed to load resource" not in msg.text
                else None
            ),
        )
    yield errors
    assert not errors, errors


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """`auxsel serve` with its worker, keys off (loopback), on SQLite: (url, settings)."""
    root = tmp_path_factory.mktemp("dashboard")
    settings = make_settings(root / "data", f"sqlite:///{root / 'auxsel.db'}")
    proc, url = start_server(settings, root / "server.log")
    yield url, settings
    proc.stop()


@pytest.fixture(scope="module")
def live_server(live: tuple[str, Settings]) -> str:
    return live[0]


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """`auxsel serve --no-worker` on SQLite: jobs stay queued until a test moves them."""
    root = tmp_path_factory.mktemp("idle")
    settings = make_settings(root / "data", f"sqlite:///{root / 'auxsel.db'}")
    proc, url = start_server(settings, root / "server.log", worker=False)
    yield url, settings
    proc.stop()


def screenshot(page: Any, name: str) -> None:
    """Full-page screenshots at desktop and phone width (CI keeps them as artefacts)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("1280", DESKTOP), ("390", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_timeout(250)  # let the charts resize
        page.screenshot(path=SCREENSHOTS / f"{name}-{label}.png", full_page=True)
    page.set_viewport_size(DESKTOP)


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """Where the job-page tests save their screenshots: beside the others (SCREENSHOTS)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SCREENSHOTS.exists() and any(SCREENSHOTS.iterdir()):
        terminalreporter.write_line(f"dashboard screenshots: {SCREENSHOTS}")
