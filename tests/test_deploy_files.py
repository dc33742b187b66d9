"""The container files, checked without a Docker engine: the Compose file resolves
(``docker-compose config``, from the ``ci`` extra) into the layout docs/deploy.md
describes, and hadolint finds nothing at warning level in the Dockerfile. Building and
running the images needs an engine and is not done here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    found = shutil.which(
        name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[ci]')")
    return found


def _compose(*args: str, **env: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUXSEL_", "COMPOSE_"))}
    result = subprocess.run(
        [_tool("docker-compose"), "-f", "docker-compose.yml", *args, "config", "--format", "json"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(result.stdout))


def test_compose_default_stack():
    config = _compose()
    services = config["services"]
    assert set(services) == {"postgres", "migrate", "api", "worker"}  # Ray is a profile
    postgres = services["postgres"]
    assert postgres["healthcheck"]["test"]
    assert any(v["target"] == "/var/lib/postgresql/data" for v in postgres["volumes"])
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        env = services[name]["environment"]
        assert env["AUXSEL_DATABASE_URL"].startswith("postgresql+psycopg://")
    # Workers scale with --scale worker=N: no fixed name, no published port.
    worker = services["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert worker["environment"]["AUXSEL_METRICS_PORT"] == "9100"
    # The API publishes on the host's loopback unless told otherwise.
    (port,) = services["api"]["ports"]
    assert port["host_ip"] == "127.0.0.1"
    assert port["target"] == 8000


def test_compose_ray_profile():
    config = _compose("--profile", "ray", AUXSEL_EXTRAS="ray", AUXSEL_RAY_JOIN="ray-head:6379")
    services = config["services"]
    assert {"ray-head", "ray-worker"} <= set(services)
    assert services["ray-head"]["command"] == ["ray-head"]
    assert services["ray-worker"]["environment"]["RAY_HEAD_ADDRESS"] == "ray-head:6379"
    assert services["ray-head"]["build"]["args"]["EXTRAS"] == "ray"
    assert services["worker"]["environment"]["AUXSEL_RAY_JOIN"] == "ray-head:6379"


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "warning", "docker/Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_as_non_root_from_a_multi_stage_build():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert text.count("\nFROM ") >= 2
    assert "download.pytorch.org/whl/cpu" in text
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
