"""All configuration, from ``AUXSEL_*`` environment variables (one settings object)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
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
    # Probes trained together in one chunk; results are committed per chunk.
    chunk_probes: int = 128
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

    # Client side (the CLI's submit/status/ranking/jobs): which server, with which key.
    url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None
    # Per-owner rate limits (per minute, per API replica; 0 = off). See app/ratelimit.py.
    rate_submit_per_min: float = 120.0
    rate_upload_per_min: float = 60.0

    page_size_default: int = 20
    page_size_max: int = 100
    retry_after_s: int = 2

    # Hot path and serving (issue 16, status polls). Owners of API keys that verified
    # are kept this many seconds in each process (0 = off): a key revoked by another
    # process (`auxsel keys revoke`) stops working within this time.
    auth_cache_s: float = 5.0
    # `auxsel serve --workers N`: API processes (N > 1 needs PostgreSQL).
    serve_workers: int = 1
    # Whether `auxsel serve` runs a worker inside (each of) its API process(es).
    serve_worker: bool = True

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
