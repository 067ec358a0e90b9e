"""`launcher=slurm` against a real single-node SLURM (`launchers/slurm_local.sh` starts one)."""

import json
import shutil
import subprocess

import pytest
from hydra import compose, initialize_config_dir

from sweep.config import config_dir, register_configs
from sweep.launch import LaunchError
from sweep.pipeline import Pipeline


def slurm_is_up() -> bool:
    if shutil.which("sbatch") is None:
        return False
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return probe.returncode == 0 and any(
        state in probe.stdout for state in ("idle", "mixed", "allocated")
    )


pytestmark = pytest.mark.skipif(
    not slurm_is_up(), reason="no running SLURM: run `launchers/slurm_local.sh` as root"
)
register_configs()


def queued_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True)
    return set(out.stdout.split())


def make_cfg(tmp_path, *overrides):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose(
            "config",
            overrides=[
                f"out_root={tmp_path}",
                "+ladder=gpt_tiny",
                "launcher=slurm",
                "launcher.cpus_per_task=1",
                "logger=none",
                *overrides,
            ],
        )


def test_pipeline_runs_on_slurm_with_the_transfer_grid_as_one_array(tmp_path):
    cfg = make_cfg(
        tmp_path,
        "tune.n_trials=3",
        "tune.n_startup_trials=2",
        "ladder.lr_grid=[-9,-6]",
        "stages=[tune,transfer,target]",
    )
    summary = Pipeline(cfg).run()
    assert summary["tune"]["n_trials"] == 3
    assert len(list((tmp_path / "gpt_tiny" / "transfer").glob("*.json"))) == 8
    assert {"warm", "cold"} <= set(summary["target"])
    submitted = list((tmp_path / "gpt_tiny" / "jobs" / "transfer").glob("*_submitted.pkl"))
    array_ids = {p.name.split("_")[0] for p in submitted}
    assert len(submitted) == 8 and len(array_ids) == 1  # 8 tasks of one job array
    point = json.loads(next((tmp_path / "gpt_tiny" / "transfer").glob("*.json")).read_text())
    assert len(point["losses"]) == 1


def test_unknown_partition_shows_the_sbatch_error_and_submits_nothing(tmp_path):
    before = queued_ids()
    cfg = make_cfg(tmp_path, "launcher.partition=no_such_partition")
    with pytest.raises(LaunchError, match=r"(?i)invalid partition"):
        Pipeline(cfg).run()
    assert queued_ids() <= before  # no new job


@pytest.mark.slow  # SLURM holds a requeued job about two minutes before it runs again
def test_preempted_target_run_is_requeued_and_replays_the_exact_losses(tmp_path):
    """A real preemption (`scancel --signal`): submitit requeues the job, which resumes from its
    checkpoint; the losses equal an uninterrupted run's bit for bit."""
    import time

    import submitit
    from omegaconf import OmegaConf

    from sweep.launch import Requeueable, make_executor
    from sweep.target import target_job

    cfg = make_cfg(
        tmp_path,
        "tune.n_trials=2",
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
        {"cfg": container, "run_dir": str(reference_dir), "hparams": hparams, "kind": "cold"}
    )

    run_dir = tmp_path / "gpt_tiny"
    slurm = dict(container["launcher"], kind="slurm")
    executor = make_executor(slurm, tmp_path / "jobs")
    job = executor.submit(
        Requeueable(target_job),
        {"cfg": container, "run_dir": str(run_dir), "hparams": hparams, "kind": "cold"},
    )
    checkpoint = run_dir / "target" / "cold.ckpt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), "the job never wrote a checkpoint"
    interrupted = time.time()
    job._interrupt()  # preemption: SIGTERM, then submitit's USR2 -> checkpoint() -> requeue
    while not job.paths.result_pickle.exists() and time.time() < deadline + 120:
        time.sleep(0.2)
    result = job.result()
    print(f"requeue to result: {time.time() - interrupted:.1f} s")
    assert "requeu" in job.stderr().lower() or job.stdout().count("Starting") >= 2
    assert result["result"]["train_loss"] == reference["result"]["train_loss"]
    assert result["result"]["val_loss"] == reference["result"]["val_loss"]
    assert isinstance(job, submitit.SlurmJob)
