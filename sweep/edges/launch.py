"""Job submission through Submitit: subprocesses here ("local"), this process ("debug"), or SLURM.

A stage hands `run_jobs` a function and one spec per job; results come back through a callback as
jobs finish, so the driver can show progress and write each result before the next arrives. Jobs
are submitted at most `max_parallel` at a time (SLURM: as one array with that parallelism). A job
that raises is reported to the callback as its exception: the stage records it and carries on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import submitit

POLL_SECONDS = 0.25
# submitit asks `sacct` for job states and warns at every poll when accounting is off; the
# launcher reads result files and `squeue` instead.
logging.getLogger("submitit").setLevel(logging.ERROR)
LOG = logging.getLogger("musweep")


class Requeueable(submitit.helpers.Checkpointable):
    """A job that survives preemption and time-outs: on SLURM's signal (or a local job's, as it
    reaches `launcher.timeout_min`) submitit requeues the same call, and the job's own state on
    disk makes the rerun continue (training resumes from its last checkpoint, finished transfer
    points and trials are skipped)."""

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn

    def __call__(self, spec: Any) -> Any:
        return self.fn(spec)


def make_executor(launcher: dict, folder: Path, parallel: bool = False) -> submitit.Executor:
    """An executor for single-process jobs (a trial, a transfer point: one GPU each when there
    are GPUs) or, with `parallel`, data-parallel jobs (`nodes` × `tasks_per_node` processes over
    all the GPUs of each node)."""
    kind = launcher["kind"]
    gpus = launcher["gpus_per_node"]
    tasks = launcher.get("tasks_per_node") or 1
    if kind == "debug":
        return submitit.DebugExecutor(folder=folder)
    if kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=launcher["timeout_min"])
        if parallel:
            executor.update_parameters(tasks_per_node=tasks, gpus_per_node=gpus)
        return executor
    executor = submitit.SlurmExecutor(folder=folder)
    optional = {
        "partition": launcher["partition"],
        "account": launcher["account"],
        "qos": launcher["qos"],
        "constraint": launcher["constraint"],
        "mem": f"{int(launcher['mem_gb'] * 1024)}M" if launcher["mem_gb"] else None,
        "gpus_per_node": (gpus if parallel else min(gpus, 1)) or None,
    }
    executor.update_parameters(
        time=launcher["timeout_min"],
        nodes=launcher["nodes"] if parallel else 1,
        ntasks_per_node=tasks if parallel else 1,
        cpus_per_task=launcher["cpus_per_task"],
        array_parallelism=launcher["max_parallel"],
        setup=list(launcher["setup"]),
        additional_parameters=dict(launcher["additional"]),
        **{key: value for key, value in optional.items() if value is not None},
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
    parallel: bool = False,
) -> None:
    """Run `fn(spec)` for every spec; call `on_done(spec, result, error)` as each job ends.

    `parallel` jobs are data-parallel (every process of the job calls `fn`; the first one's
    result is reported). Locally with GPUs, single-process jobs run one per GPU, each seeing
    only its own (`CUDA_VISIBLE_DEVICES`), and a data-parallel job takes them all.
    `on_poll` is called while waiting, so the caller can refresh a progress display.
    """
    if not specs:
        return
    executor = make_executor(launcher, folder, parallel)
    kind = launcher["kind"]
    debug = kind == "debug"  # debug jobs run in this process when asked for results
    if kind == "slurm":
        running, watch = _submit_array(executor, launcher, folder, fn, specs, name, parallel)
        pending = []
    else:
        pending, running, watch = list(specs), [], None
    gpus = launcher["gpus_per_node"] if kind == "local" else 0
    free_gpus = list(range(gpus)) if gpus and not parallel else []
    gpu_of: dict[int, int] = {}  # id(job) -> the GPU it holds
    if debug:
        limit = 1
    elif gpus:
        limit = 1 if parallel else gpus  # a data-parallel job holds every GPU
    else:
        limit = launcher["max_parallel"]
    try:
        while pending or running:
            while pending and len(running) < limit:
                spec = pending.pop(0)
                if free_gpus:
                    gpu = free_gpus.pop(0)
                    executor.update_parameters(gpus_per_node=1, visible_gpus=[gpu])
                with ctrl_c_left_to_the_driver():  # past its time a job resumes, not fails
                    job = executor.submit(Requeueable(fn) if kind == "local" else fn, spec)
                if gpus and not parallel:
                    gpu_of[id(job)] = gpu
                running.append((spec, job))
            still = _collect(running, on_done, block=debug, on_poll=on_poll, name=name, watch=watch)
            kept = {id(job) for _, job in still}
            free_gpus += [
                gpu_of.pop(id(job))
                for _, job in running
                if id(job) not in kept and id(job) in gpu_of
            ]
            running = still
    except BaseException:  # an interrupt, or a stage giving up: no job outlives its driver
        stop_jobs([job for _, job in running], folder)
        raise


STOP_WAIT_S = 10.0  # how long a local job's controller may take to exit once its work is killed


def stop_jobs(jobs: Sequence[submitit.Job], folder: Path) -> None:
    """Stop a driver's running jobs: SLURM's cancelled; local ones' work killed (what they
    finished and their last checkpoint are kept, as after any crash), then their Submitit
    controllers, which exit once their work has, killed if they have not within
    `STOP_WAIT_S`."""
    slurm = sorted({job.job_id.split("_")[0] for job in jobs if isinstance(job, submitit.SlurmJob)})
    if slurm:
        subprocess.run(["scancel", *slurm], check=False, capture_output=True)
    for pid in local_worker_pids(folder):  # a job's work ignores SIGTERM (Submitit's bypass)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    local = [job for job in jobs if isinstance(job, submitit.LocalJob)]
    deadline = time.monotonic() + STOP_WAIT_S
    while any(_alive(job) for job in local) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    for job in local:
        if _alive(job):
            job._process.kill()  # submitit keeps the controller's process; it has no kill


def _alive(job: submitit.LocalJob) -> bool:
    process = getattr(job, "_process", None)
    return process is not None and process.poll() is None


@contextlib.contextmanager
def ctrl_c_left_to_the_driver() -> Iterator[None]:
    """Local jobs started inside ignore SIGINT (the disposition is inherited): Ctrl-C reaches
    the whole terminal's process group, and a job's controller would print its own traceback;
    the driver stops its jobs itself (`stop_jobs`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _submit_array(
    executor,
    launcher: dict,
    folder: Path,
    fn: Callable,
    specs: Sequence[Any],
    name: str,
    parallel: bool,
) -> tuple[list, QueueWatch]:
    """Every spec as one SLURM job array (SLURM enforces its parallelism), its id recorded for
    `cancel_leftover_jobs` after a crash; the running (spec, job) pairs and their queue watch."""
    executor.update_parameters(job_name=name)
    try:
        with executor.batch():
            jobs = [executor.submit(Requeueable(fn), spec) for spec in specs]
    except Exception as e:  # sbatch refused: show its own words, nothing was submitted
        raise LaunchError(f"sbatch refused the {name} jobs: {e}") from e
    with (folder / SUBMITTED).open("a") as f:
        f.write(f"{jobs[0].job_id.split('_')[0]}\n")
    tasks = (launcher.get("tasks_per_node") or 1) if parallel else 1
    return list(zip(specs, jobs, strict=True)), QueueWatch(launcher, name, tasks)


class JobFailed(RuntimeError):
    """A job that ended without its result, said in one line: which job, why (the last line of
    its exception) and the log that holds the full trace. No Submitit trace reaches the console."""

    def __init__(self, name: str, job_id: str, cause: str, log: Path | None):
        where = f"; full trace in {log}" if log is not None else ""
        super().__init__(f"{name} job {job_id} failed: {cause}{where}")
        self.cause, self.log = cause, log


def cause_of(error: BaseException) -> str:
    """The one line that says why a job failed: the exception line at the end of a Submitit
    trace ("ValueError: ..."), or the error's own first line."""
    text = str(error)
    if isinstance(error, submitit.core.utils.FailedJobError):
        trace = text.split("You can check full logs")[0]
        lines = [line.strip() for line in trace.splitlines()]
        lines = [line for line in lines if line and set(line) != {"-"}]
        if lines:
            return lines[-1]
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def job_failure(name: str, job: submitit.Job, error: BaseException) -> JobFailed:
    log = Path(job.paths.stderr)
    return JobFailed(name, str(job.job_id), cause_of(error), log if log.exists() else None)


class LaunchError(RuntimeError):
    """The scheduler refused the jobs (e.g. an unknown partition); its message is SLURM's."""


SUBMITTED = "submitted.txt"  # SLURM job ids a driver submitted from this folder, one a line


def cancel_leftover_jobs(jobs_root: Path, wait_s: float = 60.0) -> int:
    """Cancel SLURM jobs that an earlier, killed driver left in the queue; wait until they are
    gone. Their work is not lost (training resumes from checkpoints, finished points and trials
    are kept) and without this the new driver would run the same work twice."""
    submitted = {
        line.strip()
        for path in jobs_root.glob(f"*/{SUBMITTED}")
        for line in path.read_text().splitlines()
        if line.strip()
    }
    if not submitted:
        return 0
    leftover = _queued_job_ids() & submitted
    if leftover:
        subprocess.run(["scancel", *sorted(leftover)], check=True)
    deadline = time.monotonic() + wait_s
    while _queued_job_ids() & leftover:
        if time.monotonic() > deadline:
            raise LaunchError(f"SLURM jobs {sorted(leftover)} did not leave the queue")
        time.sleep(POLL_SECONDS)
    return len(leftover)


LOCAL_WORKER = "submitit.core._submit"  # the command line of a Submitit local job


def local_worker_pids(jobs_folder: Path) -> list[int]:
    """Process ids of the local Submitit workers running jobs of this folder (their command line
    names it), so that fault drills and cleanups touch only this run's jobs, never another's."""
    pattern = f"{LOCAL_WORKER} {jobs_folder.resolve()}"
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def _queued_job_ids() -> set[str]:
    """Ids of the jobs SLURM holds, an array once (its tasks' "123_4" become "123")."""
    return {i.split("_")[0] for i in _queued_slurm_ids()}


# Pending reasons that waiting cannot resolve: the request exceeds what the partition, the QOS or
# the account allows, or names something that does not exist. (Resources, Priority and the
# per-user running-job limits resolve themselves as other jobs end.)
STUCK_REASONS = frozenset(
    {
        "PartitionConfig",
        "ReqNodeNotAvail",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
        "BadConstraints",
        "InvalidAccount",
        "InvalidQOS",
        "DependencyNeverSatisfied",
        "QOSMaxCpuPerJobLimit",
        "QOSMaxGRESPerJob",
        "QOSMaxMemoryPerJob",
        "QOSMaxNodePerJobLimit",
        "QOSMaxWallDurationPerJobLimit",
        "AssocMaxCpuPerJobLimit",
        "AssocMaxNodesPerJobLimit",
        "AssocMaxWallDurationPerJobLimit",
    }
)
STUCK_AFTER_S = 15.0  # a reason must persist this long (SLURM may still be placing the job)


def slurm_queue() -> dict[str, tuple[str, str]]:
    """{job id: (state, reason)} of every job SLURM holds (array tasks one each)."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i|%T|%r"], capture_output=True, text=True, check=True
    ).stdout
    queue = {}
    for line in out.splitlines():
        job_id, state, reason = [*line.split("|"), "", ""][:3]
        queue[job_id.strip()] = (state.strip(), reason.strip())
    return queue


def partition_nodes(partition: str | None) -> list[dict[str, Any]]:
    """CPUs, memory (MB), GPUs and time limit (minutes; None: none) of the partition's nodes."""
    command = ["sinfo", "-h", "-N", "-o", "%c|%m|%G|%l", *(["-p", partition] if partition else [])]
    out = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    nodes = []
    for line in out.splitlines():
        cpus, mem, gres, limit = [*line.split("|"), "", "", "", ""][:4]
        gpus = sum(int(m) for m in re.findall(r"gpu(?::[^:(,]+)?:(\d+)", gres))
        nodes.append(
            {
                "cpus": int(cpus.rstrip("+") or 0),
                "mem_mb": int(mem.rstrip("+") or 0),
                "gpus": gpus,
                "time_min": _minutes(limit.strip()),
            }
        )
    return nodes


def _minutes(limit: str) -> int | None:
    """SLURM's [days-]hours:minutes:seconds as minutes; None for "infinite"."""
    if not limit or limit in ("infinite", "UNLIMITED"):
        return None
    days, _, clock = limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, _ = parts
    return int(days or 0) * 24 * 60 + hours * 60 + minutes


def unschedulable_message(
    reason: str, launcher: dict, nodes: list[dict[str, Any]], tasks: int, job_id: str
) -> str:
    """Why a job pending for `reason` will never start, and the setting to change."""
    fixes = []
    if nodes:
        cpus = max(n["cpus"] for n in nodes)
        if launcher["cpus_per_task"] * tasks > cpus:
            fixes.append(
                f"launcher.cpus_per_task={launcher['cpus_per_task']}"
                + (f" × {tasks} tasks" if tasks > 1 else "")
                + f" but the partition's nodes have at most {cpus} CPUs"
            )
        mem = max(n["mem_mb"] for n in nodes)
        if launcher.get("mem_gb") and launcher["mem_gb"] * 1024 > mem:
            fixes.append(f"launcher.mem_gb={launcher['mem_gb']} but its nodes have {mem} MB")
        gpus = max(n["gpus"] for n in nodes)
        if launcher.get("gpus_per_node", 0) > gpus:
            fixes.append(
                f"launcher.gpus_per_node={launcher['gpus_per_node']} but its nodes have {gpus}"
            )
        if launcher.get("nodes", 1) > len(nodes):
            fixes.append(f"launcher.nodes={launcher['nodes']} but it has {len(nodes)} nodes")
        limits = [n["time_min"] for n in nodes if n["time_min"] is not None]
        if limits and launcher["timeout_min"] > max(limits):
            fixes.append(
                f"launcher.timeout_min={launcher['timeout_min']} but its time limit is "
                f"{max(limits)} min"
            )
    detail = "; ".join(fixes) or f"see `scontrol show job {job_id}`"
    return f"SLURM will never start job {job_id} (pending: {reason}): {detail}"


def _queued_slurm_ids() -> set[str]:
    """Job ids SLURM still holds (array tasks one per line). Needs no accounting (no sacct)."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def _finished(job: submitit.Job, queued: set[str] | None) -> bool:
    """A job has ended when its result file exists, or (SLURM) when the queue no longer has it.

    `job.done()` asks `sacct` on SLURM, which a cluster without accounting lacks.
    """
    if queued is None:
        return job.done()
    return job.paths.result_pickle.exists() or job.job_id not in queued


class QueueWatch:
    """Watches a stage's SLURM jobs while they wait: a job pending for a reason that cannot
    resolve itself (`STUCK_REASONS`) for `STUCK_AFTER_S` has the stage's jobs cancelled and
    raises `LaunchError` with the reason and the setting to change; jobs waiting for resources
    are said to be waiting, once per change."""

    def __init__(self, launcher: dict, name: str, tasks: int):
        self.launcher, self.name, self.tasks = launcher, name, tasks
        self.stuck_since: dict[str, float] = {}
        self.said = ""

    def check(self, queue: dict[str, tuple[str, str]], jobs: list[submitit.Job]) -> None:
        now, waiting = time.monotonic(), {}
        for job in jobs:
            state, reason = queue.get(job.job_id, ("", ""))
            if state != "PENDING":
                self.stuck_since.pop(job.job_id, None)
                continue
            if reason not in STUCK_REASONS:
                self.stuck_since.pop(job.job_id, None)
                waiting[reason] = waiting.get(reason, 0) + 1
                continue
            since = self.stuck_since.setdefault(job.job_id, now)
            if now - since >= STUCK_AFTER_S:
                ids = sorted({j.job_id.split("_")[0] for j in jobs})
                subprocess.run(["scancel", *ids], check=False)
                nodes = partition_nodes(self.launcher.get("partition"))
                raise LaunchError(
                    f"{self.name}: "
                    + unschedulable_message(reason, self.launcher, nodes, self.tasks, job.job_id)
                    + "; its jobs are cancelled"
                )
        said = ", ".join(f"{n} for {r or 'a slot'}" for r, n in sorted(waiting.items()))
        if said != self.said:
            self.said = said
            if said:
                LOG.info("%s: jobs waiting in the SLURM queue: %s", self.name, said)


def _collect(
    running: list,
    on_done: Callable,
    block: bool,
    on_poll: Callable | None,
    name: str = "musweep",
    watch: QueueWatch | None = None,
) -> list:
    """Report finished jobs; return those still running (waits for one when `block`)."""
    slurm = bool(running) and isinstance(running[0][1], submitit.SlurmJob)
    while True:
        still = []
        queue = slurm_queue() if slurm else None
        queued = set(queue) if queue is not None else None
        for spec, job in running:
            if block or _finished(job, queued):
                if queued is not None and not job.paths.result_pickle.exists():
                    error: BaseException | None = submitit.core.utils.UncompletedJobError(
                        "it left the SLURM queue without a result (killed, timed out or cancelled)"
                    )
                else:
                    error = job.exception()
                if error is not None:
                    error = job_failure(name, job, error)
                on_done(spec, None if error else job.results()[0], error)  # rank 0's
            else:
                still.append((spec, job))
        if len(still) < len(running) or not still:
            return still
        if watch is not None and queue is not None:
            watch.check(queue, [job for _, job in still])
        if on_poll is not None:
            on_poll()
        time.sleep(POLL_SECONDS)
