"""`launcher=slurm` against a real single-node SLURM (`launchers/slurm_local.sh` starts one)."""

import json
import subprocess

import pytest
from services import require, slurm_status

from sweep.config import compose_config, resolve_vocabulary
from sweep.edges.launch import LaunchError
from sweep.pipeline import Pipeline

STATUS = slurm_status()


@pytest.fixture(autouse=True)
def slurm():
    require(*STATUS)


def queued_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True)
    return set(out.stdout.split())


def make_cfg(tmp_path, *overrides):
    return compose_config(
        f"out_root={tmp_path}",
        "+ladder=gpt_tiny",
        "launcher=slurm",
        "launcher.cpus_per_task=1",
        "logger=none",
        *overrides,
    )


def test_pipeline_runs_on_slurm_with_the_transfer_grid_as_one_array(tmp_path):
    cfg = make_cfg(
        tmp_path,
        "tune.n_trials=3",
        "tune.widen_trials=0",
        "tune.n_startup_trials=2",
        "ladder.lr_max_points=3",
        "ladder.noise_seeds=0",
        "stages=[tune,transfer,target]",
    )
    summary = Pipeline(cfg).run()
    assert summary["tune"]["n_trials"] == 3
    assert len(list((tmp_path / "gpt_tiny" / "transfer").glob("*.json"))) == 12
    assert {"warm", "cold"} <= set(summary["target"])
    submitted = list((tmp_path / "gpt_tiny" / "jobs" / "transfer").glob("*_submitted.pkl"))
    array_ids = {p.name.split("_")[0] for p in submitted}
    # 2 parametrizations × 2 widths × 3 LRs: 12 tasks of one job array
    assert len(submitted) == 12 and len(array_ids) == 1
    run = json.loads(next((tmp_path / "gpt_tiny" / "transfer").glob("*.json")).read_text())
    assert run["run"]["seed"] == cfg.seed and "loss" in run


def test_unknown_partition_shows_the_sbatch_error_and_submits_nothing(tmp_path):
    before = queued_ids()
    cfg = make_cfg(tmp_path, "launcher.partition=no_such_partition")
    with pytest.raises(LaunchError, match=r"(?i)invalid partition"):
        Pipeline(cfg).run()
    assert queued_ids() <= before  # no new job


def preempt(job_id: str) -> None:
    """What SLURM sends on preemption: TERM, then submitit's USR2. slurmd delivers each signal
    asynchronously: a TERM still in flight would kill the `scontrol requeue` that submitit's USR2
    handler starts, so the TERM gets a moment to land first."""
    import time

    subprocess.run(["scancel", job_id, "--signal", "SIGTERM"], check=True)
    time.sleep(1)
    subprocess.run(["scancel", job_id, "--signal", "USR2"], check=True)


@pytest.mark.slow  # SLURM holds a requeued job about two minutes before it runs again
def test_preempted_target_run_is_requeued_and_replays_the_exact_losses(tmp_path):
    """A real preemption (`scancel --signal`): submitit requeues the job, which resumes from its
    checkpoint; the losses equal an uninterrupted run's bit for bit."""
    import time

    import submitit
    from omegaconf import OmegaConf

    from sweep.edges.launch import Requeueable, make_executor
    from sweep.stages.target import target_job, target_key

    cfg = make_cfg(
        tmp_path,
        "tune.n_trials=2",
        "tune.widen_trials=0",
        "tune.n_startup_trials=1",
        "stages=[tune]",
        "ladder.target_steps=300",
        "ladder.eval_every=10",
        "launcher=debug",
    )
    Pipeline(cfg).run()
    hparams = dict(cfg.ladder.hparams)
    container = OmegaConf.to_container(cfg, resolve=True)

    reference_dir = tmp_path / "reference"
    (reference_dir / "target").mkdir(parents=True)
    reference = target_job(
        {"cfg": container, "run_dir": str(reference_dir), "hparams": hparams, "kind": "cold",
         "source_hparams": hparams}
    )  # fmt: skip

    run_dir = tmp_path / "gpt_tiny"
    slurm = dict(container["launcher"], kind="slurm")
    executor = make_executor(slurm, tmp_path / "jobs")
    job = executor.submit(
        Requeueable(target_job),
        {"cfg": container, "run_dir": str(run_dir), "hparams": hparams, "kind": "cold",
         "source_hparams": hparams},
    )  # fmt: skip
    checkpoint = run_dir / "target" / f"{target_key('cold', hparams)}.ckpt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), "the job never wrote a checkpoint"
    interrupted = time.time()
    preempt(job.job_id)  # SIGTERM, then submitit's USR2 -> checkpoint() -> requeue
    while not job.paths.result_pickle.exists() and time.time() < deadline + 120:
        time.sleep(0.2)
    result = job.result()
    print(f"requeue to result: {time.time() - interrupted:.1f} s")
    assert "requeu" in job.stderr().lower() or job.stdout().count("Starting") >= 2
    assert result["result"]["train_loss"] == reference["result"]["train_loss"]
    assert result["result"]["val_loss"] == reference["result"]["val_loss"]
    assert isinstance(job, submitit.SlurmJob)


def tune_job_ids() -> list[str]:
    out = subprocess.run(
        ["squeue", "-h", "-n", "musweep-tune", "-o", "%i"], capture_output=True, text=True
    )
    return out.stdout.split()


