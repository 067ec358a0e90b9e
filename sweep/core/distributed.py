"""Data parallelism for one training run, on an already-initialised torch.distributed group.

Every process builds the same model from the same seed (and the same warm start), then wraps it:
DDP keeps a whole copy per process and averages gradients; FSDP2 (`fully_shard`, per block and
at the root) shards parameters, gradients and optimizer state. The optimizer is built from the
wrapped module's named parameters, so µP's per-parameter groups (names, LR, weight decay, ε) are
those of the single-process model. Each process takes its contiguous rows of the global batch;
equal shares make the mean of the processes' mean losses the global batch's mean loss.

State leaves and enters as full, unsharded tensors on the CPU (`full_state`, `load_full_state`),
whatever the strategy, so a checkpoint is one file that any process count can resume.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from sweep.core.hardware import Strategy, World


def wrap(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """The module that trains: the model itself (one process), DDP around it, or the model
    sharded in place by FSDP2 (its class changes, its parameter names do not)."""
    if world.size == 1:
        return model
    if world.strategy == Strategy.fsdp:
        from torch.distributed.fsdp import fully_shard

        for block in repeated_blocks(model):
            fully_shard(block)
        fully_shard(model)
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def repeated_blocks(model: nn.Module) -> list[nn.Module]:
    """The children of the model's outermost `nn.ModuleList`s: its transformer blocks, whatever
    they are called (FSDP2 shards each on its own, so one block's weights gather at a time)."""
    blocks: list[nn.Module] = []
    for child in model.children():
        blocks += list(child) if isinstance(child, nn.ModuleList) else repeated_blocks(child)
    return blocks


def unwrapped(module: nn.Module) -> nn.Module:
    """The model under a DDP wrapper (FSDP2 shards in place: the module is the model)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def rows(batch_size: int, world: World) -> slice:
    """This process's rows of a global batch (the batch size is a multiple of the world size)."""
    share = batch_size // world.size
    return slice(world.rank * share, (world.rank + 1) * share)


def mean_over_world(value: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of `value` over the processes (SUM then divide: gloo has no AVG)."""
    if world.size == 1:
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / world.size


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Unsharded model and optimizer state on the CPU (a collective under FSDP: every process
    calls it, and the full tensors end up on rank 0 only, which writes them)."""
    # imported here: torch.distributed.checkpoint takes a second to import, which a plan or
    # a single-process run need not pay
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_state_dict(model, optimizer, options=options)


def load_full_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, model_state: dict, optim_state: dict
) -> None:
    """Load a `full_state` into this process's (possibly sharded) model and optimizer."""
    if optim_state and isinstance(next(iter(optim_state["state"]), None), int):
        model.load_state_dict(model_state)  # a checkpoint keyed by parameter index
        optimizer.load_state_dict(optim_state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    options = StateDictOptions(full_state_dict=True)
    set_state_dict(
        model,
        optimizer,
        model_state_dict=model_state,
        optim_state_dict=optim_state,
        options=options,
    )


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
