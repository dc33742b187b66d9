"""`auxsel submit`: upload a file (or name an uploaded data set), send a job, and
optionally wait for its ranking. The shared client plumbing is in app/cli/remote.py."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand

from app.cli.remote import (
    EXIT_JOB_FAILED,
    ApiKeyOption,
    UrlOption,
    follow_job,
    print_failure,
    server,
    watch_command,
)
from app.cli.views import console, ranking_table
from app.jobs.status import JobStatus

T = TypeVar("T")

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


def _numbers(value: str, parse: Callable[[str], T], hint: str, example: str) -> list[T]:
    """A list option given as "a,b,c" or "a b c"."""
    try:
        return [parse(part) for part in value.replace(",", " ").split()]
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r}: give {example}.", param_hint=hint) from exc


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
    race_spending: str | None = typer.Option(
        None,
        help="How racing splits the 0.05 error rate over its rounds: obf (default; most to "
        "the last round), pocock or bonferroni (equal shares).",
    ),
    race_futility: float | None = typer.Option(
        None,
        help="Stop racing a candidate whose chance of a verdict at the cap, on its trend "
        "so far, is below this (0 = never; see the README).",
    ),
    fdr: str | None = typer.Option(
        None,
        help="The q-value a verdict needs at most 0.05 of: bh (Benjamini-Hochberg) or storey "
        "(adaptive BH).",
    ),
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
            "race_spending": race_spending,
            "race_futility": race_futility,
            "fdr": fdr,
            "epochs": epochs,
            "hidden": (
                _numbers(hidden, int, "--hidden", "layer widths as integers, e.g. 128 or 64,32")
                if hidden is not None
                else None
            ),
            "lam": lam,
            "batch_size": batch_size,
            "lr": lr,
            "patience": patience,
            "main_train_fraction": main_train_fraction,
            "main_train_fractions": (
                _numbers(
                    main_train_fractions,
                    float,
                    "--main-train-fractions",
                    "shares as numbers in (0, 1], e.g. 0.1,0.25,0.5,1",
                )
                if main_train_fractions is not None
                else None
            ),
            "sharing": sharing,
            "coupling": coupling,
        }.items()
        if value is not None
    }

    def task(column: str) -> dict[str, str]:
        return {"column": column, **({"kind": kinds[column]} if column in kinds else {})}

    with server(url, api_key) as (client, base):
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
            console.print(f"follow it with: {watch_command(job['id'], url)}")
            return
        final = follow_job(client, job["id"], url)
        if final["status"] != JobStatus.SUCCEEDED:
            print_failure(final)
            raise typer.Exit(EXIT_JOB_FAILED)
        console.print(ranking_table(client.ranking(job["id"])))
