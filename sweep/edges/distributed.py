"""The process group of a data-parallel job: Submitit starts one task per GPU (or per process on
the CPU), on one node or several; each task joins torch.distributed here and learns its rank."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import submitit
import torch
import torch.distributed as dist

from sweep.core.hardware import SINGLE, World


def job_tasks() -> int:
    """How many tasks the current Submitit job has (1 outside a job or in the debug launcher)."""
    try:
        return submitit.JobEnvironment().num_tasks
    except RuntimeError:  # not inside a Submitit job
        return 1


@contextmanager
def process_group(device: str, strategy: str) -> Iterator[World]:
    """This task's `World`: the single process, or its rank in a group over the job's tasks
    (NCCL on GPUs, gloo on the CPU), left again when the job's work is done."""
    if job_tasks() == 1:
        yield SINGLE
        return
    env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(env.local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield World(env.rank, env.world_size, env.local_rank, strategy)
        dist.barrier()  # no process tears the group down while another still uses it
    finally:
        dist.destroy_process_group()
