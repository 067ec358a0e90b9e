"""Runs can be watched while they train: W&B rows and job log lines appear as training goes, not
in one burst at the end."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import submitit
from wandb_records import history

from sweep.core.model import GPTConfig
from sweep.core.train import OptimConfig, RunConfig, train
from sweep.edges.tracking import format_seconds, live_progress, wandb_run

LOGGER = {"kind": "wandb", "project": "musweep-test", "entity": None, "mode": "offline"}


def slow_training(folder: str) -> int:
    """A Submitit job: a tiny run logged to offline W&B, slowed down at every evaluation so that
    a reader has time to look while it trains."""
    from sweep.core.data import DataConfig, load_corpus

    run = RunConfig(
        model=GPTConfig(d_model=32, d_head=8, seq_len=32, n_layer=1),
        optim=OptimConfig(lr=3e-3),
        steps=60,
        batch_size=4,
        eval_every=5,
        eval_batches=1,
    )

    def slow(step: int, loss: float) -> bool:
        time.sleep(0.5)
        return False

    with wandb_run(LOGGER, Path(folder), "test", "slow", {}) as wb:
        result, _ = train(
            run,
            load_corpus(DataConfig()),
            on_eval=slow,
            on_progress=live_progress(wb, "slow", run.steps),
        )
    return result.steps_done


def logged_rows(folder: Path) -> int:
    files = list(folder.glob("wandb/offline-run-*/run-*.wandb"))
    return len(history(files[0])) if files else 0


def test_a_running_job_has_already_logged_rows(tmp_path, monkeypatch):
    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    executor = submitit.LocalExecutor(folder=tmp_path / "jobs")
    executor.update_parameters(timeout_min=5)
    job = executor.submit(slow_training, str(tmp_path))
    first_seen = 0  # rows in the file the first time any was there, the job still running
    deadline = time.monotonic() + 120
    while not job.done() and time.monotonic() < deadline and not first_seen:
        rows = logged_rows(tmp_path)
        if rows and not job.done():
            first_seen = rows
        time.sleep(0.1)
    assert job.result() == 60
    assert 0 < first_seen < 61, f"the first rows appeared only with the last ({first_seen})"
    rows = history(next(tmp_path.glob("wandb/offline-run-*/run-*.wandb")))
    assert sum("train/loss" in row for row in rows) == 60
    assert sum("val/loss" in row for row in rows) == 13  # step 0, then every 5
    out = Path(job.paths.stdout).read_text()
    lines = [line for line in out.splitlines() if line.startswith("slow: step")]
    assert len(lines) == 13 and lines[-1].startswith("slow: step 60/60 | val loss ")
    assert "tok/s" in lines[-1] and "ETA 0:00" in lines[-1]


def test_progress_rows_are_every_row_once_in_step_order_also_after_a_resume(
    corpus, tiny_run, tmp_path, one_thread
):
    seen: list[tuple[int, dict]] = []
    path = tmp_path / "run.ckpt"

    def crash(step: int, _loss: float) -> bool:
        if step == 8:
            raise KeyboardInterrupt
        return False

    with contextlib.suppress(KeyboardInterrupt):
        train(tiny_run, corpus, on_eval=crash, checkpoint_path=path, checkpoint_every=4)
    result, _ = train(
        tiny_run,
        corpus,
        on_progress=lambda step, metrics: seen.append((step, metrics)),
        checkpoint_path=path,
    )
    assert result.resumed_from == 4
    steps = [step for step, _ in seen]
    assert steps == sorted(steps)
    train_rows = [(s, m["train/loss"]) for s, m in seen if "train/loss" in m]
    val_rows = [(s, m["val/loss"]) for s, m in seen if "val/loss" in m]
    assert train_rows == result.train_loss and val_rows == result.val_loss


def test_durations_read_like_a_progress_bar():
    assert [format_seconds(s) for s in (7, 205, 3723)] == ["0:07", "3:25", "1:02:03"]
