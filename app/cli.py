"""The ``auxsel`` command line."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import engine
from app.demo import DEMO_BUDGET, demo_family

cli = typer.Typer(help="auxsel: which auxiliary tasks help your main task?", no_args_is_help=True)
console = Console()


@cli.callback()
def root() -> None:
    """auxsel: which auxiliary tasks help your main task?"""


@cli.command()
def demo(seed: int = typer.Option(0, help="Seed of the generated table and the job.")) -> None:
    """Run the engine on the generated demo table and print the ranking."""
    family = demo_family(seed)
    console.print(
        f"Demo table: {len(family.frame)} rows; main task [bold]{family.main}[/], "
        f"{len(family.candidates)} candidates (true relatedness in their names)."
    )
    with Progress(
        TextColumn("probes"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("train", total=1)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        advice = engine.advise(
            family.frame,
            family.main,
            list(family.candidates),
            seed=seed,
            progress=progress,
            **DEMO_BUDGET,
        )
    console.print(advice_table(advice))


def advice_table(advice: engine.Advice) -> Table:
    """The ranking as a rich table, baseline in the title."""
    baseline = ", ".join(f"{k} {v:.4g}" for k, v in advice.baseline.metrics.items())
    table = Table(title=f"Baseline (main task alone, {advice.baseline.seeds} seeds): {baseline}")
    for column in ("rank", "candidate", f"gain ({advice.metric})", "95% interval", "q", "verdict"):
        table.add_column(column, justify="right" if column != "candidate" else "left")
    colours = {"helpful": "green", "harmful": "red", "inconclusive": "yellow"}
    for c in advice.candidates:
        table.add_row(
            str(c.rank),
            c.name,
            f"{c.gain:+.4f}",
            f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]",
            f"{c.q_value:.3f}",
            f"[{colours[c.verdict]}]{c.verdict}[/]",
        )
    return table


def main() -> None:
    cli()
