"""Choosing the executor and the log format: a clear error when AUXSEL_EXECUTOR=ray
and Ray is not installed; JSON log lines carry the context's job and worker ids."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from app.jobs.executors import ExecutorUnavailableError, LocalExecutor, make_executor
from app.logging_setup import ContextFilter, JsonFormatter, log_context
from app.settings import Settings
from tests.conftest import HANG_S, ROOT, auxsel_env, make_settings


def test_local_is_the_default():
    assert isinstance(make_executor(Settings().executor), LocalExecutor)


def test_ray_without_ray_installed_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ExecutorUnavailableError, match=r"pip install 'auxsel\[ray\]'"):
        make_executor("ray", Settings(executor="ray"))


def test_worker_command_without_ray_exits_with_the_message(tmp_path):
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('simulated: no ray here')\n")
    settings = make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'auxsel.db'}")
    env = auxsel_env(settings, AUXSEL_EXECUTOR="ray", PYTHONPATH=str(tmp_path / "site"))
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "pip install 'auxsel[ray]'" in " ".join((result.stdout + result.stderr).split())


def _capture(fmt: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(fmt)
    logger = logging.getLogger(f"auxsel.test.{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, stream


def test_json_lines_carry_job_and_worker_ids():
    logger, stream = _capture(JsonFormatter())
    logger.info("outside")
    with log_context(worker_id="host:1:2"), log_context(job_id="job_1"):
        logger.info("training %d probes", 12)
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    logger.info("after")
    outside, inside, failed, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert set(outside) == {"ts", "level", "logger", "message"}
    assert outside["ts"].endswith("+00:00")
    assert inside["message"] == "training 12 probes"
    assert (inside["job_id"], inside["worker_id"]) == ("job_1", "host:1:2")
    assert failed["level"] == "ERROR"
    assert "ValueError: boom" in failed["exc"]
    assert "job_id" not in after


def test_text_lines_name_the_job_too():
    logger, stream = _capture(logging.Formatter("%(message)s%(context)s"))
    with log_context(job_id="job_2", worker_id="w"):
        logger.info("hello")
    assert stream.getvalue().strip() == "hello [job_id=job_2 worker_id=w]"


def test_settings_choose_the_format(tmp_path: Path):
    assert Settings().log_format == "text"
    assert Settings(log_format="json").log_format == "json"
