"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import text

from app.api.schemas import Health
from app.errors import ProblemError

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"description": "Not ready"}})
def readyz(request: Request) -> Health:
    """The database answers; otherwise 503."""
    try:
        with request.app.state.sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception as exc:
        raise ProblemError(
            503, "Not ready", "The database is unreachable.", type_="not-ready"
        ) from exc
    return Health(status="ok", database="ok")
