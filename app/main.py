"""The FastAPI application factory."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import dashboard, gcwatch, metrics
from app.api import poll
from app.api.openapi import install_openapi
from app.api.routes import datasets, health, jobs
from app.data.storage import make_storage
from app.db import migrate
from app.db.session import make_engine, make_sessionmaker
from app.errors import install_handlers
from app.security.auth import auth_enabled
from app.security.guard import SecurityGuard
from app.services.datasets import sweep_orphans
from app.settings import Settings, get_settings

log = logging.getLogger("auxsel.app")


def create_app(settings: Settings | None = None, *, run_worker: bool = False) -> FastAPI:
    """Build the app. ``run_worker`` starts the in-process worker (``auxsel serve``)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        migrate.upgrade(settings.resolved_database_url)
        engine = make_engine(settings.resolved_database_url)
        sessions = make_sessionmaker(engine)
        storage = make_storage(settings.uploads_dir)
        app.state.settings = settings
        app.state.sessions = sessions
        app.state.storage = storage
        if auth_enabled(settings):
            log.info(
                "API keys are required (AUXSEL_AUTH=%s, host %s)", settings.auth, settings.host
            )
        else:
            log.warning(
                "API keys are off: listening on %s (loopback), requests need no key. "
                "Set AUXSEL_AUTH=on to require them.",
                settings.host,
            )
        with sessions() as session:
            removed = sweep_orphans(session, storage)
        if removed:
            log.info("removed %d orphaned upload file(s)", removed)
        worker = thread = None
        try:
            if run_worker:  # imported (torch with it) before the startup heap is frozen
                from app.jobs.worker import start_in_process, warm_up_torch

                if settings.gc_freeze:
                    warm_up_torch()
            async with gcwatch.watch(settings):
                if run_worker:
                    worker, thread = start_in_process(settings, sessions, storage)
                app.state.worker = worker
                yield
        finally:
            if worker is not None and isinstance(thread, threading.Thread):
                worker.stop()
                thread.join(timeout=30)
            engine.dispose()

    app = FastAPI(
        title="auxsel",
        version="0.1.0",
        summary="Which auxiliary tasks help your main task? Paired multi-task probes "
        "with confidence intervals.",
        lifespan=lifespan,
        # /openapi.json and /docs are served by app/dashboard/docs.py (AUXSEL_DOCS).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    install_handlers(app)
    # One pass before routing (app/security/guard.py): public URL, origin checks, no NUL
    # in the URL, API writes authenticated before their body is read, every body capped
    # by what its route accepts while it streams, a stalled body timed out, security
    # headers on every answer.
    # Inside the guard and the metrics: the status poll answered before routing.
    poll.install(app, jobs.router)
    app.add_middleware(SecurityGuard, settings=settings)
    install_openapi(app)
    # Outermost: every answer is counted, the guard's refusals included.
    metrics.install(app)
    app.include_router(health.router)
    app.include_router(datasets.router)
    app.include_router(jobs.router)
    dashboard.mount(app)
    return app
