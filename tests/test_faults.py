"""Faults the pipeline survives: a worker killed mid-trial, a full disk, a killed driver."""

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest

from sweep.config import compose_config, data_config, resolve_vocabulary, run_config
from sweep.core.checkpoint import load_checkpoint
from sweep.core.data import load_corpus
from sweep.core.train import train
from sweep.edges.launch import local_worker_pids
from sweep.pipeline import Pipeline
from sweep.stages.tune import COUNTED, open_or_create_study


def make_cfg(tmp_path, *overrides):
    return compose_config(f"out_root={tmp_path}", "+ladder=gpt_tiny", "logger=none", *overrides)


def kill_workers_when(
    condition, jobs_folder: Path, stop: threading.Event, killed: list[int], just_one: bool = False
) -> None:
    """SIGKILL this run's Submitit worker processes (or `just_one` of them) once `condition()`
    holds (in a thread)."""
    while not stop.is_set():
        if condition() and (pids := local_worker_pids(jobs_folder)):
            for pid in pids[:1] if just_one else pids:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            return
        time.sleep(0.05)


def checkpoint_step(path: Path) -> int:
    try:
        return load_checkpoint(path)["step"]
    except Exception:  # not written yet
        return 0


def test_a_trial_killed_mid_run_is_retried_from_its_checkpoint(tmp_path):
    """SIGKILL the worker once trial 0 has checkpointed step 20 of 120: the driver fails the
    orphan, queues its retry, and the retry continues from the checkpoint to the same value an
    uninterrupted run of the same parameters reaches."""
    cfg = make_cfg(
        tmp_path,
        "stages=[tune]",
        "tune.n_trials=2",
        "tune.widen_trials=0",
        "tune.pruner=none",
        "ladder.tune_steps=120",
        "ladder.eval_every=10",
    )
    run_dir = tmp_path / "gpt_tiny"
    ckpt = run_dir / "trials" / "0.ckpt"
    stop, killed = threading.Event(), []
    killer = threading.Thread(
        target=kill_workers_when,
        args=(lambda: checkpoint_step(ckpt) >= 20, run_dir / "jobs" / "tune", stop, killed),
        daemon=True,
    )
    killer.start()
    summary = Pipeline(cfg).run()
    stop.set()
    assert killed, "the worker was never killed"
    assert summary["tune"]["n_trials"] == 2

    trials = open_or_create_study(cfg, run_dir).get_trials(deepcopy=False)
    assert trials[0].state is optuna.trial.TrialState.FAIL
    retried = [t for t in trials if t.number > 0 and t.user_attrs.get("lineage") == 0]
    assert len(retried) == 1 and retried[0].state is optuna.trial.TrialState.COMPLETE
    assert retried[0].params == trials[0].params
    assert retried[0].user_attrs["resumed_from"] >= 20

    hparams = dict(cfg.ladder.hparams) | retried[0].params
    resolve_vocabulary(cfg)
    run = run_config(cfg, cfg.ladder.widths[0], "mup", hparams, cfg.ladder.tune_steps, cfg.seed)
    reference, _ = train(run, load_corpus(data_config(cfg)))
    assert retried[0].value == reference.final_val_loss
    assert not list((run_dir / "trials").glob("*.ckpt")), "finished trials keep no checkpoint"


def limit_file_size(limit: int):
    def preexec() -> None:  # a full disk, as the child sees it: writes past `limit` fail
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_a_full_disk_is_a_clear_error_and_nothing_half_written_counts(tmp_path):
    """Writes past 3 MB fail (the target's checkpoint, 5.5 MB, is larger; the proxy's and the
    source's are not): the command ends with one error line, no result is half-written, and the
    same command then completes."""
    load_corpus(data_config(make_cfg(tmp_path)))  # the shared corpus cache is not ours to fill
    command = [
        sys.executable,
        "-m",
        "sweep.run",
        f"out_root={tmp_path}",
        "+ladder=gpt_tiny",
        "logger=none",
        "launcher=debug",
        "tune.n_trials=2",
        "tune.widen_trials=0",
        "tune.n_startup_trials=1",
        "ladder.lr_max_points=3",
        "ladder.noise_seeds=0",
        "stages=[tune,transfer,target]",
    ]
    full = subprocess.run(
        command, capture_output=True, text=True, preexec_fn=limit_file_size(3 * 2**20)
    )
    assert full.returncode == 2, full.stderr[-2000:]
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1, full.stderr[-3000:]  # one line: no trace on the console
    assert lines[0].startswith("error:") and "File too large" in lines[0], full.stderr[-2000:]
    run_dir = tmp_path / "gpt_tiny"
    assert not list(run_dir.rglob(".*.tmp")), "a temporary file was left behind"
    assert not list((run_dir / "target").glob("warm_*.json"))
    for ckpt in run_dir.rglob("*.ckpt"):
        load_checkpoint(ckpt)  # whatever is there is whole (checksum passes)

    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert list((run_dir / "target").glob("warm_*.json"))


def test_a_worker_killed_mid_study_loses_no_trial(tmp_path):
    """SIGKILL one of 2 workers on a journal study once 2 trials are counted: its trial is
    failed and retried, the study reaches its total, and no parameters are tried twice."""
    cfg = make_cfg(
        tmp_path,
        "stages=[tune]",
        "tune.workers=2",
        "tune.storage=journal",
        "launcher.max_parallel=2",
        "tune.n_trials=8",
        "tune.widen_trials=0",
        "ladder.tune_steps=10",
        "ladder.eval_every=5",
    )
    run_dir = tmp_path / "gpt_tiny"

    def counted() -> int:
        if not (run_dir / "study.journal").exists():
            return 0
        study = open_or_create_study(cfg, run_dir)
        return len(study.get_trials(deepcopy=False, states=COUNTED))

    stop, killed = threading.Event(), []
    killer = threading.Thread(
        target=kill_workers_when,
        args=(lambda: counted() >= 2, run_dir / "jobs" / "tune", stop, killed, True),
        daemon=True,
    )
    killer.start()
    Pipeline(cfg).run()
    stop.set()
    assert killed, "no worker was killed"
    trials = open_or_create_study(cfg, run_dir).get_trials(deepcopy=False)
    done = [t for t in trials if t.state in COUNTED]
    assert len(done) == 8
    assert len({tuple(sorted(t.params.items())) for t in done}) == 8


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_driver_stops_its_local_jobs_and_says_so_in_one_line(tmp_path, signum):
    """SIGTERM (`kill`, a scheduler) or SIGINT (Ctrl-C) on the driver while a local job trains:
    the job's process is gone when the driver has exited, and the driver says in one line how
    to resume, with the signal's exit status."""
    jobs = tmp_path / "gpt_tiny" / "jobs" / "tune"
    driver = subprocess.Popen(
        [
            sys.executable, "-m", "sweep.run", "+ladder=gpt_tiny", f"out_root={tmp_path}",
            "logger=none", "stages=[tune]", "ladder.tune_steps=100000", "ladder.eval_every=100",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not local_worker_pids(jobs) and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = local_worker_pids(jobs)
    assert workers, "no job started"
    driver.send_signal(signum)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 128 + signum
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"interrupted ({signal.Signals(signum).name}): this run's jobs")
    assert "rerun the same command to resume" in lines[0]
    assert not local_worker_pids(jobs)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
