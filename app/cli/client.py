"""A small HTTP client of the auxsel API (httpx), used by the CLI and the demo, and the
client's own settings (which server, which key)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


class ApiError(Exception):
    """An error answer of the API, with its problem details."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
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

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:500]}
            raise ApiError(response.status_code, problem)
        return response.json()

    def upload(self, path: Path, name: str | None = None) -> dict[str, Any]:
        with path.open("rb") as f:
            files = {"file": (path.name, f, "application/octet-stream")}
            data = {"name": name} if name else None
            return dict(self._json(self.http.post("/api/v1/datasets", files=files, data=data)))

    def upload_bytes(
        self, content: bytes, filename: str, name: str | None = None
    ) -> dict[str, Any]:
        files = {"file": (filename, content, "text/csv")}
        data = {"name": name} if name else None
        return dict(self._json(self.http.post("/api/v1/datasets", files=files, data=data)))

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        return dict(self._json(self.http.get(f"/api/v1/datasets/{dataset_id}")))

    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return dict(self._json(self.http.post("/api/v1/jobs", json=spec, headers=headers)))

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self._json(self.http.get(f"/api/v1/jobs/{job_id}")))

    def jobs(self, status: str | None = None, page_size: int = 50) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"page_size": page_size}
        if status:
            params["status"] = status
        return list(self._json(self.http.get("/api/v1/jobs", params=params))["items"])

    def ranking(self, job_id: str) -> dict[str, Any]:
        return dict(self._json(self.http.get(f"/api/v1/jobs/{job_id}/ranking")))

    def ranking_csv(self, job_id: str) -> str:
        response = self.http.get(f"/api/v1/jobs/{job_id}/ranking", params={"format": "csv"})
        if response.status_code >= 400:
            self._json(response)
        return response.text

    def runs(self, job_id: str) -> dict[str, Any]:
        return dict(self._json(self.http.get(f"/api/v1/jobs/{job_id}/runs")))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return dict(self._json(self.http.post(f"/api/v1/jobs/{job_id}/cancel")))

    def wait(
        self,
        job_id: str,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
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
