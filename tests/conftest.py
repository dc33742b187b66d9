"""Shared fixtures: databases (SQLite and PostgreSQL), settings, the app, live servers
and worker processes. PostgreSQL comes from AUXSEL_TEST_POSTGRES_URL (scripts/test.sh
starts a throwaway cluster); each test gets a fresh database."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from app.db.session import make_engine, make_sessionmaker
from app.security.auth import create_key
from app.settings import Settings
from engine import make_task_family

PG_URL = os.environ.get("AUXSEL_TEST_POSTGRES_URL")
ROOT = Path(__file__).resolve().parent.parent
# Every wait in the process, worker and browser tests is bounded by this: a bound that
# catches a hang, never an expectation of speed (issue 19: 20 s, 120 s and Playwright's
# 5 s each failed a correct run on a loaded 2-core machine). A real failure costs this long.
HANG_S = 600.0


def _pg_database() -> Iterator[str]:
    if not PG_URL:
        pytest.skip("PostgreSQL not available (scripts/test.sh starts one)")
    name = f"t_{secrets.token_hex(6)}"
    # No pooled connection: a test may restart the server under this engine.
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'auxsel.db'}"
    else:
        yield from _pg_database()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _pg_database()


def make_settings(data_dir: Path, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "heartbeat_s": 0.5,
        "lease_s": 3.0,
        "poll_s": 0.1,
        "progress_interval_s": 0.1,
        "torch_threads": 1,
        # A test process starts hundreds of apps: each freeze would cost a full
        # collection and keep what the earlier tests left (tests/api/test_gc.py turns it on).
        "gc_freeze": False,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path / "data", db_url)


def family_csv(n_rows: int = 400, seed: int = 0, **kwargs: object) -> bytes:
    family = make_task_family(
        n_rows=n_rows, n_features=6, relatedness=(0.9, 0.2), n_noise=1, seed=seed, **kwargs
    )
    return family.frame.to_csv(index=False).encode()


TOX_LABELS = ["NR-AR", "NR-AhR", "NR-ER", "SR-ARE", "SR-HSE", "SR-MMP", "SR-p53"]
BITS = [f"fp_{i}" for i in range(16)]


def tox_csv(rows: int = 300) -> bytes:
    """A Tox21-like table: a SMILES id, 16 fingerprint bits (complete) and seven sparse
    binary labels (each missing on a different ~20% of the molecules)."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, size=(rows, len(BITS)))
    frame = pd.DataFrame({"smiles": [f"C{'C' * (i % 7)}O{i}" for i in range(rows)]})
    for i, name in enumerate(BITS):
        frame[name] = bits[:, i]
    for k, name in enumerate(TOX_LABELS):
        score = bits[:, k] + bits[:, k + 1] + rng.normal(scale=0.5, size=rows)
        label = (score > 1).astype(float)
        label[rng.random(rows) < 0.2] = np.nan
        frame[name] = label
    return frame.to_csv(index=False).encode()


# One round of replicates (no racing: its rounds are engine tests).
SMALL_BUDGET = {"seeds": 2, "epochs": 3, "hidden": [16], "batch_size": 64, "max_replicates": 2}
# Test jobs train the short probe (and small explicit knobs over it): the default
# recipe, full, is a 256-64 trunk for up to 150 epochs.
TEST_RECIPE = "quick"


def job_spec(dataset_id: str, **overrides: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "dataset_id": dataset_id,
        "main_task": {"column": "y"},
        "candidates": [{"column": "rel_0_0.90"}, {"column": "rel_1_0.20"}, {"column": "noise_0"}],
        "seed": 0,
        "recipe": TEST_RECIPE,
        "budget": dict(SMALL_BUDGET),
    }
    spec.update(overrides)
    return spec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def auxsel_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "AUXSEL_DATA_DIR": str(settings.data_dir),
        "AUXSEL_DATABASE_URL": settings.resolved_database_url,
        "AUXSEL_HEARTBEAT_S": str(settings.heartbeat_s),
        "AUXSEL_LEASE_S": str(settings.lease_s),
        "AUXSEL_POLL_S": str(settings.poll_s),
        "AUXSEL_PROGRESS_INTERVAL_S": str(settings.progress_interval_s),
        "AUXSEL_TORCH_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


class Proc:
    """A child process started by a test; stopped by its PID only."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.popen = subprocess.Popen(
            args, env=env, stdout=self._out, stderr=subprocess.STDOUT, cwd=ROOT
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def stop(self, timeout: float = HANG_S) -> int | None:
        """SIGTERM, then SIGKILL if the process has not exited after ``timeout`` s.

        The bound catches a hang, not slowness: on a loaded machine a worker may sit in
        SQLite's 30 s busy wait, where Python runs no signal handler, before it sees the
        SIGTERM (a 20 s bound failed test_cancel_running_job at load 10 on 2 cores)."""
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(10)
        self._out.close()
        return self.popen.returncode

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")


def start_server(
    settings: Settings, log: Path, worker: bool = True, **env: str
) -> tuple[Proc, str]:
    port = free_port()
    args = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if not worker:
        args.append("--no-worker")
    proc = Proc(args, auxsel_env(settings, **env), log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"server exited:\n{proc.output()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.stop()
    raise RuntimeError(f"server did not start:\n{proc.output()}")


def start_worker(settings: Settings, log: Path, **env: str) -> Proc:
    return Proc([sys.executable, "-m", "app.cli", "worker"], auxsel_env(settings, **env), log)


def serve_with_key(root: Path, worker: bool = True, **env: str) -> tuple[Proc, str, str, Settings]:
    """`auxsel serve` with API keys on, over a fresh SQLite database under ``root``, and a
    key for "alice" made in that database: (process, url, key, settings)."""
    settings = make_settings(root / "data", f"sqlite:///{root / 'auxsel.db'}")
    proc, url = start_server(settings, root / "server.log", worker, AUXSEL_AUTH="on", **env)
    engine = make_engine(settings.resolved_database_url)
    key = create_key(make_sessionmaker(engine), "alice").key
    engine.dispose()
    return proc, url, key, settings


@pytest.fixture(scope="module")
def secured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`auxsel serve` with API keys on, as a remote server would be; (url, a valid key)."""
    proc, url, key, _ = serve_with_key(tmp_path_factory.mktemp("secured"))
    yield url, key
    proc.stop()
