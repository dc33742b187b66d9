"""The client commands (submit, status, ranking, jobs) as a user runs them: separate
processes against a real `auxsel serve`, checked for output and exit codes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

import engine
from app.cli.main import cli
from app.cli.remote import EXIT_REFUSED, EXIT_UNREACHABLE
from app.cli.submit import Recipe
from app.settings import get_settings
from tests.conftest import ROOT, family_csv, free_port

CANDIDATES = ["rel_0_0.90", "rel_1_0.20", "noise_0"]
# The short probe with small knobs over it (the default recipe trains 256-64 x 150).
SMALL_FLAGS = [
    "--recipe", "quick", "--seeds", "2", "--max-replicates", "2", "--epochs", "3",
    "--hidden", "16", "--batch-size", "64",
]  # fmt: skip


# A job that runs for a while (to cancel or interrupt it before it ends).
LONG_FLAGS = ["--recipe", "quick", "--epochs", "500", "--seeds", "5", "--patience", "0"]


def auxsel_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real `auxsel` entry point in its own process."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUXSEL_")}
    # Wide enough that rich never wraps a table row.
    clean.update({"COLUMNS": "200", "OMP_NUM_THREADS": "1", **env})
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=clean,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def auxsel(*args: str, **env: str) -> Result:
    """The same commands in this process (a fresh process costs seconds on a busy
    machine); settings are re-read from the given environment each time."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AUXSEL_")}
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, list(args), env={**unset, **env})
    finally:
        get_settings.cache_clear()


@pytest.fixture(scope="module")
def env(secured_server: tuple[str, str]) -> dict[str, str]:
    """Where the commands find the server and the key (AUXSEL_URL, AUXSEL_API_KEY)."""
    return {"AUXSEL_URL": secured_server[0], "AUXSEL_API_KEY": secured_server[1]}


