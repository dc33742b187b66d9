"""The typed views (TypedDicts the handlers return) name the same fields as the response
models FastAPI checks them against, so that neither drifts from the other."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from app.api import schemas
from app.api.routes import datasets
from app.jobs import results
from app.services import jobs

PAIRS: list[tuple[type, type[BaseModel]]] = [
    (jobs.JobView, schemas.JobOut),
    (jobs.Progress, schemas.Progress),
    (datasets.SummaryView, schemas.DatasetSummary),
    (datasets.DatasetView, schemas.DatasetOut),
    (results.CandidateView, schemas.CandidateOut),
    (results.RankingView, schemas.RankingOut),
    (results.RunView, schemas.ProbeRunOut),
    (results.RunsView, schemas.ProbeRunList),
]


@pytest.mark.parametrize(("view", "model"), PAIRS, ids=lambda t: t.__name__)
def test_a_view_has_its_response_models_fields(view: type, model: type[BaseModel]) -> None:
    keys = set(view.__required_keys__) | set(view.__optional_keys__)
    assert keys == set(model.model_fields)
