"""Device, precision and micro-batching: the options compose, bad combinations are refused in
one line before any job, and each option changes how a run executes, not what it computes
(bf16 excepted, which changes the arithmetic and is kept apart in checkpoints)."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from hydra.errors import ConfigCompositionException

from sweep.config import (
    check_hardware,
    compose_config,
    execution,
    job_config,
    plain,
    resolve_hardware,
)
from sweep.core import distributed as D
from sweep.core.checkpoint import load_checkpoint, save_checkpoint
from sweep.core.flops import flops_per_token
from sweep.core.hardware import Execution, mfu, peak_flops
from sweep.core.model import GPT
from sweep.core.train import make_optimizer, train


def tiny(*overrides: str):
    return compose_config("+ladder=gpt_tiny", *overrides)


def test_auto_resolves_to_the_cpu_without_gpus():
    cfg = tiny()
    if not torch.cuda.is_available():  # a stage called directly resolves with what it sees
        assert execution(cfg) == Execution()
    check_hardware(cfg, visible_gpus=0)
    resolve_hardware(cfg, visible_gpus=0)
    hw = cfg.hardware
    assert (hw.device, hw.precision, hw.compile, hw.sync_every) == ("cpu", "fp32", False, 1)
    assert cfg.launcher.tasks_per_node == 1
    assert execution(cfg) == Execution()  # the CPU path trains exactly as a bare `train` call


def test_a_job_resolves_its_read_only_config_without_changing_it():
    """A job's config is read-only (no job may change what the others see); one a script built
    without the driver's resolution still trains, on a copy."""
    cfg = job_config(plain(tiny()))
    assert execution(cfg).device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert cfg.hardware.device == "auto"  # the shared config is untouched


def test_auto_takes_every_local_gpu_in_bf16_with_compile():
    cfg = tiny()
    check_hardware(cfg, visible_gpus=4)
    resolve_hardware(cfg, visible_gpus=4)
    assert (cfg.hardware.device, cfg.hardware.precision, cfg.hardware.compile) == (
        "cuda",
        "bf16",
        True,
    )
    assert cfg.launcher.gpus_per_node == 4 and cfg.launcher.tasks_per_node == 4
    assert execution(cfg).sync_every > 1  # no host sync every step on a GPU


def test_slurm_gpus_give_one_process_per_gpu_over_the_nodes():
    cfg = tiny("launcher=slurm", "launcher.gpus_per_node=8", "launcher.nodes=2")
    cfg.ladder.batch_size = 32
    check_hardware(cfg, visible_gpus=0)  # the login node has none; the jobs will
    resolve_hardware(cfg, visible_gpus=0)
    assert cfg.hardware.device == "cuda" and cfg.launcher.tasks_per_node == 8