def get(env: dict[str, str], path: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {env['AUXSEL_API_KEY']}"}
    return httpx.get(env["AUXSEL_URL"] + path, headers=headers)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tables") / "family.csv"
    path.write_bytes(family_csv(n_rows=400))
    return path


@pytest.fixture(scope="module")
def finished_job(env: dict[str, str], table: Path) -> tuple[str, subprocess.CompletedProcess[str]]:
    """`auxsel submit --wait` run once, as its own process, finding the server and key
    in AUXSEL_URL and AUXSEL_API_KEY; (job id, the result)."""
    result = auxsel_process(
        "submit", str(table), "--main", "y", "--candidates", *CANDIDATES,
        "--kind", "rel_0_0.90=regression", *SMALL_FLAGS, "--name", "cli study", "--wait",
        **env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"submitted job (job_\w+)", result.stdout)
    assert match, result.stdout
    return match.group(1), result


def test_submit_wait_prints_the_ranking_in_the_apis_order(env, finished_job):
    job_id, result = finished_job
    ranking = get(env, f"/api/v1/jobs/{job_id}/ranking").json()
    expected = [c["name"] for c in ranking["candidates"]]
    printed = re.findall(r"^│\s+(\d+) │ (\S+)\s+│", result.stdout, flags=re.MULTILINE)
    assert [name for _, name in printed] == expected
    assert [int(rank) for rank, _ in printed] == [1, 2, 3]
    assert "Baseline (main task alone, 2 seeds)" in result.stdout
    assert "succeeded" in result.stdout
    # The columns the job trains on: the data set's features, none of its labels.
    assert "inputs (6 columns; roles: docs/datasets.md): x0, x1, x2, x3, x4, x5" in " ".join(
        result.stdout.split()
    )
    spec = get(env, f"/api/v1/jobs/{job_id}").json()["spec"]
    assert spec["candidates"][0] == {
        "column": "rel_0_0.90", "kind": "regression", "name": None, "dataset_id": None
    }  # fmt: skip
    assert spec["budget"]["seeds"] == 2
    assert spec["budget"]["hidden"] == [16]
    assert spec["recipe"] == "quick"  # --recipe
    assert spec["budget"]["lr"] is None  # not given: the recipe's
    # The ranking says which recipe it answers for, and what its gains estimate.
    assert f"Answers for: {ranking['recipe_text']}" in result.stdout
    assert ranking["recipe_text"].startswith("quick (changed): trunk 16,")
    assert "Each gain estimates the expected gain in the main task's test loss" in result.stdout


def test_the_recipe_choices_are_the_engines():
    assert [r.value for r in Recipe] == list(engine.RECIPE_NAMES)
    unknown = auxsel("submit", "ds_x", "--main", "y", "--candidates", "a", "--recipe", "slow")
    assert unknown.exit_code == 2
    assert "--recipe" in unknown.stderr


def test_status_jobs_and_ranking_formats(env, finished_job):
    job_id, _ = finished_job
    url, key = env["AUXSEL_URL"], env["AUXSEL_API_KEY"]
    # --url and --api-key instead of the environment.
    status = auxsel("status", job_id, "--url", url, "--api-key", key)
    assert status.exit_code == 0, status.stderr
    assert "succeeded" in status.stdout
    assert f"{url}/jobs/{job_id}" in status.stdout

    listed = auxsel("jobs", "--status", "succeeded", **env)
    assert listed.exit_code == 0, listed.stderr
    assert job_id in listed.stdout
    none = auxsel("jobs", "--status", "failed", **env)
    assert "no jobs with status failed" in none.stdout

    as_json = auxsel("ranking", job_id, "--format", "json", **env)
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == get(env, f"/api/v1/jobs/{job_id}/ranking").json()
    as_csv = auxsel("ranking", job_id, "--format", "csv", **env)
    assert as_csv.stdout == get(env, f"/api/v1/jobs/{job_id}/ranking?format=csv").text
    as_table = auxsel("ranking", job_id, **env)
    assert as_table.exit_code == 0
    assert "95% interval" in as_table.stdout
    assert "Answers for: quick" in as_table.stdout


def test_without_a_key_the_server_refuses(env):
    refused = auxsel("jobs", AUXSEL_URL=env["AUXSEL_URL"])
    assert refused.exit_code == EXIT_REFUSED
    assert "needs an API key" in refused.stderr
    assert "--api-key or AUXSEL_API_KEY" in refused.stderr
    wrong = auxsel("jobs", AUXSEL_URL=env["AUXSEL_URL"], AUXSEL_API_KEY="auxsel_no_no")
    assert wrong.exit_code == EXIT_REFUSED
    assert "not valid" in wrong.stderr


def test_server_down_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}"
    result = auxsel_process("jobs", "--url", url)
    assert result.returncode == EXIT_UNREACHABLE
    assert f"cannot reach the auxsel server at {url}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_column_gets_the_apis_field_message(env, table: Path):
    result = auxsel(
        "submit", str(table), "--main", "nope", "--candidates", "rel_0_0.90", *SMALL_FLAGS,
        **env,
    )  # fmt: skip
    assert result.exit_code == EXIT_REFUSED
    assert "main_task.column: Column 'nope' is not in data set" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(table: Path):
    bad_kind = auxsel("submit", str(table), "--main", "y", "--candidates", "a", "--kind", "a=big")
    assert bad_kind.exit_code == 2
    assert "COLUMN=KIND" in bad_kind.stderr
    missing = auxsel("submit", "no-such-file.csv", "--main", "y", "--candidates", "a")
    assert missing.exit_code == 2
    widths = auxsel("submit", str(table), "--main", "y", "--candidates", "a", "--hidden", "64,wide")
    assert widths.exit_code == 2
    assert "--hidden" in widths.stderr
    assert "layer widths as integers" in " ".join(widths.stderr.split())


def test_a_job_the_worker_would_refuse_is_refused_at_submission(env, tmp_path: Path):
    # Its only other column is constant: its inferred role is ignore, so the job has no
    # inputs and is refused at submission, so no job is queued to fail later.
    path = tmp_path / "constant.csv"
    path.write_text("y,a,c\n" + "".join(f"{i % 2},{(i // 2) % 2},1\n" for i in range(200)))
    result = auxsel(
        "submit", str(path), "--main", "y", "--candidates", "a", *SMALL_FLAGS, "--wait", **env
    )  # fmt: skip
    assert result.exit_code == EXIT_REFUSED, result.stdout + result.stderr
    assert "features: No column of data set 'constant.csv' has the role feature" in " ".join(
        result.stderr.split()
    )
    assert "'c' is ignore (Constant" in " ".join(result.stderr.split())
    assert "submitted job" not in result.stdout


