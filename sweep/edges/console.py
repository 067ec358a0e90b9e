"""The driver's terminal output: a progress bar per stage, and the summary as one table."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sweep.edges.summary_table import summary_rows


def stage_progress(console: Console) -> Progress:
    """One bar per stage: done of total, a message (best or last loss), time elapsed."""
    return Progress(
        TextColumn("[bold]{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[msg]}", markup=False),
        TimeElapsedColumn(),
        console=console,
    )


def print_summary(console: Console, summary: Mapping, run_dir: Path) -> None:
    """The summary's rows (the same as the report's), then where the report and summary are."""
    table = Table(title=f"musweep · {summary['ladder']['name']}", show_header=False)
    for label, value in summary_rows(summary):
        table.add_row(escape(label), escape(value))
    console.print(table)
    report = run_dir / "report" / "report.html"
    if report.exists():
        console.print(f"report   {escape(str(report))}")
    console.print(f"summary  {escape(str(run_dir / 'summary.json'))}")
