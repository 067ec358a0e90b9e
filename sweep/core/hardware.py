"""Where and how a run executes: device, precision, compilation, micro-batching, the process
group it belongs to, and what its throughput means (MFU against the device's peak).

These settings change how fast a run goes, not what it computes, with one exception: the
precision changes the arithmetic, so a checkpoint records it and refuses to resume in another.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Device(StrEnum):
    auto = "auto"  # CUDA when a GPU is visible, else the CPU
    cpu = "cpu"
    cuda = "cuda"


class Precision(StrEnum):
    auto = "auto"  # bf16 on a GPU that has it, fp32 otherwise
    fp32 = "fp32"
    bf16 = "bf16"  # autocast: matmuls in bfloat16, weights, optimizer and loss in float32


class Strategy(StrEnum):
    """How a run spread over several processes shares its model."""

    ddp = "ddp"  # every process holds the whole model; gradients are averaged
    fsdp = "fsdp"  # parameters, gradients and optimizer state sharded (FSDP2 `fully_shard`)


@dataclass(frozen=True)
class Execution:
    """How one process runs its share of a training run (resolved: no `auto` left)."""

    device: str = "cpu"  # "cpu", "cuda" or "cuda:N"
    precision: str = "fp32"  # "fp32" or "bf16"
    compile: bool = False  # torch.compile the model
    micro_batch_size: int | None = None  # rows per forward/backward; None: the process's batch
    sync_every: int = 1  # read the train loss back to the host every this many steps
    tf32: bool = True  # allow TF32 matmuls on CUDA for the float32 parts
    peak_flops: float | None = None  # one device's peak FLOP/s, for MFU; None: from the table

    def __post_init__(self) -> None:
        if self.precision not in (Precision.fp32, Precision.bf16):
            raise ValueError(f"precision must be fp32 or bf16 once resolved; got {self.precision}")
        if self.micro_batch_size is not None and self.micro_batch_size <= 0:
            raise ValueError(f"micro_batch_size must be positive; got {self.micro_batch_size}")
        if self.sync_every <= 0:
            raise ValueError(f"sync_every must be positive; got {self.sync_every}")


ON_CPU = Execution()


@dataclass(frozen=True)
class World:
    """The process group a run is spread over: this process's rank among `size`."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    strategy: str = Strategy.ddp

    @property
    def main(self) -> bool:
        """The process that writes files, logs and returns the result."""
        return self.rank == 0


SINGLE = World()


def resolve_device(requested: str, cuda_available: bool) -> str:
    if requested == Device.auto:
        return Device.cuda if cuda_available else Device.cpu
    if requested == Device.cuda and not cuda_available:
        raise ValueError("device cuda was asked for, but torch sees no GPU on this machine")
    return str(requested)


def resolve_precision(requested: str, device: str, bf16_supported: bool) -> str:
    if requested == Precision.auto:
        return Precision.bf16 if device.startswith("cuda") and bf16_supported else Precision.fp32
    return str(requested)


# Dense bf16 tensor-core peak FLOP/s of one device (vendor data sheets, without sparsity). The
# first name that occurs in `torch.cuda.get_device_name()` wins, so longer names come first.
PEAK_BF16_FLOPS = (
    ("GB200", 2.5e15),
    ("B200", 2.25e15),
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H800", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A6000", 155e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("MI300X", 1.307e15),
    ("MI250X", 383e12),
)


def peak_flops(device_name: str) -> float | None:
    """The table's peak for a device name, or None when the device is not in it (the CPU)."""
    for name, flops in PEAK_BF16_FLOPS:
        if name in device_name:
            return flops
    return None


def mfu(
    flops_per_token: int, tokens_per_s: float, peak: float | None, devices: int
) -> float | None:
    """Model FLOPs utilisation: the model's training FLOP/s over the peak of the devices used."""
    if peak is None or not peak > 0 or not tokens_per_s > 0:
        return None
    return flops_per_token * tokens_per_s / (peak * devices)