def _dataset_of(env: dict[str, str], job_id: str) -> str:
    return str(get(env, f"/api/v1/jobs/{job_id}").json()["dataset_id"])


def test_submitting_the_same_file_again_reuses_its_data_set_and_cancel(env, finished_job, table):
    job_id, _ = finished_job
    # A long job, to cancel it before it ends.
    again = auxsel(
        "submit", str(table), "--main", "y", "--candidates", *CANDIDATES, *LONG_FLAGS,
        "--tag", "long", "--tag", "cli", "--note", "to cancel", **env
    )  # fmt: skip
    assert again.exit_code == 0, again.stderr
    dataset_id = _dataset_of(env, job_id)
    assert f"already uploaded family.csv: 400 rows x 10 columns, data set {dataset_id}" in (
        again.stdout
    )
    listed = auxsel("datasets", **env)
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout.count(dataset_id) == 1
    as_json = json.loads(auxsel("datasets", "--format", "json", **env).stdout)
    assert [d["id"] for d in as_json].count(dataset_id) == 1
    assert len({d["sha256"] for d in as_json}) == len(as_json)  # no copies
    assert listed.stdout.count("ds_") == len(as_json)

    new_job = re.search(r"submitted job (job_\w+)", again.stdout)
    assert new_job, again.stdout
    submitted = get(env, f"/api/v1/jobs/{new_job.group(1)}").json()
    assert (submitted["tags"], submitted["note"]) == (["long", "cli"], "to cancel")
    assert "tags" not in submitted["spec"]
    canceled = auxsel("cancel", new_job.group(1), **env)
    assert canceled.exit_code == 0, canceled.stderr
    assert new_job.group(1) in canceled.stdout
    assert get(env, f"/api/v1/jobs/{new_job.group(1)}").json()["cancel_requested"] is True
    # A finished job cannot be canceled: the API's 409, as an error.
    refused = auxsel("cancel", job_id, **env)
    assert refused.exit_code == EXIT_REFUSED
    assert "it cannot be canceled" in refused.stderr


def test_runs_lists_the_probe_runs(env, finished_job):
    job_id, _ = finished_job
    api = get(env, f"/api/v1/jobs/{job_id}/runs").json()
    shown = auxsel("runs", job_id, **env)
    assert shown.exit_code == 0, shown.stderr
    assert f"Probe runs of {job_id} ({len(api['items'])})" in shown.stdout
    assert "(main task alone)" in shown.stdout
    for run in api["items"]:
        assert run["key"] in shown.stdout
    as_json = auxsel("runs", job_id, "--format", "json", **env)
    assert json.loads(as_json.stdout) == api
    missing = auxsel("runs", "job_nope", **env)
    assert missing.exit_code == EXIT_REFUSED
    assert "job_nope" in missing.stderr


def test_compare_two_jobs(env, finished_job):
    job_a, _ = finished_job
    second = auxsel(
        "submit", _dataset_of(env, job_a), "--main", "y", "--candidates", "rel_0_0.90",
        "noise_0", *SMALL_FLAGS, "--seed", "1", "--name", "second", "--wait", **env,
    )  # fmt: skip
    assert second.exit_code == 0, second.stdout + second.stderr
    match = re.search(r"submitted job (job_\w+)", second.stdout)
    assert match, second.stdout
    job_b = match.group(1)
    api = get(env, f"/api/v1/jobs/compare?a={job_a}&b={job_b}").json()
    as_json = auxsel("compare", job_a, job_b, "--format", "json", **env)
    assert as_json.exit_code == 0, as_json.stderr
    assert json.loads(as_json.stdout) == api
    shown = auxsel("compare", job_a, job_b, **env)
    assert shown.exit_code == 0, shown.stderr
    assert f"A = {job_a} (cli study)" in shown.stdout
    assert f"B = {job_b} (second)" in shown.stdout
    rows = re.findall(r"^│ (\S+)\s+│\s+(\d+) │\s+(\S+) │", shown.stdout, flags=re.MULTILINE)
    assert [name for name, _, _ in rows] == [c["name"] for c in api["candidates"]]
    assert ("rel_1_0.20", rows[[r[0] for r in rows].index("rel_1_0.20")][1], "-") in rows
    assert "only in A" in shown.stdout
    unfinished = auxsel("compare", job_a, "job_nope", **env)
    assert unfinished.exit_code == EXIT_REFUSED
    assert "job_nope" in unfinished.stderr


