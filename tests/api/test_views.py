"""The response shapes are written once (app/jobs/views.py, app/api/schemas.py) and the
code that answers builds them. The status poll builds its view unvalidated
(model_construct, for speed): it must render the same bytes as the validated view."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from pydantic_core import to_json
from starlette.requests import Request

from app.api import schemas
from app.jobs import views
from app.jobs.spec import JOB_EXAMPLE, JobSpec
from app.services.jobs import job_view

REQUEST = Request(
    {
        "type": "http",
        "scheme": "http",
        "server": ("testserver", 80),
        "path": "/",
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }
)


def _row(**overrides: object) -> SimpleNamespace:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    spec = JobSpec.model_validate({**JOB_EXAMPLE, "dataset_id": "ds_x"}).model_dump(mode="json")
    values: dict[str, object] = {
        "id": "job_x",
        "name": "n",
        "dataset_id": "ds_x",
        "status": "running",
        "progress_total": 100,
        "progress_done": 40,
        "attempt": 1,
        "cancel_requested": False,
        "created_at": now,
        "started_at": now,
        "finished_at": None,
        "heartbeat_at": now,
        "error_reason": None,
        "error_detail": None,
        "spec": spec,
        "estimate": {
            "flops": 1.5e9,
            "memory_mb": 10.0,
            "probe_epochs": 100,
            "probe_memory_mb": 1.0,
            "data_memory_mb": 2.0,
        },
        "inputs": ["age", "income"],
        "tags": ["baseline"],
        "note": "a note",
        **overrides,
    }
    return SimpleNamespace(**values)


def test_the_poll_renders_the_validated_view():
    for row in (
        _row(),
        _row(status="failed", error_reason="worker_lost", error_detail="x", estimate=None),
        _row(inputs=None),
        _row(tags=None, note=None),  # stored before tags and notes
        _row(progress_total=0, progress_done=0, finished_at=datetime(2026, 1, 2, tzinfo=UTC)),
    ):
        checked = job_view(row, REQUEST)
        assert isinstance(checked.spec, JobSpec)
        assert to_json(job_view(row, REQUEST, validate=False)) == to_json(checked)


def test_the_api_names_the_job_shapes_it_builds():
    for name in ("JobOut", "Progress", "RankingOut", "CandidateOut", "ProbeRunList"):
        assert getattr(schemas, name) is getattr(views, name)
