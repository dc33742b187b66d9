"""The dashboard: server-rendered pages at ``/`` over the same services as the API,
with a little JavaScript for live progress, the submit form and the charts."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.dashboard import docs, signin
from app.dashboard.routes import router

STATIC = Path(__file__).parent / "static"


def mount(app: FastAPI) -> None:
    """Add the pages and the API docs (kept out of the OpenAPI schema) and their
    static files."""
    app.include_router(router)
    app.include_router(signin.router)
    app.include_router(docs.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
