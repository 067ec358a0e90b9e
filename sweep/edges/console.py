"""The driver's output: a progress bar per stage (log lines when not on a terminal), and the
summary as one table."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from sweep.core.sections import Summary
from sweep.edges.summary_table import summary_rows
from sweep.edges.tracking import format_seconds

LOG = logging.getLogger("musweep")


def stage_progress(console: Console, eta: Callable[[int], float | None]) -> Progress:
    """One bar per stage: done of total, a message (best or last loss), time elapsed and left
    (`eta`: a task's seconds left, the same the plain lines print)."""
    return Progress(
        TextColumn("[bold]{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[msg]}", markup=False),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        EtaColumn(eta),
        console=console,
    )


class EtaColumn(ProgressColumn):
    """The time left by the stage's own rate, measured from its count's first move: Rich's own
    column reads the jump of a resumed run (20 of 30 done at once) as a rate, and shows 0:00."""

    def __init__(self, eta: Callable[[int], float | None]):
        super().__init__()
        self.eta = eta

    def render(self, task: Task) -> Text:
        seconds = self.eta(task.id)
        return Text(
            "-:--" if seconds is None else format_seconds(seconds), style="progress.remaining"
        )


@dataclass
class _Stage:
    name: str
    total: float | None
    completed: float
    msg: str
    started: float
    logged: tuple = ()  # (count, total, message) of the last line: a new one only on change
    # (count, time) when the count first moved: what came before may be work resumed, not done
    # now (a run resuming at step 5300 reports it at once), so the rate is measured from here
    moved: tuple[float, float] | None = None

    def eta(self, now: float) -> float | None:
        """Seconds left at the rate since the count first moved; None before it moved twice."""
        if not self.total or self.moved is None or not self.completed < self.total:
            return None
        done, since = self.completed - self.moved[0], now - self.moved[1]
        return since * (self.total - self.completed) / done if done > 0 else None


class StageDisplay:
    """The stages' progress: live bars with ETAs on a terminal; elsewhere (a pipe, a file, a
    SLURM log) plain lines through `logging`, one whenever a stage's count or message changes,
    so they land in Hydra's `run.log` too. The same calls drive both."""

    def __init__(self, console: Console):
        self.console = console
        self.stages: dict[int, _Stage] = {}
        self.bars = stage_progress(console, self.eta) if console.is_terminal else None

    def __enter__(self) -> StageDisplay:
        if self.bars is not None:
            self.bars.__enter__()
        self._showwarning = warnings.showwarning
        warnings.showwarning = self._warning  # a library's warning: one line, between the bars
        return self

    def __exit__(self, *exc) -> None:
        warnings.showwarning = self._showwarning
        if self.bars is not None:
            self.bars.__exit__(*exc)

    def _warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        first = str(message).strip().splitlines()[0] if str(message).strip() else ""
        self.note(f"warning: {category.__name__}: {first}")

    def add_task(self, name: str, total: float | None = None, completed: float = 0, msg: str = ""):
        task, now = len(self.stages), time.monotonic()
        if self.bars is not None:
            task = self.bars.add_task(name, total=total, completed=completed, msg=msg)
        self.stages[task] = _Stage(name, total, completed, msg, started=now)
        self._log(task, now)
        return task

    def update(
        self,
        task: int,
        *,
        completed: float | None = None,
        total: float | None = None,
        advance: float | None = None,
        msg: str | None = None,
    ) -> None:
        stage, now = self.stages[task], time.monotonic()
        if total is not None:
            stage.total = total
        before = stage.completed
        if completed is not None:
            stage.completed = completed
        if advance is not None:
            stage.completed += advance
        if stage.moved is None and stage.completed > before:
            stage.moved = (stage.completed, now)
        if msg is not None:
            stage.msg = msg
        if self.bars is not None:
            self.bars.update(task, total=stage.total, completed=stage.completed, msg=stage.msg)
        self._log(task, now)

    def eta(self, task: int) -> float | None:
        stage = self.stages.get(task)
        return None if stage is None else stage.eta(time.monotonic())

    def note(self, text: str) -> None:
        """A message between the bars (or a log line), printed as written: no markup."""
        if self.bars is not None:
            self.bars.console.print(text, markup=False, highlight=False)
        else:
            LOG.info(text)

    def _log(self, task: int, now: float) -> None:
        if self.bars is not None:
            return
        stage = self.stages[task]
        state = (stage.completed, stage.total, stage.msg)
        if state == stage.logged:  # nothing new (the clock alone moved): no line
            return
        stage.logged = state
        elapsed, eta = now - stage.started, stage.eta(now)
        LOG.info(stage_line(stage.name, stage.completed, stage.total, stage.msg, elapsed, eta))


def stage_line(
    name: str,
    completed: float,
    total: float | None,
    msg: str,
    elapsed: float,
    eta: float | None = None,
) -> str:
    """`tune 5/20 best val loss 2.4812 (0:31 elapsed, ETA 1:33)`: the count, its message, the
    time and, once it is known, the time left."""
    count = f"{completed:g}/{total:g}" if total else f"{completed:g}"
    times = [f"{format_seconds(elapsed)} elapsed"]
    if eta is not None:
        times.append(f"ETA {format_seconds(eta)}")
    return f"{name} {count} {msg}".rstrip() + f" ({', '.join(times)})"


def print_plan(console: Console, record: Mapping) -> None:
    """The plan as one table: per stage its jobs, runs, FLOPs and estimated time, then totals."""
    table = Table(title="musweep · plan (nothing trained)")
    for column in ("stage", "jobs", "runs", "FLOPs", "≤ target runs", "est. time", "note"):
        table.add_column(column, justify="left" if column in ("stage", "note") else "right")
    for s in record["stages"]:
        runs = f"{s['runs']}" + (f" (≤ {s['max_runs']})" if s["max_runs"] > s["runs"] else "")
        flops = f"{s['flops']:.3g}" + (
            f" (≤ {s['max_flops']:.3g})" if s["max_flops"] > s["flops"] else ""
        )
        table.add_row(
            s["stage"],
            str(s["jobs"]),
            runs,
            flops,
            f"{s['max_flops_vs_target']:.2f}",
            format_seconds(s["seconds"]),
            escape(s["note"]),
        )
    total = record["total"]
    table.add_row(
        "total",
        str(total["jobs"]),
        str(total["runs"]),
        f"{total['flops']:.3g} (≤ {total['max_flops']:.3g})",
        f"{total['max_flops_vs_target']:.2f}",
        format_seconds(total["seconds"]),
        escape(record.get("throughput", {}).get("source", "")),
    )
    console.print(table)
    console.print(
        f"at most {total['max_besides_target']:.2f} target runs besides the target's own run"
    )
    if record.get("budget") is not None:
        print_budget(console, record["budget"])
    console.print(f"results would go to {escape(record['run_dir'])}")


def print_budget(console: Console, budget: Mapping) -> None:
    """What the budget kept, each at its worst case, and what it dropped with what the verdict
    cannot say without it."""
    console.print(
        f"budget {budget['budget_vs_target']:.3g} target runs besides the target's run "
        f"({budget['budget_flops']:.3g} FLOPs); the checks kept may spend at most "
        f"{budget['max_vs_target']:.3g}"
    )
    for item in budget["kept"]:
        console.print(f"  kept     {escape(item['what'])} (≤ {item['max_vs_target']:.3g})")
    for item in budget["dropped"]:
        console.print(
            f"  dropped  {escape(item['what'])} ({item['max_vs_target']:.3g}): "
            f"{escape(item['lost'])}"
        )


def print_summary(console: Console, summary: Summary, run_dir: Path) -> None:
    """The summary's rows (the same as the report's), then where the report and summary are."""
    table = Table(title=f"musweep · {summary['ladder']['name']}", show_header=False)
    for label, value in summary_rows(summary):
        table.add_row(escape(label), escape(value))
    console.print(table)
    report = run_dir / "report" / "report.html"
    if report.exists():
        console.print(f"report   {escape(str(report))}")
    console.print(f"summary  {escape(str(run_dir / 'summary.json'))}")
