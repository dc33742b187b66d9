"""The client commands: submit, status, ranking, runs, cancel, compare, jobs and datasets
talk to a running server over
HTTP (app/cli/client.py), found with --url / --api-key or AUXSEL_URL / AUXSEL_API_KEY
(ClientSettings); they never read the server's own settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table
from typer.core import TyperCommand

from app.cli.client import ApiError, Client, ClientSettings, JobJSON
from app.cli.views import (
    comparison_table,
    console,
    datasets_table,
    err_console,
    follow,
    ranking_table,
    runs_table,
    when,
)
from app.jobs.status import JobStatus

# Exit codes of the client commands (2 is click's usage error).
EXIT_REFUSED = 1  # the server answered with an error (bad column, unknown job, no key)
EXIT_UNREACHABLE = 3  # no server at the URL
EXIT_JOB_FAILED = 4  # the job ended failed or canceled
EXIT_INTERRUPTED = 130  # Ctrl-C while waiting (the job goes on on the server)
UrlOption = typer.Option(
    None, "--url", help="Server URL (AUXSEL_URL; default http://127.0.0.1:8000)."
)
ApiKeyOption = typer.Option(
    None, "--api-key", help="API key if the server needs one (AUXSEL_API_KEY).", show_default=False
)
KINDS = ("binary", "multiclass", "regression")


class Recipe(StrEnum):
    """engine.RECIPE_NAMES (the client does not import the engine; a test checks)."""

    full = "full"
    quick = "quick"


class ListOptionsCommand(TyperCommand):
    """Lets list options take several values after one flag (``--candidates a b c``),
    as well as the repeated form click understands (``--candidates a --candidates b``):
    values up to the next flag are rewritten into the repeated form."""

    list_options: frozenset[str] = frozenset({"--candidates", "--kind", "--features"})

    # ctx is typer's vendored click Context, which typer does not export.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        current: str | None = None
        for i, arg in enumerate(args):
            if arg == "--":
                rewritten.extend(args[i:])
                break
            if arg.startswith("-"):
                current = arg if arg in self.list_options else None
                rewritten.append(arg)
            elif current is not None and rewritten[-1] != current:
                rewritten.extend([current, arg])
            else:
                rewritten.append(arg)
        return super().parse_args(ctx, rewritten)


@contextmanager
def _server(url: str | None, api_key: str | None) -> Iterator[tuple[Client, str]]:
    """A client of the configured server; turns its failures into messages and exit codes."""
    settings = ClientSettings()
    base = (url or settings.url).rstrip("/")
    key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
    try:
        with Client(base, key) as client:
            yield client, base
    except httpx.TransportError as exc:
        err_console.print(
            f"[red]cannot reach the auxsel server at {base}[/] ({exc.__class__.__name__}). "
            "Is it running ('auxsel serve')? Point at another one with --url or AUXSEL_URL."
        )
        raise typer.Exit(EXIT_UNREACHABLE) from exc
    except ApiError as exc:
        problem = exc.problem
        errors = problem.get("errors") or []
        headline = problem.get("title") if errors else problem.get("detail")
        err_console.print(f"[red]error[/] ({exc.status}): {headline or exc}")
        for error in errors:
            err_console.print(f"  {error.get('field')}: {error.get('message')}")
        if exc.status == 401:
            err_console.print("Pass a key with --api-key or AUXSEL_API_KEY.")
        raise typer.Exit(EXIT_REFUSED) from exc


def _watch_command(job_id: str, url: str | None) -> str:
    """The command that watches the job again (with --url when it was given)."""
    return f"auxsel status {job_id} --wait" + (f" --url {url}" if url else "")


def _follow(client: Client, job_id: str, url: str | None) -> JobJSON:
    """follow() the job; on Ctrl-C say that it keeps running on the server, how to
    watch it again and how to cancel it, and exit 130."""
    try:
        return follow(client, job_id)
    except KeyboardInterrupt:
        cancel = "auxsel cancel " + job_id + (f" --url {url}" if url else "")
        err_console.print(
            f"\nstopped waiting; job {job_id} keeps running on the server.\n"
            f"watch it again with: {_watch_command(job_id, url)}\n"
            f"stop it with: {cancel}",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _print_failure(job: JobJSON) -> None:
    from app.jobs.failures import explain

    if job["status"] == JobStatus.CANCELED:
        err_console.print(f"job {job['id']} was canceled.")
        return
    error = job.get("error")
    err_console.print(f"[red]job {job['id']} failed[/]: {explain(error)}")
    if error and error.get("detail"):
        err_console.print(f"  reason {error['reason']}: {error['detail']}")


def _parse_kinds(pairs: list[str], labels: set[str]) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for pair in pairs:
        column, sep, kind = pair.rpartition("=")
        if not sep or not column or kind not in KINDS:
            raise typer.BadParameter(
                f"{pair!r}: write COLUMN=KIND with KIND one of {', '.join(KINDS)}.",
                param_hint="--kind",
            )
        if column not in labels:
            raise typer.BadParameter(
                f"{column!r} is neither --main nor one of --candidates.", param_hint="--kind"
            )
        kinds[column] = kind
    return kinds


def _hidden(value: str) -> list[int]:
    try:
        return [int(part) for part in value.replace(",", " ").split()]
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r}: give layer widths as integers, e.g. 128 or 64,32.",
            param_hint="--hidden",
        ) from exc


def _shares(value: str) -> list[float]:
    try:
        return [float(part) for part in value.replace(",", " ").split()]
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r}: give shares as numbers in (0, 1], e.g. 0.1,0.25,0.5,1.",
            param_hint="--main-train-fractions",
        ) from exc


def submit(
    data: Annotated[
        str,
        typer.Argument(
            help="CSV or Parquet file to upload, or the id of an uploaded data set (ds_...)."
        ),
    ],
    main: Annotated[str, typer.Option("--main", help="The main task's label column.")],
    candidates: Annotated[
        list[str],
        typer.Option(
            "--candidates", help="Candidate auxiliary tasks' columns: --candidates A B C."
        ),
    ],
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind", help="COL=KIND (binary, multiclass or regression); inferred otherwise."
        ),
    ] = None,
    features: Annotated[
        list[str] | None,
        typer.Option(
            "--features",
            help="Input columns (default: the data set's feature-role columns).",
        ),
    ] = None,
    name: str | None = typer.Option(None, help="Job name."),
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="A tag for the job (repeat for several); edit them later."),
    ] = None,
    note: str | None = typer.Option(None, help="A free-text note on the job."),
    method: str | None = typer.Option(
        None, help="probe (the server's default) | screen | screen+probe."
    ),
    metric: str | None = typer.Option(None, help="Primary metric (default loss)."),
    seed: int | None = typer.Option(None, help="Seed of splits and initialisations."),
    recipe: Annotated[
        Recipe | None,
        typer.Option(
            "--recipe",
            help="Training recipe the ranking answers for: full (the server's default; "
            "standard full training) or quick (a short narrow probe, a first look only). "
            "Budget options given here override its values.",
        ),
    ] = None,
    seeds: int | None = typer.Option(
        None, help="Replicates of the first round, each with its own split."
    ),
    max_replicates: int | None = typer.Option(
        None, help="Most replicates per candidate when racing (= --seeds: no racing)."
    ),
    race_step: int | None = typer.Option(None, help="Replicates each racing round adds."),
    epochs: int | None = typer.Option(None, help="Epochs per probe at most (default: recipe's)."),
    hidden: str | None = typer.Option(
        None, help="Hidden layer widths, e.g. 128 or 64,32 (default: recipe's)."
    ),
    lam: float | None = typer.Option(None, help="Weight of the auxiliary loss (recipe's)."),
    batch_size: int | None = typer.Option(None, help="Minibatch size (recipe's)."),
    lr: float | None = typer.Option(None, help="Adam learning rate (recipe's)."),
    patience: int | None = typer.Option(None, help="Early-stop patience, 0 = none (recipe's)."),
    main_train_fraction: float | None = typer.Option(
        None, help="Share of the main task's training labels kept."
    ),
    main_train_fractions: str | None = typer.Option(
        None,
        help="Run the job at several shares of the main task's training labels, e.g. "
        "0.1,0.25,0.5,1 (1 included, at most 6): each candidate's gain at each share.",
    ),
    sharing: str | None = typer.Option(
        None,
        help="How the probes' tasks share the trunk: hard (one shared trunk), soft_l2 or "
        "soft_trace (a trunk per task, coupled) (recipe's: hard).",
    ),
    coupling: float | None = typer.Option(
        None, help="Soft sharing: weight of the trunks' coupling penalty (recipe's)."
    ),
    wait: bool = typer.Option(
        False, "--wait", help="Show progress until the job ends, then print the ranking."
    ),
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """Upload a table (or use an uploaded one) and submit a job on it."""
    kinds = _parse_kinds(kind or [], {main, *candidates})
    path = Path(data)
    if not path.is_file() and not data.startswith("ds_"):
        raise typer.BadParameter(f"no file {data!r} (and not a data set id).", param_hint="DATA")
    budget: dict[str, object] = {
        key: value
        for key, value in {
            "seeds": seeds,
            "max_replicates": max_replicates,
            "race_step": race_step,
            "epochs": epochs,
            "hidden": _hidden(hidden) if hidden is not None else None,
            "lam": lam,
            "batch_size": batch_size,
            "lr": lr,
            "patience": patience,
            "main_train_fraction": main_train_fraction,
            "main_train_fractions": (
                _shares(main_train_fractions) if main_train_fractions is not None else None
            ),
            "sharing": sharing,
            "coupling": coupling,
        }.items()
        if value is not None
    }

    def task(column: str) -> dict[str, str]:
        return {"column": column, **({"kind": kinds[column]} if column in kinds else {})}

    with _server(url, api_key) as (client, base):
        if path.is_file():
            dataset = client.upload(path)
            done = "already uploaded" if dataset.get("reused") else "uploaded"
            console.print(
                f"{done} {path.name}: {dataset['rows']} rows x {dataset['columns']} columns, "
                f"data set {dataset['id']} (pass that id instead of the file to reuse it)"
            )
        else:
            dataset = client.dataset(data)
        spec: dict[str, object] = {
            "dataset_id": dataset["id"],
            "main_task": task(main),
            "candidates": [task(c) for c in candidates],
            "budget": budget,
        }
        optional = {
            "method": method,
            "name": name,
            "metric": metric,
            "seed": seed,
            "recipe": recipe.value if recipe is not None else None,
            "features": features or None,
            "tags": tag or None,  # beside the spec: the job's metadata, not what it trains
            "note": note,
        }
        spec.update({k: v for k, v in optional.items() if v is not None})
        job = client.submit(spec)
        console.print(f"submitted job {job['id']} ({job['name']}): {base}/jobs/{job['id']}")
        inputs = job.get("inputs")
        if isinstance(inputs, list):
            shown = ", ".join(map(str, inputs[:20])) + (
                f", ... ({len(inputs)} in all)" if len(inputs) > 20 else ""
            )
            console.print(f"inputs ({len(inputs)} columns; roles: docs/datasets.md): {shown}")
        if not wait:
            console.print(f"follow it with: {_watch_command(job['id'], url)}")
            return
        final = _follow(client, job["id"], url)
        if final["status"] != JobStatus.SUCCEEDED:
            _print_failure(final)
            raise typer.Exit(EXIT_JOB_FAILED)
        console.print(ranking_table(client.ranking(job["id"])))


def status(
    job_id: str = typer.Argument(..., help="The job's id."),
    wait: bool = typer.Option(False, "--wait", help="Show progress until the job ends."),
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """A job's status and progress (with --wait, until it ends; exit 4 if it failed)."""
    with _server(url, api_key) as (client, base):
        job = _follow(client, job_id, url) if wait else client.job(job_id)
        progress = job["progress"]
        table = Table(show_header=False, box=None)
        table.add_row("job", f"{job['id']}  {job['name']}")
        table.add_row("status", job["status"])
        table.add_row(
            "progress",
            f"{progress['done']} / {progress['total']} probe-epochs ({progress['fraction']:.0%})",
        )
        table.add_row("created", when(job["created_at"]))
        table.add_row("started", when(job["started_at"]))
        table.add_row("finished", when(job["finished_at"]))
        table.add_row("page", f"{base}/jobs/{job['id']}")
        console.print(table)
        if job["status"] == JobStatus.FAILED:
            _print_failure(job)
        if wait and job["status"] in (JobStatus.FAILED, JobStatus.CANCELED):
            raise typer.Exit(EXIT_JOB_FAILED)


class RankingFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def ranking(
    job_id: str = typer.Argument(..., help="The job's id."),
    format: Annotated[
        RankingFormat, typer.Option("--format", help="Output format.")
    ] = RankingFormat.table,
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """A finished job's ranking: a table, or JSON / CSV for other tools."""
    with _server(url, api_key) as (client, _):
        try:
            if format is RankingFormat.csv:
                typer.echo(client.ranking_csv(job_id), nl=False)
                return
            result = client.ranking(job_id)
        except ApiError as exc:
            if exc.status != 409:
                raise
            job = client.job(job_id)
            if job["status"] in (JobStatus.FAILED, JobStatus.CANCELED):
                _print_failure(job)
                raise typer.Exit(EXIT_JOB_FAILED) from exc
            err_console.print(
                f"job {job_id} is {job['status']} ({job['progress']['fraction']:.0%}); "
                f"wait for it with: auxsel status {job_id} --wait"
            )
            raise typer.Exit(EXIT_REFUSED) from exc
        if format is RankingFormat.json:
            typer.echo(json.dumps(result, indent=2))
        else:
            console.print(ranking_table(result))


def jobs_command(
    status: str | None = typer.Option(
        None, "--status", help="queued | running | succeeded | failed | canceled."
    ),
    limit: int = typer.Option(20, help="How many, newest first."),
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """Jobs, newest first."""
    with _server(url, api_key) as (client, _):
        items = client.jobs(status=status, page_size=limit)
    table = Table()
    for column in ("id", "status", "done", "created"):
        table.add_column(column, no_wrap=True)  # ids are for copying: never cut them
    table.add_column("name", overflow="fold", min_width=12)
    for job in items:
        table.add_row(
            job["id"],
            job["status"],
            f"{job['progress']['fraction']:.0%}",
            when(job["created_at"], short=True),
            job["name"],
        )
    console.print(table if items else "no jobs" + (f" with status {status}" if status else ""))


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


FormatOption = typer.Option("--format", help="table, or json for other tools.")


def datasets_command(
    limit: int = typer.Option(50, help="How many, newest first."),
    format: Annotated[OutputFormat, FormatOption] = OutputFormat.table,
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """Uploaded data sets, newest first (pass an id to `auxsel submit` instead of a file)."""
    with _server(url, api_key) as (client, _):
        items = client.datasets(page_size=limit)
    if format is OutputFormat.json:
        typer.echo(json.dumps(items, indent=2))
    else:
        console.print(datasets_table(items) if items else "no data sets")


def runs(
    job_id: str = typer.Argument(..., help="The job's id."),
    format: Annotated[OutputFormat, FormatOption] = OutputFormat.table,
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """A job's probe runs so far: which candidates each trained with, its metrics at the
    best epoch, and its epochs."""
    with _server(url, api_key) as (client, _):
        result = client.runs(job_id)
    if format is OutputFormat.json:
        typer.echo(json.dumps(result, indent=2))
    else:
        console.print(runs_table(result) if result["items"] else f"job {job_id} has no runs yet")


def cancel(
    job_id: str = typer.Argument(..., help="The job's id."),
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """Cancel a job: a queued one at once, a running one at its next training step."""
    with _server(url, api_key) as (client, _):
        job = client.cancel(job_id)
    if job["status"] == JobStatus.CANCELED:
        console.print(f"job {job_id} canceled.")
    else:
        console.print(
            f"job {job_id} is {job['status']}: it stops at its next training step "
            f"(check with: {_watch_command(job_id, url)})."
        )


def compare(
    job_a: str = typer.Argument(..., help="The first job's id."),
    job_b: str = typer.Argument(..., help="The second job's id."),
    format: Annotated[OutputFormat, FormatOption] = OutputFormat.table,
    url: str | None = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """Two finished jobs' rankings side by side: each candidate's rank, gain and verdict
    in both, and what changed from A to B."""
    with _server(url, api_key) as (client, _):
        result = client.compare(job_a, job_b)
    if format is OutputFormat.json:
        typer.echo(json.dumps(result, indent=2))
    else:
        console.print(comparison_table(result))