@pytest.mark.parametrize(
    ("overrides", "gpus", "message"),
    [
        (["hardware.device=cuda"], 0, "hardware.device=cuda but this machine has no GPU"),
        (["launcher.gpus_per_node=2", "hardware.device=cpu"], 2, "leaves idle"),
        (["launcher=slurm", "hardware.device=cuda"], 0, "needs launcher.gpus_per_node > 0"),
        (["launcher.gpus_per_node=4"], 2, "launcher.gpus_per_node=4 but this machine has 2"),
        (["launcher.nodes=2"], 0, "launcher.nodes=2 needs launcher=slurm"),
        (["launcher=debug", "launcher.tasks_per_node=2"], 0, "launcher=debug runs one process"),
        (["launcher.tasks_per_node=3"], 0, "must split evenly over the 3 processes"),
        (["launcher.gpus_per_node=2", "launcher.tasks_per_node=4"], 2, "one per GPU"),
        (["hardware.micro_batch_size=3"], 0, "hardware.micro_batch_size (3) must divide"),
        (["launcher.tasks_per_node=2", "hardware.micro_batch_size=8"], 0, "each process's rows"),
        (["hardware.sync_every=0"], 0, "hardware.sync_every must be positive"),
        (["hardware.peak_tflops=-1"], 0, "hardware.peak_tflops must be positive"),
    ],
)
def test_impossible_hardware_is_refused_with_the_field_named(overrides, gpus, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_hardware(tiny(*overrides), visible_gpus=gpus)


def test_unknown_precision_fails_at_composition():
    with pytest.raises(ConfigCompositionException, match="fp16"):
        tiny("hardware.precision=fp16")


def test_cuda_without_a_gpu_is_one_line_before_any_job(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this check needs a machine without a GPU")
    command = [
        "-m",
        "sweep.run",
        "+ladder=gpt_tiny",
        "hardware.device=cuda",
        f"out_root={tmp_path}",
    ]
    proc = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: hardware.device=cuda but this machine has no GPU that torch can see"
    ]
    assert not (tmp_path / "gpt_tiny").exists()


def test_bf16_autocast_trains_on_the_cpu_close_to_fp32(corpus, tiny_run, one_thread):
    fp32, _ = train(tiny_run, corpus)
    bf16, _ = train(tiny_run, corpus, execution=Execution(precision="bf16"))
    assert bf16.status == "completed"
    a, b = fp32.final_val_loss, bf16.final_val_loss
    assert a != b  # the matmuls really ran in bfloat16
    assert b == pytest.approx(a, rel=0.02)
    assert bf16.train_loss[-1][1] < bf16.train_loss[0][1]


def test_micro_batches_accumulate_to_the_whole_batch(corpus, tiny_run, one_thread):
    whole, _ = train(tiny_run, corpus)
    accumulated, _ = train(tiny_run, corpus, execution=Execution(micro_batch_size=1))
    for key in ("train_loss", "val_loss"):
        a = [loss for _, loss in getattr(whole, key)]
        b = [loss for _, loss in getattr(accumulated, key)]
        assert b == pytest.approx(a, rel=2e-5)


def test_reading_losses_back_every_k_steps_changes_nothing(corpus, tiny_run, one_thread):
    every, _ = train(tiny_run, corpus)
    batched, _ = train(tiny_run, corpus, execution=Execution(sync_every=5))
    assert batched.train_loss == every.train_loss and batched.val_loss == every.val_loss


def test_divergence_is_dated_to_its_step_however_rarely_losses_are_read(corpus, tiny_run):
    wild = replace(tiny_run, optim=replace(tiny_run.optim, lr=30.0), steps=40, eval_every=40)
    every, _ = train(wild, corpus)
    batched, _ = train(wild, corpus, execution=Execution(sync_every=16))
    assert every.status == batched.status == "diverged"
    assert batched.steps_done == every.steps_done < 16
    assert batched.train_loss == every.train_loss and batched.flops == every.flops


def test_throughput_and_mfu_are_recorded(corpus, tiny_run, one_thread):
    result, _ = train(tiny_run, corpus, execution=Execution(peak_flops=1e12))
    assert result.tokens_per_s > 0
    expected = flops_per_token(tiny_run.model) * result.tokens_per_s / 1e12
    assert result.mfu == pytest.approx(expected)
    plain_cpu, _ = train(tiny_run, corpus)
    assert plain_cpu.mfu is None  # no peak known for a CPU: no MFU rather than a made-up one


def test_peak_table_and_mfu():
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("NVIDIA L4") == 121e12 and peak_flops("NVIDIA L40S") == 362e12
    assert peak_flops("cpu") is None
    # 1e9 FLOPs a token at 1e5 tokens/s on 2 devices of 1e14: 50%
    assert mfu(10**9, 1e5, 1e14, 2) == pytest.approx(0.5)
    assert mfu(10**9, math.nan, 1e14, 1) is None


def test_a_checkpoint_resumes_only_in_its_precision(corpus, tiny_run, tmp_path):
    path = tmp_path / "run.ckpt"
    train(tiny_run, corpus, checkpoint_path=path)
    with pytest.raises(ValueError, match="trained in fp32"):
        train(tiny_run, corpus, execution=Execution(precision="bf16"), checkpoint_path=path)


def test_a_checkpoint_of_the_earlier_layout_still_resumes(corpus, tiny_run, tmp_path):
    """Optimizer state keyed by parameter index and the run's device fields, as written before
    execution settings left the run config: an interrupted run of that layout resumes exactly."""
    run = replace(tiny_run, eval_every=2)
    reference, _ = train(run, corpus)
    path = tmp_path / "run.ckpt"

    def crash(step: int, _loss: float) -> bool:
        if step == 6:
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        train(run, corpus, on_eval=crash, checkpoint_path=path, checkpoint_every=2)
    saved = load_checkpoint(path)
    model = GPT(run.model)
    optimizer = make_optimizer(model, run.optim)
    D.load_full_state(model, optimizer, saved["model"], saved["optim"])
    old = dict(saved) | {"optim": optimizer.state_dict(), "model": model.state_dict()}
    old["run"] = saved["run"] | {"device": "cpu", "compile": False}
    del old["precision"]
    assert isinstance(next(iter(old["optim"]["state"])), int)
    save_checkpoint(path, old)
    resumed, _ = train(run, corpus, checkpoint_path=path, checkpoint_every=2)
    assert resumed.resumed_from == 4
    assert resumed.train_loss == reference.train_loss
    assert resumed.val_loss == reference.val_loss
