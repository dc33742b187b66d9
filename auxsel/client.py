"""The notebook client: the CLI's HTTP client (app/cli/client.py) with DataFrames in and
out. Every request goes through that client; this module only converts."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from app.cli import client as http
from app.cli.client import ApiError, JobJSON, RankingJSON
from app.jobs.status import JobStatus

__all__ = ["ApiError", "Client", "JobFailedError"]

SPEC_OPTIONS = frozenset({"name", "features", "method", "metric", "seed", "recipe", "budget"})
"""Job options given by keyword that belong at the top of the spec; any other keyword is
a budget option (``seeds=5``, ``epochs=30``, ``hidden=[32]``...)."""


class JobFailedError(Exception):
    """The job ended failed or canceled; ``job`` is its last state (with ``error``)."""

    def __init__(self, job: JobJSON) -> None:
        self.job = job
        error = job.get("error")
        parts = (error["reason"], error["detail"]) if error else ()
        reason = ": ".join(str(v) for v in parts if v)
        super().__init__(f"job {job['id']} {job['status']}" + (f" ({reason})" if reason else ""))


def _id(job: str | Mapping[str, Any]) -> str:
    """A job or data set given as its id or as the API's JSON for it."""
    return job if isinstance(job, str) else str(job["id"])


def _task(task: str | Mapping[str, Any]) -> str | dict[str, Any]:
    return task if isinstance(task, str) else dict(task)


class Client:
    """A client of an auxsel server, for notebooks: upload a DataFrame, submit a job,
    wait with a progress bar, read the ranking and the probe runs as DataFrames.

    ``url`` and ``api_key`` default to AUXSEL_URL and AUXSEL_API_KEY (as for the CLI).
    An error answer of the server raises :class:`ApiError`, whose ``problem`` is the
    problem+json it sent (``title``, ``detail``, ``errors`` by field)."""

    def __init__(
        self, url: str | None = None, api_key: str | None = None, timeout: float = 60.0
    ) -> None:
        settings = http.ClientSettings()
        self.url = (url or settings.url).rstrip("/")
        key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
        self.api = http.Client(self.url, key, timeout=timeout)

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"auxsel.Client({self.url!r})"

    def upload(self, data: pd.DataFrame | str | PathLike[str], name: str | None = None) -> str:
        """Upload a DataFrame (sent as Parquet) or a CSV / Parquet file; returns the data
        set's id. The same bytes uploaded again return the data set already stored."""
        if isinstance(data, pd.DataFrame):
            buffer = io.BytesIO()
            data.to_parquet(buffer, index=False)
            filename = f"{name or 'dataframe'}.parquet"
            dataset = self.api.upload_bytes(
                buffer.getvalue(), filename, name, content_type="application/vnd.apache.parquet"
            )
        else:
            dataset = self.api.upload(Path(data), name)
        return dataset["id"]

    def submit(
        self,
        dataset: str | pd.DataFrame | PathLike[str],
        main_task: str | Mapping[str, Any],
        candidates: Iterable[str | Mapping[str, Any]],
        **options: Any,
    ) -> str:
        """Submit a job; returns its id. ``dataset`` is a data set id, or a DataFrame or
        file to upload first. Tasks are column names or dicts (``{"column": "tickets",
        "kind": "regression"}``). ``options`` are the spec's (``name``, ``features``,
        ``method``, ``metric``, ``seed``, ``recipe``) or budget options (``seeds``,
        ``epochs``, ``hidden``, ...; or all of them as ``budget={...}``)."""
        if isinstance(dataset, str) and dataset.startswith("ds_"):
            dataset_id = dataset
        else:
            dataset_id = self.upload(dataset)
        budget = dict(options.pop("budget", None) or {})
        budget.update({k: v for k, v in options.items() if k not in SPEC_OPTIONS})
        spec: dict[str, object] = {
            "dataset_id": dataset_id,
            "main_task": _task(main_task),
            "candidates": [_task(c) for c in candidates],
            **{k: v for k, v in options.items() if k in SPEC_OPTIONS},
            "budget": budget,
        }
        return self.api.submit(spec)["id"]

    def status(self, job: str | Mapping[str, Any]) -> JobJSON:
        """The job as the API answers it: status, progress, spec, error..."""
        return self.api.job(_id(job))

    def wait(
        self,
        job: str | Mapping[str, Any],
        progress: bool = True,
        poll_s: float = 0.5,
        timeout_s: float | None = None,
    ) -> JobJSON:
        """Wait until the job ends (with a progress bar unless ``progress=False``);
        returns its last state, or raises :class:`JobFailedError` if it failed or was
        canceled. Interrupting the wait leaves the job running on the server."""
        job_id = _id(job)
        if progress and timeout_s is None:
            from app.cli.views import follow

            final = follow(self.api, job_id, on=Console(), poll_s=poll_s)
        else:
            final = self.api.wait(job_id, poll_s=poll_s, timeout_s=timeout_s)
        if final["status"] != JobStatus.SUCCEEDED:
            raise JobFailedError(final)
        return final

    def ranking_json(self, job: str | Mapping[str, Any]) -> RankingJSON:
        """The ranking as the API answers it (baseline, recipe, candidates...)."""
        return self.api.ranking(_id(job))

    def ranking(self, job: str | Mapping[str, Any]) -> pd.DataFrame:
        """The job's candidates, best first: one row each with the API's fields (rank,
        name, gain, ci_low, ci_high, q_value, verdict, ...). ``attrs`` hold the rest of
        the ranking: job_id, metric, baseline, recipe_text, estimand."""
        result = self.ranking_json(job)
        frame = pd.DataFrame.from_records(result["candidates"])
        frame.attrs.update({k: v for k, v in result.items() if k != "candidates"})
        return frame

    def runs(self, job: str | Mapping[str, Any]) -> pd.DataFrame:
        """The job's probe runs: key, replicate, candidates, best_epoch, epochs, error,
        curve, then one column per metric (at the best epoch)."""
        result = self.api.runs(_id(job))
        rows = [
            {k: v for k, v in run.items() if k != "metrics"} | dict(run["metrics"])
            for run in result["items"]
        ]
        frame = pd.DataFrame.from_records(rows)
        frame.attrs.update({"job_id": result["job_id"], "metric": result["metric"]})
        return frame

    def cancel(self, job: str | Mapping[str, Any]) -> JobJSON:
        """Cancel a job: a queued one at once, a running one at its next training step."""
        return self.api.cancel(_id(job))

    def compare(
        self, job_a: str | Mapping[str, Any], job_b: str | Mapping[str, Any]
    ) -> pd.DataFrame:
        """Two finished jobs' rankings side by side: one row per candidate with its rank,
        gain and verdict in each (``_a``, ``_b``) and what changed."""
        result = self.api.compare(_id(job_a), _id(job_b))
        rows = []
        for row in result["candidates"]:
            flat: dict[str, object] = {"name": row["name"]}
            for side in ("a", "b"):
                values = row[side]
                for key in ("rank", "gain", "ci_low", "ci_high", "verdict"):
                    flat[f"{key}_{side}"] = values[key] if values else None
            flat.update(
                rank_change=row["rank_change"],
                gain_difference=row["gain_difference"],
                verdict_changed=row["verdict_changed"],
            )
            rows.append(flat)
        frame = pd.DataFrame.from_records(rows)
        frame.attrs.update({k: v for k, v in result.items() if k != "candidates"})
        return frame
