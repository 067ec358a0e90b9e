"""Where the runs train: the GPUs seen, `hardware.*` resolved once in the driver, the
combinations refused, and the `Execution` each job gets."""

from __future__ import annotations

import copy
import math
import shutil

from omegaconf import DictConfig, OmegaConf

from sweep.config.schema import LauncherKind
from sweep.core.hardware import Device, Execution, Precision


def cuda_devices() -> int:
    """GPUs this process sees (the local and debug launchers' jobs see the same)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def resolve_hardware(cfg: DictConfig, visible_gpus: int) -> None:
    """Replace every `auto` and null of `hardware` and the launcher's GPU and task counts by what
    the jobs will use, so that every job of the run trains the same way (validated first)."""
    hw, launcher = cfg.hardware, cfg.launcher
    slurm = launcher.kind == LauncherKind.slurm
    if hw.device == Device.auto:
        gpus = launcher.gpus_per_node if slurm else visible_gpus
        hw.device = Device.cuda if gpus > 0 else Device.cpu
    cuda = hw.device == Device.cuda
    if cuda and not slurm and launcher.gpus_per_node == 0:
        launcher.gpus_per_node = visible_gpus
    if hw.precision == Precision.auto:
        hw.precision = Precision.bf16 if cuda else Precision.fp32
    if hw.compile is None:
        hw.compile = cuda
    if hw.sync_every is None:
        hw.sync_every = 16 if cuda else 1
    if launcher.tasks_per_node is None:
        launcher.tasks_per_node = launcher.gpus_per_node if cuda else 1


def world_size(cfg: DictConfig) -> int:
    """Processes of a data-parallel run (after `resolve_hardware`)."""
    return cfg.launcher.nodes * cfg.launcher.tasks_per_node


def check_slurm_present(cfg: DictConfig) -> None:
    """`launcher=slurm` needs SLURM's commands on this machine (checked when the pipeline
    starts, not in `validate`: a config may be composed and checked anywhere)."""
    if cfg.launcher.kind != LauncherKind.slurm:
        return
    missing = [c for c in ("sbatch", "squeue", "scancel", "sinfo") if shutil.which(c) is None]
    if missing:
        raise ValueError(
            f"launcher=slurm but this machine has no SLURM commands ({', '.join(missing)} not "
            "on PATH): run on a cluster's login node, or use launcher=local"
        )


def check_hardware(cfg: DictConfig, visible_gpus: int | None = None) -> None:
    """Device, precision and process counts that cannot work, named before any job starts."""
    hw, launcher = cfg.hardware, cfg.launcher
    visible = cuda_devices() if visible_gpus is None else visible_gpus
    slurm, debug = launcher.kind == LauncherKind.slurm, launcher.kind == LauncherKind.debug
    for section, name in (
        ("hardware", "micro_batch_size"),
        ("hardware", "sync_every"),
        ("hardware", "peak_tflops"),
        ("launcher", "tasks_per_node"),
    ):
        value = cfg[section][name]
        if value is not None and not 0 < value < math.inf:
            raise ValueError(f"{section}.{name} must be positive (or null); got {value}")
    if launcher.gpus_per_node < 0:
        raise ValueError(f"launcher.gpus_per_node must be >= 0; got {launcher.gpus_per_node}")
    if launcher.nodes < 1:
        raise ValueError(f"launcher.nodes must be >= 1; got {launcher.nodes}")
    if hw.device == Device.cpu and launcher.gpus_per_node > 0:
        raise ValueError(
            f"launcher.gpus_per_node={launcher.gpus_per_node} reserves GPUs that "
            "hardware.device=cpu leaves idle: use hardware.device=auto or cuda, or no GPUs"
        )
    if hw.device == Device.cuda and slurm and launcher.gpus_per_node == 0:
        raise ValueError("hardware.device=cuda on SLURM needs launcher.gpus_per_node > 0")
    if hw.device == Device.cuda and not slurm and visible == 0:
        raise ValueError("hardware.device=cuda but this machine has no GPU that torch can see")
    if not slurm and launcher.gpus_per_node > visible:
        raise ValueError(
            f"launcher.gpus_per_node={launcher.gpus_per_node} but this machine has {visible}"
        )
    if not slurm and launcher.nodes > 1:
        raise ValueError(f"launcher.nodes={launcher.nodes} needs launcher=slurm")
    probe = cfg.copy()
    resolve_hardware(probe, visible)
    tasks = probe.launcher.tasks_per_node
    if debug and tasks > 1:
        raise ValueError(
            f"launcher=debug runs one process; launcher.tasks_per_node={tasks} needs "
            "launcher=local or slurm"
        )
    gpus = probe.launcher.gpus_per_node
    if probe.hardware.device == Device.cuda and tasks > gpus:
        raise ValueError(
            f"launcher.tasks_per_node={tasks} processes would share {gpus} GPUs: one per GPU"
        )
    batch, world = cfg.ladder.batch_size, world_size(probe)
    if batch % world:
        raise ValueError(
            f"ladder.batch_size ({batch}) must split evenly over the {world} processes of a "
            "data-parallel run (launcher.nodes × launcher.tasks_per_node)"
        )
    micro = hw.micro_batch_size
    if micro is not None and (batch // world) % micro:
        raise ValueError(
            f"hardware.micro_batch_size ({micro}) must divide each process's rows of the batch "
            f"({batch // world} in a data-parallel run)"
        )
    if micro is not None and batch % micro:
        raise ValueError(f"hardware.micro_batch_size ({micro}) must divide ladder.batch_size")


def execution(cfg: DictConfig) -> Execution:
    """How this job's process trains: the driver resolved the config for every job; a config
    that is not resolved yet (a script calling a stage directly) resolves with this process's
    GPUs."""
    hw = cfg.hardware
    if Device.auto in (hw.device, hw.precision) or None in (hw.compile, hw.sync_every):
        cfg = copy.deepcopy(cfg)
        OmegaConf.set_readonly(cfg, False)  # a job's config is read-only; its copy need not be
        resolve_hardware(cfg, cuda_devices())
    hw = cfg.hardware
    return Execution(
        device=str(hw.device),
        precision=str(hw.precision),
        compile=bool(hw.compile),
        micro_batch_size=hw.micro_batch_size,
        sync_every=hw.sync_every,
        tf32=hw.tf32,
        peak_flops=None if hw.peak_tflops is None else hw.peak_tflops * 1e12,
    )
