"""Job submission through Submitit: subprocesses here ("local"), this process ("debug"), or SLURM.

A stage hands `run_jobs` a function and one spec per job; results come back through a callback as
jobs finish, so the driver can show progress and write each result before the next arrives. Jobs
are submitted at most `max_parallel` at a time (SLURM: as one array with that parallelism). A job
that raises is reported to the callback as its exception: the stage records it and carries on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import submitit

POLL_SECONDS = 0.25


def make_executor(launcher: dict, folder: Path) -> submitit.Executor:
    kind = launcher["kind"]
    if kind == "debug":
        return submitit.DebugExecutor(folder=folder)
    if kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=launcher["timeout_min"])
        return executor
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(
        timeout_min=launcher["timeout_min"],
        cpus_per_task=launcher["cpus_per_task"],
        slurm_array_parallelism=launcher["max_parallel"],
    )
    return executor


def run_jobs(
    launcher: dict,
    folder: Path,
    fn: Callable[[Any], Any],
    specs: Sequence[Any],
    on_done: Callable[[Any, Any, BaseException | None], None],
    name: str = "musweep",
    on_poll: Callable[[], None] | None = None,
) -> None:
    """Run `fn(spec)` for every spec; call `on_done(spec, result, error)` as each job ends.

    `on_poll` is called while waiting, so the caller can refresh a progress display.
    """
    if not specs:
        return
    executor = make_executor(launcher, folder)
    executor.update_parameters(name=name)
    debug = launcher["kind"] == "debug"  # debug jobs run in this process when asked for results
    if launcher["kind"] == "slurm":
        with executor.batch():  # one job array; SLURM enforces the parallelism
            jobs = [executor.submit(fn, spec) for spec in specs]
        pending, running = [], list(zip(specs, jobs, strict=True))
    else:
        pending, running = list(specs), []
    while pending or running:
        while pending and len(running) < (1 if debug else launcher["max_parallel"]):
            spec = pending.pop(0)
            running.append((spec, executor.submit(fn, spec)))
        running = _collect(running, on_done, block=debug, on_poll=on_poll)


def _collect(running: list, on_done: Callable, block: bool, on_poll: Callable | None) -> list:
    """Report finished jobs; return those still running (waits for one when `block`)."""
    while True:
        still = []
        for spec, job in running:
            if block or job.done():
                error = job.exception()
                on_done(spec, None if error else job.result(), error)
            else:
                still.append((spec, job))
        if len(still) < len(running) or not still:
            return still
        if on_poll is not None:
            on_poll()
        time.sleep(POLL_SECONDS)
