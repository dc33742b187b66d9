"""Garbage collection in an API process (issue 16): the startup heap frozen out of
later collections, every collection's pause counted, and an opt-in record of pauses and
event-loop lag for benchmarks.

An API process imports torch, pandas, numpy and SQLAlchemy: about 340,000 tracked
objects that live as long as the process. A full (generation 2) collection walks all of
them, about 0.25 s of CPU on the 2-core build machine, and the event loop answers
nothing meanwhile (the collecting thread holds the GIL). ``gc.freeze()`` after startup
moves them to the permanent generation, so later collections walk only what requests
and the worker allocated since. The price: frozen objects that later become cyclic
garbage are never collected (freed by reference counting they still are) — startup
objects, so a bounded amount.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import json
import logging
import os
import threading
import time
from array import array
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from app.settings import Settings

log = logging.getLogger("auxsel.gc")

GENERATIONS = (0, 1, 2)
# CPU seconds; a gen-0 collection takes microseconds, a full one of an unfrozen API
# process a quarter of a second.
PAUSE_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# The opt-in record keeps at most this many collections and lag samples (~50 MB).
MAX_EVENTS = 1_000_000
LAG_INTERVAL_S = 0.01


class PauseCounts(Collector):
    """``auxsel_gc_pause_seconds``: a histogram of each collection's CPU time by
    generation, and ``auxsel_gc_frozen_objects``. Counted in plain lists, not with
    prometheus_client's metric objects: their locks are not re-entrant, and a gc
    callback can run in the middle of any allocation, in any thread."""

    def __init__(self) -> None:
        self.buckets = [[0] * (len(PAUSE_BUCKETS) + 1) for _ in GENERATIONS]
        self.sums = [0.0 for _ in GENERATIONS]
        self._cpu_start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        # One collection runs at a time in a process, so one start slot suffices.
        if phase == "start":
            self._cpu_start = time.thread_time()
            return
        seconds = time.thread_time() - self._cpu_start
        generation = info["generation"]
        self.buckets[generation][bisect.bisect_left(PAUSE_BUCKETS, seconds)] += 1
        self.sums[generation] += seconds

    def collect(self) -> Iterable[Metric]:
        pauses = HistogramMetricFamily(
            "auxsel_gc_pause_seconds",
            "CPU time of each garbage collection in this process, by generation: the "
            "thread that ran it held the GIL throughout, so the event loop answered "
            "nothing meanwhile.",
            labels=["generation"],
        )
        for generation in GENERATIONS:
            counts = self.buckets[generation]
            cumulative, running = [], 0
            for bound, count in zip((*PAUSE_BUCKETS, float("inf")), counts, strict=True):
                running += count
                cumulative.append((_bound(bound), running))
            pauses.add_metric([str(generation)], cumulative, self.sums[generation])
        yield pauses
        yield GaugeMetricFamily(
            "auxsel_gc_frozen_objects",
            "Objects in the permanent generation (gc.freeze after startup, "
            "AUXSEL_GC_FREEZE): no collection walks them.",
            value=gc.get_freeze_count(),
        )


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


PAUSES = PauseCounts()
_installed = threading.Lock()


def count_pauses() -> None:
    """Count every collection of this process from now on (once per process)."""
    with _installed:
        if PAUSES not in gc.callbacks:
            gc.callbacks.append(PAUSES)
            with contextlib.suppress(ValueError):  # already registered by an earlier app
                REGISTRY.register(PAUSES)


class Recorder:
    """Each collection (monotonic start, generation, objects collected, CPU and wall
    seconds, whether the event loop's thread ran it) and the event loop's lag every
    10 ms, for AUXSEL_SERVE_STATS_FILE. Monotonic time is the machine's, so a benchmark
    in another process can pick the samples of its own load window."""

    def __init__(self) -> None:
        self.loop_thread = threading.get_ident()
        self.columns = {
            name: array("d")
            for name in ("start", "generation", "collected", "cpu_s", "wall_s", "on_loop")
        }
        self.lag_at = array("d")
        self.lag_s = array("d")
        self._cpu = self._wall = self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.monotonic()
            self._wall = time.perf_counter()
            self._cpu = time.thread_time()
            return
        cpu = time.thread_time() - self._cpu
        if len(self.columns["start"]) >= MAX_EVENTS:
            return
        row = (
            self._start,
            info["generation"],
            info["collected"],
            cpu,
            time.perf_counter() - self._wall,
            threading.get_ident() == self.loop_thread,
        )
        for column, value in zip(self.columns.values(), row, strict=True):
            column.append(float(value))

    async def sample_lag(self) -> None:
        """How late a 10 ms sleep wakes up: what any request waiting on the loop waited
        on top of its own work (a GC pause, another thread holding the GIL, the OS)."""
        while True:
            due = time.monotonic() + LAG_INTERVAL_S
            await asyncio.sleep(LAG_INTERVAL_S)
            if len(self.lag_at) < MAX_EVENTS:
                self.lag_at.append(due)
                self.lag_s.append(time.monotonic() - due)

    def write(self, path: Path, startup: dict[str, object]) -> None:
        data = {
            **startup,
            "pid": os.getpid(),
            "collections": {name: list(values) for name, values in self.columns.items()},
            "lag": {"at": list(self.lag_at), "seconds": list(self.lag_s)},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))


def stats_path(settings: Settings) -> Path | None:
    """Where this process writes AUXSEL_SERVE_STATS_FILE: one file per API process when
    `auxsel serve --workers N` runs several."""
    path = settings.serve_stats_file
    if path is None or settings.serve_workers <= 1:
        return path
    return path.with_name(f"{path.stem}.{os.getpid()}{path.suffix}")


@asynccontextmanager
async def watch(settings: Settings) -> AsyncIterator[None]:
    """Around an API process's serving, after its startup: freeze the startup heap
    (AUXSEL_GC_FREEZE), count every collection's pause, and with
    AUXSEL_SERVE_STATS_FILE record pauses and event-loop lag until shutdown."""
    count_pauses()
    path = stats_path(settings)
    startup: dict[str, object] = {}
    if path is not None:  # counted before freezing: get_objects skips frozen ones
        gc.collect()
        startup["tracked_after_startup"] = len(gc.get_objects())
    if settings.gc_freeze:
        gc.collect()  # what startup left as garbage is freed, not frozen
        gc.freeze()
        log.debug("froze %d objects of the startup heap", gc.get_freeze_count())
    if path is None:
        yield
        return
    startup |= {"gc_freeze": settings.gc_freeze, "frozen": gc.get_freeze_count()}
    recorder = Recorder()
    gc.callbacks.append(recorder)
    sampler = asyncio.create_task(recorder.sample_lag())
    try:
        yield
    finally:
        sampler.cancel()
        gc.callbacks.remove(recorder)
        try:
            recorder.write(path, startup)
        except OSError as exc:
            log.warning("could not write AUXSEL_SERVE_STATS_FILE %s: %s", path, exc)
