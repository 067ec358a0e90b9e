"""A failed job is one line: the stage's job, the cause, and the log holding the full trace."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import submitit

from sweep.edges.launch import JobFailed, cause_of, local_worker_pids, run_jobs


def fails(message: str) -> None:
    raise ValueError(message)


def test_a_failed_job_is_one_line_naming_job_cause_and_log(tmp_path, monkeypatch):
    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    launcher = {"kind": "local", "max_parallel": 1, "timeout_min": 5, "gpus_per_node": 0}
    seen: list[BaseException | None] = []
    run_jobs(
        launcher,
        tmp_path / "jobs",
        fails,
        ["checkpoint run.ckpt belongs to a different run config"],
        lambda spec, result, error: seen.append(error),
        name="musweep-transfer",
    )
    (error,) = seen
    assert isinstance(error, JobFailed)
    line = str(error)
    assert "\n" not in line
    assert line.startswith("musweep-transfer job ")
    assert "failed: ValueError: checkpoint run.ckpt belongs to a different run config" in line
    assert error.log is not None and line.endswith(f"full trace in {error.log}")
    trace = error.log.read_text()
    assert "Traceback" in trace and "in fails" in trace  # the trace is in the log, not the line


def test_the_cause_is_the_last_line_of_a_submitit_trace():
    trace = (
        "Job (task=0) failed during processing with trace:\n----------------------\n"
        'Traceback (most recent call last):\n  File "x.py", line 3, in f\n    raise E\n'
        "OSError: [Errno 28] No space left on device\n\n----------------------\n"
        "You can check full logs with 'job.stderr(0)' and 'job.stdout(0)'or at paths:\n  - a\n"
    )
    error = submitit.core.utils.FailedJobError(trace)
    assert cause_of(error) == "OSError: [Errno 28] No space left on device"
    assert cause_of(RuntimeError("first\nsecond")) == "RuntimeError: first"


def test_why_a_pending_job_will_never_start():
    from sweep.edges.launch import _minutes, unschedulable_message

    nodes = [{"cpus": 2, "mem_mb": 23081, "gpus": 0, "time_min": 120}]
    launcher = {"cpus_per_task": 4, "mem_gb": 64, "gpus_per_node": 1, "nodes": 2}
    launcher["timeout_min"] = 240
    message = unschedulable_message("PartitionConfig", launcher, nodes, 1, "77_0")
    assert message.startswith("SLURM will never start job 77_0 (pending: PartitionConfig): ")
    for fix in (
        "launcher.cpus_per_task=4 but the partition's nodes have at most 2 CPUs",
        "launcher.mem_gb=64 but its nodes have 23081 MB",
        "launcher.gpus_per_node=1 but its nodes have 0",
        "launcher.nodes=2 but it has 1 nodes",
        "launcher.timeout_min=240 but its time limit is 120 min",
    ):
        assert fix in message
    fits = {"cpus_per_task": 1, "mem_gb": None, "gpus_per_node": 0, "nodes": 1, "timeout_min": 60}
    assert "scontrol show job 5" in unschedulable_message("InvalidQOS", fits, nodes, 1, "5")
    assert [_minutes(t) for t in ("1-02:03:00", "30:00", "2:00:00", "infinite")] == [
        1563,
        30,
        120,
        None,
    ]


def started_twice(folder: str) -> int:
    """A job that waits to be interrupted the first time it starts, and returns its starts."""
    marks = Path(folder) / "starts"
    starts = int(marks.read_text()) + 1 if marks.exists() else 1
    marks.write_text(str(starts))
    if starts == 1:
        time.sleep(120)
    return starts


def test_a_local_job_at_its_time_limit_is_requeued_not_failed(tmp_path, monkeypatch):
    """Submitit signals a local job as it reaches `launcher.timeout_min`; the job is started
    again (it resumes from what it saved) instead of failing its stage."""
    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    launcher = {"kind": "local", "max_parallel": 1, "timeout_min": 5, "gpus_per_node": 0}
    jobs = tmp_path / "jobs"

    def signal_the_first_start() -> None:
        deadline = time.monotonic() + 60
        while not (tmp_path / "starts").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in local_worker_pids(jobs):
            os.kill(pid, signal.SIGUSR2)  # what the time limit sends

    watcher = threading.Thread(target=signal_the_first_start)
    watcher.start()
    seen: list = []
    run_jobs(
        launcher, jobs, started_twice, [str(tmp_path)], lambda *done: seen.append(done),
        name="musweep-target",
    )  # fmt: skip
    watcher.join()
    ((_, result, error),) = seen
    assert error is None and result == 2