def test_piped_output_never_wraps_mid_value(env, finished_job):
    """Not a terminal: one line per row whatever COLUMNS says."""
    job_id, _ = finished_job
    result = auxsel_process("ranking", job_id, COLUMNS="30", **env)
    assert result.returncode == 0, result.stderr
    ranking = get(env, f"/api/v1/jobs/{job_id}/ranking").json()
    for c in ranking["candidates"]:
        interval = f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]"
        line = next(line for line in result.stdout.splitlines() if f" {c['name']} " in line)
        assert interval in line
        assert c["verdict"] in line
    assert f"Answers for: {ranking['recipe_text']}" in result.stdout.splitlines()


def test_ctrl_c_while_waiting_leaves_the_job_running(env, finished_job, table, monkeypatch):
    # status --wait, interrupted in this process.
    job_id, _ = finished_job

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("app.cli.remote.follow", interrupted)
    result = auxsel("status", job_id, "--wait", "--url", env["AUXSEL_URL"], **env)
    assert result.exit_code == 130
    assert f"job {job_id} keeps running on the server" in result.stderr
    assert f"auxsel status {job_id} --wait --url {env['AUXSEL_URL']}" in result.stderr
    monkeypatch.undo()

    # submit --wait in its own process, with a real SIGINT (Ctrl-C) while it waits.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AUXSEL_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "submit",
            _dataset_of(env, job_id),
            "--main",
            "y",
            "--candidates",
            *CANDIDATES,
            *LONG_FLAGS,
            "--wait",
        ],
        env={**clean, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"submitted job (job_\w+)", line)
        assert match, line
        new_job = match.group(1)
        time.sleep(1.0)  # waiting now
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + err
    assert f"job {new_job} keeps running on the server" in err
    assert f"watch it again with: auxsel status {new_job} --wait" in err
    assert f"auxsel cancel {new_job}" in err
    assert "Traceback" not in err
    assert get(env, f"/api/v1/jobs/{new_job}").json()["status"] in ("queued", "running")
    assert auxsel("cancel", new_job, **env).exit_code == 0


def test_submit_at_several_shares_prints_where_each_candidate_helps(env, table: Path):
    result = auxsel(
        "submit", str(table), "--main", "y", "--candidates", *CANDIDATES, *SMALL_FLAGS,
        "--main-train-fractions", "1,0.25", "--wait", **env,
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    match = re.search(r"submitted job (job_\w+)", result.stdout)
    assert match, result.stdout
    spec = get(env, f"/api/v1/jobs/{match.group(1)}").json()["spec"]
    assert spec["budget"]["main_train_fractions"] == [0.25, 1.0]  # kept sorted
    ranking = get(env, f"/api/v1/jobs/{match.group(1)}/ranking").json()
    printed = " ".join(result.stdout.split())
    for c in ranking["candidates"]:
        assert f"{c['name']}: {c['fraction_summary']}" in printed


def test_bad_shares_are_refused_naming_the_option(env, table: Path):
    alone = auxsel(
        "submit", str(table), "--main", "y", "--candidates", "rel_0_0.90", *SMALL_FLAGS,
        "--main-train-fractions", "0.5", **env,
    )  # fmt: skip
    assert alone.exit_code == EXIT_REFUSED
    assert "budget.main_train_fractions" in alone.stderr
    assert "Must include 1" in " ".join(alone.stderr.split())
    words = auxsel(
        "submit", str(table), "--main", "y", "--candidates", "rel_0_0.90",
        "--main-train-fractions", "half,1",
    )  # fmt: skip
    assert words.exit_code == 2
    assert "0.1,0.25,0.5,1" in " ".join(words.stderr.split())
