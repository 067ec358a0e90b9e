"""The throughput the plan divides FLOPs by (`sweep.core.throughput`): the rate the user states
for a device, or two short reference steps measured on this machine once and kept in the run
folder for the next plan on the same machine, device, precision and thread count (on a GPU the
table knows, its peak × the assumed MFU as the rate)."""

from __future__ import annotations

import json
import platform
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from sweep.core.atomic import write_atomic
from sweep.core.data import Corpus
from sweep.core.hardware import Device, Execution, peak_flops
from sweep.core.model import GPTConfig
from sweep.core.throughput import Throughput, fitted, stated
from sweep.core.train import OptimConfig, RunConfig, train

CACHE_FILE = "throughput.json"
REFERENCE_LAYERS = 2
REFERENCE_WIDTHS = (32, 256)  # a step mostly overhead, and one mostly arithmetic
REFERENCE_STEPS = 6


def reference_run(width: int) -> RunConfig:
    model = GPTConfig(seq_len=64, n_layer=REFERENCE_LAYERS, d_model=width, d_head=16)
    return RunConfig(
        model=model,
        optim=OptimConfig(lr=1e-3, schedule="constant"),
        steps=REFERENCE_STEPS,
        batch_size=8,
        eval_every=REFERENCE_STEPS,
        eval_batches=1,
    )


def reference_corpus() -> Corpus:
    """Random bytes: what a step costs does not depend on what it reads."""
    tokens = np.random.default_rng(0).integers(0, 256, 1 << 15, dtype=np.uint8)
    return Corpus(train=tokens, val=tokens, vocab_size=256, description="reference")


def machine_key(cfg: DictConfig) -> dict[str, Any]:
    """What a measured rate holds for: this machine, the jobs' device and precision, the
    threads each job's torch uses (`launcher.cpus_per_task`), torch's version."""
    device = str(cfg.hardware.device)
    return {
        "machine": platform.node(),
        "processor": platform.processor() or platform.machine(),
        "device": torch.cuda.get_device_name() if device == Device.cuda else "cpu",
        "precision": str(cfg.hardware.precision),
        "threads": int(cfg.launcher.cpus_per_task),
        "torch": torch.__version__,
    }


def measured(cfg: DictConfig, execution: Execution) -> tuple[float, float]:
    """The reference steps' (FLOPs, seconds) at each width, on the threads a job gets and
    without compiling (a plan does not wait for a compiler)."""
    eager = replace(execution, compile=False)
    corpus, points, threads = reference_corpus(), [], torch.get_num_threads()
    torch.set_num_threads(int(cfg.launcher.cpus_per_task))
    try:
        for width in REFERENCE_WIDTHS:
            run = reference_run(width)
            result, _ = train(run, corpus, execution=eager)
            points.append((run.flops / run.steps, run.tokens_per_step / result.tokens_per_s))
    finally:
        torch.set_num_threads(threads)
    return points[0], points[1]


def plan_throughput(cfg: DictConfig, run_dir: Path, execution: Execution) -> Throughput:
    """The plan's throughput for a resolved config (`resolve_hardware`) whose jobs train
    under `execution`: a stated rate; else
    the reference steps measured here (once per machine key; a damaged cache file is measured
    again), their rate replaced by the table's peak × `hardware.mfu` on a GPU the table knows
    (small reference steps leave a GPU mostly idle: their overhead is the GPU's, their rate
    is not)."""
    hw = cfg.hardware
    if hw.peak_tflops is not None:
        words = f"stated: {hw.peak_tflops:g} TFLOP/s peak × MFU {hw.mfu:g}"
        return stated(hw.peak_tflops * 1e12, hw.mfu, words)
    if hw.device == Device.cuda and not torch.cuda.is_available():
        raise ValueError(
            "the jobs train on GPUs this machine does not have: give hardware.peak_tflops "
            "(one GPU's peak) and hardware.mfu for the plan's time estimate"
        )
    found = measured_here(cfg, run_dir, execution)
    if hw.device == Device.cuda and (peak := peak_flops(name := torch.cuda.get_device_name())):
        words = f"{name}: the table's {peak / 1e12:g} TFLOP/s peak × MFU {hw.mfu:g}, overhead "
        return replace(found, flops_per_s=peak * hw.mfu, source=words + "measured here")
    return found


def measured_here(cfg: DictConfig, run_dir: Path, execution: Execution) -> Throughput:
    key = machine_key(cfg)
    path = run_dir / CACHE_FILE
    try:
        cached = json.loads(path.read_text())
        if cached["key"] == key:
            return Throughput(**cached["throughput"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    small, large = measured(cfg, execution)
    where = f"{key['device']}, {key['precision']}, {key['threads']} threads"
    found = fitted(REFERENCE_LAYERS, small, large, f"measured here ({where})")
    write_atomic(path, json.dumps({"key": key, "throughput": found.to_dict()}, indent=1).encode())
    return found
