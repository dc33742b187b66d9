"""Prometheus metrics.

Two kinds of series, because workers are separate processes:

* **Process series**, counted where the work happens: HTTP requests (API), probe runs
  completed, chunk durations, lease heartbeats and finished jobs (worker). The API's
  ``/metrics`` shows its own process (and the in-process worker of ``auxsel serve``);
  a standalone ``auxsel worker`` serves its own on ``AUXSEL_METRICS_PORT``.
* **Database series**, read from the database at scrape time by the API: jobs by
  status, queue depth, running jobs' heartbeat age and the workers holding jobs. They
  are the same on every API replica (aggregate them with ``max``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.models import utcnow
from app.db.repositories import jobs as repo
from app.jobs.status import JobStatus

log = logging.getLogger("auxsel.metrics")

JOB_STATUSES = tuple(JobStatus)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# --- process series (one set per process, in the default registry) -------------------

HTTP_REQUESTS = Counter(
    "auxsel_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "auxsel_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PROBE_RUNS = Counter(
    "auxsel_probe_runs_completed",
    "Probe runs trained and committed by this process's worker.",
)
CHUNK_DURATION = Histogram(
    "auxsel_chunk_duration_seconds",
    "Time to train one chunk (shard) of probes, by executor.",
    ["executor"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
CHUNK_PROBES = Counter(
    "auxsel_chunk_probes",
    "Probes trained in chunks, by executor (divide by auxsel_chunk_duration_seconds_sum "
    "for probes per second).",
    ["executor"],
)
SHARD_RETRIES = Counter(
    "auxsel_ray_shard_resubmits",
    "Ray shards resubmitted after their Ray worker or node was lost.",
)
HEARTBEATS = Counter(
    "auxsel_worker_heartbeats",
    "Lease renewals (heartbeats) this process's worker has written.",
)
LAST_HEARTBEAT = Gauge(
    "auxsel_worker_last_heartbeat_timestamp_seconds",
    "Unix time of this process's worker's last heartbeat or queue poll.",
)
JOBS_FINISHED = Counter(
    "auxsel_worker_jobs_finished",
    "Jobs this process's worker ended, by outcome.",
    ["status"],
)


def record_chunk(executor: str, probes: int, seconds: float) -> None:
    CHUNK_DURATION.labels(executor).observe(seconds)
    CHUNK_PROBES.labels(executor).inc(probes)


def record_stored(runs: int) -> None:
    PROBE_RUNS.inc(runs)


def record_heartbeat() -> None:
    HEARTBEATS.inc()
    LAST_HEARTBEAT.set(time.time())


def record_alive() -> None:
    LAST_HEARTBEAT.set(time.time())


def record_finished(status: str) -> None:
    JOBS_FINISHED.labels(status).inc()


# --- database series (read at scrape time) --------------------------------------------


class DatabaseCollector(Collector):
    """Jobs by status, queue depth, heartbeat age of running jobs, busy workers: read
    from the database whenever Prometheus scrapes. ``auxsel_database_up`` is 0 (and the
    other series are left out) when the database does not answer."""

    def __init__(self, sessions: Callable[[], sessionmaker[Session] | None]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("auxsel_database_up", "1 if the database answered this scrape.")
        factory = self.sessions()
        if factory is None:
            up.add_metric([], 0)
            yield up
            return
        try:
            with factory() as session:
                counts = repo.count_by_status(session)
                running = repo.running_heartbeats(session)
        except Exception as exc:
            log.warning("metrics: database unreachable: %s", exc.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("auxsel_jobs", "Jobs by status.", labels=["status"])
        for status in sorted({*JOB_STATUSES, *counts}):
            jobs.add_metric([status], counts.get(status, 0))
        yield jobs
        yield GaugeMetricFamily(
            "auxsel_queue_depth",
            "Jobs waiting for a worker.",
            value=counts.get(JobStatus.QUEUED, 0),
        )
        now = utcnow()
        ages = [_age(now, beat) for _, beat in running if beat is not None]
        yield GaugeMetricFamily(
            "auxsel_running_jobs_heartbeat_age_max_seconds",
            "Seconds since the stalest heartbeat of a running job (0 when none run); a "
            "value past AUXSEL_LEASE_S means a worker died and the reaper will re-queue.",
            value=max(ages, default=0.0),
        )
        yield GaugeMetricFamily(
            "auxsel_workers_busy",
            "Distinct workers holding a running job.",
            value=len({w for w, _ in running if w}),
        )


def _age(now: datetime, then: datetime) -> float:
    return max(0.0, (now - then).total_seconds())


# --- wiring ---------------------------------------------------------------------------


class RequestMetrics:
    """ASGI middleware: count and time each HTTP request by method, route template (the
    path as declared, e.g. ``/api/v1/jobs/{job_id}``) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Bounded: methods are a fixed set, routes the app's templates, statuses HTTP's.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router stores the matched route in the scope; unmatched paths share one
            # label so that scanners cannot grow the series without bound.
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            labels = (method, route, status)
            series = self._series.get(labels)
            if series is None:  # a child per label set, found once (under a lock) each
                named = (method, route, str(status))
                series = self._series[labels] = (
                    HTTP_REQUESTS.labels(*named),
                    HTTP_LATENCY.labels(*named),
                )
            series[0].inc()
            series[1].observe(time.perf_counter() - start)


def install(app: FastAPI) -> None:
    """Count every HTTP request by its route template and serve ``GET /metrics``."""
    database = CollectorRegistry(auto_describe=False)
    database.register(DatabaseCollector(lambda: getattr(app.state, "sessions", None)))

    app.add_middleware(RequestMetrics)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        """Prometheus text format: this process's series, then the database's."""
        body = generate_latest(REGISTRY) + generate_latest(database)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def serve_worker_metrics(host: str, port: int) -> None:
    """A standalone worker's own /metrics (process series) on ``host:port``."""
    start_http_server(port, addr=host)
    log.info("serving worker metrics on http://%s:%d/metrics", host, port)
