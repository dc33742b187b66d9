"""A write is committed before its answer leaves the server: a client that polls the
moment it reads `202 Accepted` (the CLI, any script) must find its job, on any machine.

The request's session used to be committed by FastAPI's dependency clean-up, which
runs after the response has been sent; on a busy machine the client's next GET could
arrive first and read a 404. Here the check runs at the exact moment the response
starts, from a separate connection, so it does not depend on timing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.db.models import Dataset, Job
from app.db.session import make_engine, make_sessionmaker
from app.main import create_app
from app.settings import Settings
from tests.conftest import family_csv, job_spec

Message = dict[str, Any]


def _visible_at_response_start(settings: Settings, seen: list[tuple[str, int, int, int]]):
    """The app, wrapped: when a write's response starts, count (from another
    connection) the data sets and jobs a reader would find."""
    app = create_app(settings)
    reader = make_sessionmaker(make_engine(settings.resolved_database_url))

    async def wrapped(scope: Message, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] == "GET":
            await app(scope, receive, send)
            return

        async def watching_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                with reader() as session:
                    datasets = session.scalar(select(func.count()).select_from(Dataset))
                    jobs = session.scalar(select(func.count()).select_from(Job))
                seen.append((scope["path"], message["status"], datasets or 0, jobs or 0))
            await send(message)

        await app(scope, receive, watching_send)

    return wrapped, reader


def test_upload_and_submit_are_visible_when_their_answer_starts(settings):
    seen: list[tuple[str, int, int, int]] = []
    app, _reader = _visible_at_response_start(settings, seen)
    with TestClient(app) as client:
        upload = client.post("/api/v1/datasets", files={"file": ("f.csv", family_csv())})
        assert upload.status_code == 201, upload.text
        submit = client.post("/api/v1/jobs", json=job_spec(upload.json()["id"]))
        assert submit.status_code == 202, submit.text
    assert seen == [
        ("/api/v1/datasets", 201, 1, 0),
        ("/api/v1/jobs", 202, 1, 1),
    ]