@pytest.mark.slow  # SLURM holds a requeued job about two minutes before it runs again
def test_preempted_tune_worker_retries_its_trial_from_the_checkpoint(tmp_path):
    """Preempt the one tune worker mid-trial (SIGTERM, then submitit's USR2): the requeued job
    finds its trial, retries it from the checkpoint, and reaches an uninterrupted run's value."""
    import threading
    import time

    import optuna

    from sweep.config import data_config, run_config
    from sweep.core.checkpoint import load_checkpoint
    from sweep.core.data import load_corpus
    from sweep.core.train import train
    from sweep.stages.tune import open_or_create_study

    cfg = make_cfg(
        tmp_path,
        "stages=[tune]",
        "tune.n_trials=1",
        "tune.widen_trials=0",
        "tune.pruner=none",
        "ladder.tune_steps=1000",  # still running a second after the first checkpoint
        "ladder.eval_every=10",
    )
    run_dir = tmp_path / "gpt_tiny"
    ckpt = run_dir / "trials" / "0.ckpt"
    preempted: list[float] = []

    def preempt_after_a_checkpoint() -> None:
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                step = load_checkpoint(ckpt)["step"]
            except Exception:
                step = 0
            if step >= 20 and (ids := tune_job_ids()):
                preempt(ids[0])
                preempted.append(time.time())
                return
            time.sleep(0.1)

    thread = threading.Thread(target=preempt_after_a_checkpoint, daemon=True)
    thread.start()
    summary = Pipeline(cfg).run()
    print(f"preemption to tune done: {time.time() - preempted[0]:.1f} s")
    assert preempted, "the worker was never preempted"
    assert summary["tune"]["n_trials"] == 1
    first, retry = open_or_create_study(cfg, run_dir).get_trials(deepcopy=False)
    assert first.state is optuna.trial.TrialState.FAIL
    assert retry.state is optuna.trial.TrialState.COMPLETE
    assert retry.user_attrs["lineage"] == 0 and retry.user_attrs["resumed_from"] >= 20
    assert retry.user_attrs["worker"] == first.user_attrs["worker"]  # the requeued job itself
    hparams = dict(cfg.ladder.hparams) | retry.params
    resolve_vocabulary(cfg)
    run = run_config(cfg, cfg.ladder.widths[0], "mup", hparams, cfg.ladder.tune_steps, cfg.seed)
    reference, _ = train(run, load_corpus(data_config(cfg)))
    assert retry.value == reference.final_val_loss


def test_a_killed_driver_is_rerun_cancels_its_leftover_jobs_and_completes(tmp_path):
    """SIGKILL the driver while its transfer array is queued: the jobs outlive it; the same
    command cancels them, keeps every finished trial and point, and completes the run."""
    import signal
    import sys
    import time

    command = [
        sys.executable,
        "-m",
        "sweep.run",
        f"out_root={tmp_path}",
        "+ladder=gpt_tiny",
        "launcher=slurm",
        "launcher.cpus_per_task=1",
        "logger=none",
        "tune.n_trials=2",
        "tune.widen_trials=0",
        "tune.n_startup_trials=1",
        "ladder.lr_max_points=3",
        "ladder.noise_seeds=0",
        "stages=[tune,transfer,target]",
    ]
    run_dir = tmp_path / "gpt_tiny"
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    submitted = run_dir / "jobs" / "transfer" / "submitted.txt"
    deadline = time.time() + 300
    while not submitted.exists() and time.time() < deadline and driver.poll() is None:
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    array_id = submitted.read_text().split()[0]
    assert any(i.startswith(f"{array_id}_") for i in queued_ids()), "no job outlived the driver"

    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "cancelled 1 SLURM job" in again.stdout
    assert not any(i.startswith(f"{array_id}_") for i in queued_ids())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["tune"]["n_trials"] == 2 and summary["tune"]["n_failed"] == 0
    assert len(list((run_dir / "transfer").glob("*.json"))) == 12
    assert {"warm", "cold"} <= set(summary["target"])


def sleeps(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def test_a_job_that_can_never_start_is_said_within_a_minute(tmp_path, monkeypatch):
    """More CPUs per task than any node has: SLURM keeps the job pending (PartitionConfig)
    forever; the driver says so, with the setting to change, and cancels its jobs."""
    import os
    import time
    from pathlib import Path

    from sweep.edges.launch import run_jobs

    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    cpus = max(
        int(c.rstrip("+"))
        for c in subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%c"], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    launcher = {
        "kind": "slurm", "max_parallel": 2, "timeout_min": 5, "cpus_per_task": cpus + 2,
        "partition": None, "nodes": 1, "gpus_per_node": 0, "mem_gb": None, "account": None,
        "qos": None, "constraint": None, "setup": [], "additional": {},
    }  # fmt: skip
    before = queued_ids()
    start = time.monotonic()
    with pytest.raises(LaunchError) as caught:
        run_jobs(launcher, tmp_path / "jobs", sleeps, [1.0, 1.0], lambda *_: None, name="stuck")
    assert time.monotonic() - start < 60
    message = str(caught.value)
    assert "\n" not in message and "PartitionConfig" in message
    assert f"launcher.cpus_per_task={cpus + 2} but the partition's nodes have at most {cpus}" in (
        message
    )
    deadline = time.monotonic() + 30
    while queued_ids() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not queued_ids() - before, "the stuck jobs were left in the queue"
