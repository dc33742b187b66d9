"""Pieces the load benchmarks share for the `auxsel serve` they start themselves."""

from __future__ import annotations

import time

import httpx


def wait_ready(url: str, tries: int) -> None:
    """Poll ``url``/readyz every 0.2 s until it answers 200, at most ``tries`` times; a
    server that never gets ready shows up in the first requests the benchmark makes."""
    for _ in range(tries):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
