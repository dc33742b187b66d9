"""Garbage collection in the API process (issue 16): the startup heap is frozen out of
later collections (AUXSEL_GC_FREEZE), every collection's pause is a metric, and
AUXSEL_SERVE_STATS_FILE records pauses and event-loop lag for benchmarks."""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.conftest import HANG_S, ROOT, make_settings


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Each test starts and leaves this (shared) test process with nothing frozen."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'auxsel.db'}", **overrides)


def _pauses(client: TestClient) -> dict[str, float]:
    """``auxsel_gc_pause_seconds_count`` by generation, from /metrics."""
    text = client.get("/metrics").text
    found = re.findall(r'^auxsel_gc_pause_seconds_count\{generation="(\d)"\} (\S+)$', text, re.M)
    return {generation: float(value) for generation, value in found}


def test_the_startup_heap_is_frozen_after_the_real_startup(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, gc_freeze=True))) as client:
        assert gc.get_freeze_count() > 0
        metrics = client.get("/metrics").text
        frozen = re.search(r"^auxsel_gc_frozen_objects (\S+)$", metrics, re.M)
        assert frozen is not None
        assert float(frozen.group(1)) > 0


def test_nothing_is_frozen_when_the_setting_is_off(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, gc_freeze=False))):
        assert gc.get_freeze_count() == 0


def test_gc_freeze_is_on_by_default() -> None:
    assert Settings().gc_freeze is True


def test_every_collection_is_counted_by_generation_in_metrics(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path))) as client:
        before = _pauses(client)
        assert set(before) == {"0", "1", "2"}
        gc.collect()
        after = _pauses(client)
    assert after["2"] >= before["2"] + 1


def test_the_stats_file_records_collections_and_startup_heap(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    settings = _settings(tmp_path, gc_freeze=True, serve_stats_file=path)
    with TestClient(create_app(settings)) as client:
        assert not path.exists()  # written at shutdown
        gc.collect()
        assert client.get("/healthz").status_code == 200
    stats = json.loads(path.read_text())
    assert stats["gc_freeze"] is True
    assert stats["frozen"] > 0
    assert stats["tracked_after_startup"] > 0
    collections = stats["collections"]
    assert 2.0 in collections["generation"]
    lengths = {len(column) for column in collections.values()}
    assert len(lengths) == 1  # one row per collection
    assert all(seconds >= 0 for seconds in collections["cpu_s"])
    assert len(stats["lag"]["at"]) == len(stats["lag"]["seconds"])


# In a fresh interpreter: what the first job imports lazily is only absent there.
FIRST_STEP = """
import gc, sys
from pathlib import Path
import torch
from fastapi.testclient import TestClient
from app.main import create_app
from tests.conftest import make_settings

root = Path(sys.argv[1])
settings = make_settings(root, f"sqlite:///{root / 'auxsel.db'}", gc_freeze=True)
with TestClient(create_app(settings, run_worker=True)):
    gc.collect()
    before = len(gc.get_objects())
    weight = torch.zeros(3, requires_grad=True)
    weight.sum().backward()
    torch.optim.Adam([weight]).step()  # what every probe's training does first
    gc.collect()
    print(len(gc.get_objects()) - before)
"""


def test_the_first_optimizer_step_adds_little_to_what_collections_walk(tmp_path: Path) -> None:
    """torch's first optimizer step imports torch._dynamo and sympy (~120,000 objects);
    with the in-process worker they are imported before the freeze, so the first job
    does not leave them for every later full collection to walk."""
    out = subprocess.run(
        [sys.executable, "-c", FIRST_STEP, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_S,
        check=True,
    ).stdout
    assert int(out.strip().splitlines()[-1]) < 20_000
