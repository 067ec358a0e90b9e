"""Warmup-stable-decay: a run branched from a longer run's stable phase is the run of its own
length, loss for loss, so one long run gives the loss at any shorter length."""

from dataclasses import replace

import pytest

from sweep.core.checkpoint import load_checkpoint, save_checkpoint
from sweep.core.train import OptimConfig, lr_factor, snapshot_path, train

WSD = OptimConfig(lr=3e-3, warmup_steps=2, schedule="wsd", decay_fraction=0.25, min_lr_ratio=0.0)


class Killed(Exception):
    """The process running a training run dies."""


def killed_after(step: int):
    def on_progress(at: int, _metrics: dict) -> None:
        if at > step:
            raise Killed

    return on_progress


def test_the_wsd_schedule_holds_then_decays_over_the_last_fraction():
    factors = [lr_factor(t, WSD, 16) for t in range(16)]
    assert factors[:2] == [0.5, 1.0]  # warmup
    assert factors[2:12] == [1.0] * 10  # stable until the last quarter
    assert factors[12:] == pytest.approx([1.0, 0.75, 0.5, 0.25])  # linear decay towards 0


@pytest.fixture
def long_run_at_step_9(corpus, tiny_run, tmp_path):
    """A 24-step WSD run (stable until step 18), its checkpoint taken at step 9."""
    long = replace(tiny_run, optim=WSD, steps=24, eval_every=3)
    path = tmp_path / "long.ckpt"
    with pytest.raises(Killed):
        train(long, corpus, checkpoint_path=path, checkpoint_every=9, on_progress=killed_after(9))
    return long, path


def test_a_wsd_run_decayed_at_step_k_equals_a_run_scheduled_to_end_at_k(corpus, long_run_at_step_9):
    long, path = long_run_at_step_9
    short = replace(long, steps=12)  # decays over steps 9-11: its schedule is the long one's before
    alone, _ = train(short, corpus)
    branched, _ = train(short, corpus, branch_from=path)
    assert branched.resumed_from == 9 and alone.status == branched.status == "completed"
    assert branched.train_loss == alone.train_loss
    assert branched.val_loss == alone.val_loss


def test_one_long_run_with_snapshots_gives_every_shorter_run_by_a_short_decay(
    corpus, tiny_run, tmp_path
):
    long = replace(tiny_run, optim=WSD, steps=24, eval_every=3)
    path = tmp_path / "long.ckpt"
    full, _ = train(long, corpus, checkpoint_path=path, snapshots=(6, 9))
    assert full.status == "completed" and not (tmp_path / "long.step12.ckpt").exists()
    for length, branch in ((8, 6), (12, 9)):  # a run of `length` decays over its last quarter
        snapshot = snapshot_path(path, branch)
        assert load_checkpoint(snapshot)["step"] == branch
        alone, _ = train(replace(long, steps=length), corpus)
        branched, _ = train(replace(long, steps=length), corpus, branch_from=snapshot)
        assert branched.resumed_from == branch and branched.val_loss == alone.val_loss
    resumed, _ = train(long, corpus, checkpoint_path=path, snapshots=(6, 9))
    assert resumed.val_loss == full.val_loss  # the snapshots leave the run's own checkpoint be
    with pytest.raises(ValueError, match="give checkpoint_path"):
        train(long, corpus, snapshots=(6,))


def test_a_run_cannot_branch_where_the_schedules_already_differ(corpus, long_run_at_step_9):
    long, path = long_run_at_step_9
    with pytest.raises(ValueError, match="cannot branch at step 9"):
        train(replace(long, steps=9), corpus, branch_from=path)  # decaying at step 8
    with pytest.raises(ValueError, match="differs from it in length"):
        train(replace(long, steps=12, seed=1), corpus, branch_from=path)
    cosine = replace(long, optim=replace(WSD, schedule="cosine"))
    with pytest.raises(ValueError, match="differs from it in length"):
        train(replace(cosine, steps=12), corpus, branch_from=path)


def test_a_checkpoint_of_an_earlier_version_without_newer_optimizer_fields_resumes(
    corpus, tiny_run, tmp_path
):
    run = replace(tiny_run, steps=8)
    path = tmp_path / "run.ckpt"
    whole, _ = train(run, corpus)
    with pytest.raises(Killed):
        train(run, corpus, checkpoint_path=path, checkpoint_every=4, on_progress=killed_after(4))
    old = load_checkpoint(path)
    del old["run"]["optim"]["decay_fraction"]  # as an earlier version wrote it
    save_checkpoint(path, old)
    resumed, _ = train(run, corpus, checkpoint_path=path)
    assert resumed.resumed_from == 4 and resumed.val_loss == whole.val_loss


def test_a_ladder_trains_with_wsd(tmp_path):
    from sweep.config import compose_config
    from sweep.pipeline import Pipeline

    cfg = compose_config(
        f"out_root={tmp_path}", "+ladder=gpt_tiny", "logger=none", "launcher=debug",
        "stages=[tune]", "tune.n_trials=2", "tune.widen_trials=0", "ladder.schedule=wsd",
        "ladder.decay_fraction=0.3",
    )  # fmt: skip
    summary = Pipeline(cfg).run()
    assert summary["tune"]["n_complete"] + summary["tune"]["n_pruned"] == 2
    saved = (tmp_path / "gpt_tiny" / "experiment.yaml").read_text()
    assert "schedule: wsd" in saved and "decay_fraction: 0.3" in saved
