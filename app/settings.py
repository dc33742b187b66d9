"""The server's configuration, from ``AUXSEL_*`` environment variables (one settings object;
the CLI client's own two, server URL and API key, are ClientSettings in app/cli/client.py)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """auxsel's settings. Every limit a user can hit is here, named in its error."""

    model_config = SettingsConfigDict(env_prefix="AUXSEL_", extra="ignore")

    # Where the embedded default keeps its database and uploaded files.
    data_dir: Path = Field(default=Path(".auxsel"))
    # Defaults to SQLite under data_dir; postgresql+psycopg://... in production.
    database_url: str | None = None
    # Uploaded files: a local directory by default (file:// URL or a path).
    storage_url: str | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    # API keys: "auto" turns them on whenever host is not a loopback address.
    auth: Literal["auto", "on", "off"] = "auto"
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    # Ray executor (docs/deploy.md): resources of one shard (one chunk of probes) and
    # how often a shard lost with its Ray worker or node is tried again.
    ray_num_cpus: float = 1.0
    ray_num_gpus: float = 0.0
    ray_max_retries: int = 3
    ray_resubmits: int = 2
    device: str = "cpu"
    log_level: str = "INFO"
    # "text" for people, "json" (one object per line) for log collectors.
    log_format: Literal["text", "json"] = "text"
    # A standalone worker serves its own Prometheus metrics here (0 = off).
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    # Torch threads of a worker; 0 = all cores (one core is left to the API when the
    # worker runs inside `auxsel serve`).
    torch_threads: int = 0

    # Durable jobs.
    heartbeat_s: float = 10.0
    lease_s: float = 60.0
    max_attempts: int = 3
    poll_s: float = 1.0
    progress_interval_s: float = 1.0
    # Probes trained together in one chunk; results are committed per chunk. A chunk
    # holds whole replicates, as few as give it at least ``chunk_min_probes`` probes,
    # so a job with many candidates stores (shows, keeps after a cancel) its runs
    # replicate by replicate instead of only when a whole round ends, while a job with
    # few keeps batches big enough to train at full speed (docs/reliability.md).
    chunk_probes: int = 128
    chunk_min_probes: int = 32
    memory_mb: float = 2048.0

    # Limits (each exceeded limit is a 422 that names the setting).
    max_upload_mb: float = 200.0
    max_rows: int = 1_000_000
    max_columns: int = 2_000
    max_candidates: int = 500
    max_seeds: int = 50
    max_epochs: int = 1_000
    max_hidden_width: int = 4_096
    max_hidden_layers: int = 8
    # Total probe-epochs of a job: seeds x epochs x (candidates + 1).
    max_probe_epochs: int = 2_000_000

    # The client side (which server, which key: AUXSEL_URL, AUXSEL_API_KEY) has its own
    # settings, app/cli/client.py ClientSettings.
    # Per-owner rate limits (per minute, per API replica; 0 = off). See app/security/ratelimit.py.
    rate_submit_per_min: float = 120.0
    rate_upload_per_min: float = 60.0

    page_size_default: int = 20
    page_size_max: int = 100
    retry_after_s: int = 2

    # Fairness, quotas and cost (docs/security.md, "Round 2: fairness, quotas and
    # cost"); 0 turns a limit off. Per owner: jobs queued at once (a submission over it
    # is a 429) and jobs running at once (a worker claims another owner's job instead).
    max_queued_jobs_per_owner: int = 200
    max_running_jobs_per_owner: int = 4
    # A job's estimated cost (engine.estimate_cost), checked at submission (422): its
    # floating-point operations and its peak memory (the training data plus the
    # largest chunk; one probe over memory_mb still runs alone, so this bounds it).
    max_job_flops: float = 1e17
    max_job_memory_mb: float = 8192.0
    # Wall-clock seconds one attempt at a job may run; past it the job is stopped at
    # its next checkpoint and fails as time_limit, keeping its stored probe runs.
    job_time_limit_s: float = 86_400.0

    # Round 2: sessions, CSRF and docs (docs/security.md).
    # How long a dashboard sign-in lasts (the cookie holds a session id, not the key).
    session_hours: float = Field(default=12.0, gt=0)
    # Who may read /docs and /openapi.json: everyone, callers with a key / signed-in
    # users (with API keys off that is everyone who can connect), or nobody.
    docs: Literal["public", "authenticated", "off"] = "authenticated"
    # The server's public origin (e.g. https://auxsel.example.org) when it runs behind a
    # proxy: links and Location headers use it instead of the request's Host header, and
    # browser requests that change something must come from it.
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _origin_only(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("AUXSEL_PUBLIC_URL must be an http(s) URL such as https://host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(
                "AUXSEL_PUBLIC_URL must be an origin (scheme://host[:port]) without a path"
            )
        return f"{parts.scheme}://{parts.netloc.lower()}"

    # Request size and timeouts (issue 16, round 2; app/security/guard.py, app/server.py,
    # docs/deploy.md). Bodies of every route but the upload are capped at max_json_kb;
    # the upload route at max_upload_mb plus multipart framing.
    max_json_kb: int = 1024
    # Parts of an upload form (the file, its name and a few spare ones).
    max_form_parts: int = 16
    # Request line and headers of one request; larger ones get 431 and a closed connection.
    max_header_kb: int = 64
    # Seconds from the connection opening (or a request's first byte) to its last header.
    header_timeout_s: float = 10.0
    # Seconds the server waits for the next piece of a request body before 408.
    body_timeout_s: float = 30.0
    # Seconds an idle keep-alive connection stays open (uvicorn's timeout_keep_alive).
    keep_alive_s: int = 5
    # Connections plus in-flight requests beyond which new requests get 503 (0 = no cap).
    limit_concurrency: int = 1000

    # Uploads and inputs (security round 2, docs/security.md): what a table may take in
    # memory once decoded (a Parquet file's compressed pages can expand a thousandfold),
    # and the longest column name.
    max_decoded_mb: float = 1024.0
    max_column_name_chars: int = 255

    # Hot path and serving (issue 16, status polls). Owners of API keys that verified
    # are kept this many seconds in each process (0 = off): a key revoked by another
    # process (`auxsel keys revoke`) stops working within this time.
    auth_cache_s: float = 5.0
    # `auxsel serve --workers N`: API processes (N > 1 needs PostgreSQL).
    serve_workers: int = 1
    # Whether `auxsel serve` runs a worker inside (each of) its API process(es).
    serve_worker: bool = True
    gc_freeze: bool = Field(
        default=True,
        description="After an API process's startup, collect garbage once and move every "
        "object left (the imported torch, pandas, SQLAlchemy: ~340,000) to the permanent "
        "generation (gc.freeze), so that later collections walk only what requests "
        "allocate: a full collection of the unfrozen heap stalls the event loop for about "
        "0.25 s of CPU (app/gcwatch.py, docs/deploy.md).",
    )
    serve_stats_file: Path | None = Field(
        default=None,
        description="For benchmarks: each API process records every garbage collection "
        "(generation, objects collected, CPU and wall seconds) and the event loop's lag "
        "every 10 ms, and writes them as JSON to this file when it shuts down "
        "(benchmarks/load_gc.py; with several API processes, <stem>.<pid><suffix>). "
        "Off (unset) by default.",
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'auxsel.db').resolve()}"

    @property
    def uploads_dir(self) -> Path:
        if self.storage_url:
            return Path(self.storage_url.removeprefix("file://"))
        return self.data_dir / "uploads"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    def worker_threads(self, in_process: bool) -> int:
        if self.torch_threads > 0:
            return self.torch_threads
        cores = os.cpu_count() or 1
        return max(1, cores - 1) if in_process else cores


@lru_cache
def get_settings() -> Settings:
    return Settings()
