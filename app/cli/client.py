"""A small HTTP client of the auxsel API (httpx), used by the CLI and the demo, and the
client's own settings (which server, which key)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NotRequired, TypedDict, cast

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.jobs.status import FINISHED


class ClientSettings(BaseSettings):
    """What only the client commands need (submit, status, ranking, jobs): the server and
    the key to use, from AUXSEL_URL and AUXSEL_API_KEY (--url / --api-key override)."""

    model_config = SettingsConfigDict(env_prefix="AUXSEL_", extra="ignore")

    url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None


# The API's JSON answers, as far as the CLI reads them (app/api/schemas.py has them all;
# timestamps arrive as ISO strings). The client trusts the server for their shape.


class FieldError(TypedDict, total=False):
    field: str
    message: str


class Problem(TypedDict, total=False):
    """An error answer (RFC 9457 problem details)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError]


class Progress(TypedDict):
    done: int
    total: int
    fraction: float


class JobError(TypedDict):
    reason: str
    detail: str | None


class JobJSON(TypedDict):
    id: str
    name: str
    status: str
    progress: Progress
    created_at: str
    started_at: str | None
    finished_at: str | None
    error: JobError | None


class DatasetJSON(TypedDict):
    id: str
    name: str
    rows: int
    columns: int
    size_bytes: int
    sha256: str
    created_at: str
    # Set by Client.upload: the server already had these bytes from this owner (200),
    # and answered with that data set instead of storing a copy.
    reused: NotRequired[bool]


class ProbeRunJSON(TypedDict):
    key: str
    replicate: int
    candidates: list[str]
    metrics: dict[str, float | None]
    curve: list[float | None]
    best_epoch: int
    epochs: int
    error: str | None


class RunsJSON(TypedDict):
    job_id: str
    metric: str
    items: list[ProbeRunJSON]


class SideJSON(TypedDict):
    rank: int
    gain: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str


class CandidateComparisonJSON(TypedDict):
    name: str
    a: SideJSON | None
    b: SideJSON | None
    rank_change: int | None
    gain_difference: float | None
    verdict_changed: bool | None


class ComparedJobJSON(TypedDict):
    job_id: str
    name: str
    metric: str
    recipe_text: str


class ComparisonJSON(TypedDict):
    a: ComparedJobJSON
    b: ComparedJobJSON
    notes: list[str]
    candidates: list[CandidateComparisonJSON]
    only_in_a: list[str]
    only_in_b: list[str]


class CoverageJSON(TypedDict):
    labelled: int
    share: float
    train_labelled: float
    train_overlap: float
    main_train: int
    note: str | None


class CandidateJSON(TypedDict):
    rank: int
    name: str
    gain: float | None
    ci_low: float | None
    ci_high: float | None
    q_value: float | None
    verdict: str
    coverage: NotRequired[CoverageJSON | None]  # absent from a server from before coverage
    fraction_summary: NotRequired[str | None]  # absent from a server from before shares


class RankingJSON(TypedDict):
    metric: str
    baseline: dict[str, float | int | None]
    candidates: list[CandidateJSON]
    recipe_text: NotRequired[str]  # absent from a server from before recipes
    estimand: NotRequired[str]
    provisional: NotRequired[bool]  # absent from a server from before provisional rankings
    replicates: NotRequired[int]
    next_steps: NotRequired[list[str]]


class ApiError(Exception):
    """An error answer of the API, with its problem details."""

    def __init__(self, status: int, problem: Problem) -> None:
        self.status = status
        self.problem = problem
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        fields = "; ".join(
            f"{e.get('field')}: {e.get('message')}" for e in problem.get("errors", [])[:5]
        )
        super().__init__(f"{detail}" + (f" [{fields}]" if fields else ""))


class Client:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _json(self, response: httpx.Response) -> object:
        if response.status_code >= 400:
            try:
                problem = cast(Problem, response.json())
            except ValueError:
                problem = {"detail": response.text[:500]}
            raise ApiError(response.status_code, problem)
        return response.json()

    def _upload(self, file: tuple[str, object, str], name: str | None) -> DatasetJSON:
        data = {"name": name} if name else None
        response = self.http.post("/api/v1/datasets", files={"file": file}, data=data)  # type: ignore[dict-item]
        dataset = cast(DatasetJSON, self._json(response))
        dataset["reused"] = response.status_code == 200  # the same bytes were stored before
        return dataset

    def upload(self, path: Path, name: str | None = None) -> DatasetJSON:
        """Upload a CSV or Parquet file; the same bytes again return the data set
        already stored (``reused``)."""
        with path.open("rb") as f:
            return self._upload((path.name, f, "application/octet-stream"), name)

    def upload_bytes(
        self,
        content: bytes,
        filename: str,
        name: str | None = None,
        content_type: str = "text/csv",
    ) -> DatasetJSON:
        return self._upload((filename, content, content_type), name)

    def datasets(self, page_size: int = 50) -> list[DatasetJSON]:
        """The newest data sets (summaries, without column profiles)."""
        params = {"page_size": page_size}
        page = cast(
            dict[str, list[DatasetJSON]],
            self._json(self.http.get("/api/v1/datasets", params=params)),
        )
        return list(page["items"])

    def dataset(self, dataset_id: str) -> DatasetJSON:
        return cast(DatasetJSON, self._json(self.http.get(f"/api/v1/datasets/{dataset_id}")))

    def submit(self, spec: Mapping[str, object], idempotency_key: str | None = None) -> JobJSON:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return cast(JobJSON, self._json(self.http.post("/api/v1/jobs", json=spec, headers=headers)))

    def job(self, job_id: str) -> JobJSON:
        return cast(JobJSON, self._json(self.http.get(f"/api/v1/jobs/{job_id}")))

    def jobs(self, status: str | None = None, page_size: int = 50) -> list[JobJSON]:
        params: dict[str, str | int] = {"page_size": page_size}
        if status:
            params["status"] = status
        page = cast(
            dict[str, list[JobJSON]], self._json(self.http.get("/api/v1/jobs", params=params))
        )
        return list(page["items"])

    def ranking(self, job_id: str) -> RankingJSON:
        return cast(RankingJSON, self._json(self.http.get(f"/api/v1/jobs/{job_id}/ranking")))

    def ranking_csv(self, job_id: str) -> str:
        response = self.http.get(f"/api/v1/jobs/{job_id}/ranking", params={"format": "csv"})
        if response.status_code >= 400:
            self._json(response)
        return response.text

    def runs(self, job_id: str) -> RunsJSON:
        return cast(RunsJSON, self._json(self.http.get(f"/api/v1/jobs/{job_id}/runs")))

    def compare(self, job_a: str, job_b: str) -> ComparisonJSON:
        params = {"a": job_a, "b": job_b}
        return cast(
            ComparisonJSON, self._json(self.http.get("/api/v1/jobs/compare", params=params))
        )

    def cancel(self, job_id: str) -> JobJSON:
        return cast(JobJSON, self._json(self.http.post(f"/api/v1/jobs/{job_id}/cancel")))

    def wait(
        self,
        job_id: str,
        on_update: Callable[[JobJSON], None] | None = None,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> JobJSON:
        """Poll until the job ends; returns its last state."""
        start = time.monotonic()
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in FINISHED:
                return job
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout_s} s")
            time.sleep(poll_s)
