"""A small, bounded version of the load benchmark (benchmarks/load_mixed.py) against a
real server on PostgreSQL: concurrent clients upload, submit, cancel and poll for 15 s;
no request may get a 5xx, and every submitted job must end succeeded, failed with a
reason, or canceled. The drain waits for the last job however long a loaded machine
takes (it returns as soon as every job has ended)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from benchmarks.load_mixed import ok, run_load, summary
from tests.conftest import make_settings, start_server


@pytest.mark.slow
def test_mixed_load_on_postgresql(tmp_path, pg_url):
    settings = make_settings(tmp_path / "data", pg_url)
    # Rate limits off: this measures the service, not the limiter (tested elsewhere).
    server, url = start_server(
        settings,
        tmp_path / "server.log",
        AUXSEL_RATE_SUBMIT_PER_MIN="0",
        AUXSEL_RATE_UPLOAD_PER_MIN="0",
        AUXSEL_LOG_LEVEL="WARNING",
    )
    try:
        # Own thread, own event loop: an earlier sync Playwright session may leave one
        # marked running on the main thread.
        with ThreadPoolExecutor(max_workers=1) as pool:
            result = pool.submit(
                lambda: asyncio.run(
                    run_load(url, clients=6, seconds=15, submit_every_s=3.0, drain_s=900)
                )
            ).result()
    finally:
        server.stop()
    print(summary(result))
    assert result["server_errors"] == 0, result["server_error_samples"]
    assert result["jobs"]["submitted"] > 0
    assert result["latency"]["poll"]["n"] > 0
    assert ok(result), result
