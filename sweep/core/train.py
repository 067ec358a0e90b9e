"""One training run: (model config, optimizer HPs, steps, batch, seed, initial weights) → history.

Pure of side effects except the optional checkpoint file. Batches are a function of
(seed, step) and there is no dropout, so a run resumed from a checkpoint replays exactly the
losses of the uninterrupted run. Divergence ends a run with a reason; it never raises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum, auto
from pathlib import Path

import numpy as np
import torch

from sweep.core import parametrization as P
from sweep.core.checkpoint import load_checkpoint, save_checkpoint
from sweep.core.data import Corpus, check_corpus_fits, train_batch, val_batches
from sweep.core.flops import training_flops
from sweep.core.model import GPT, GPTConfig, lm_loss


class Schedule(StrEnum):
    """The LR after warmup: held constant, or cosine-decayed to `min_lr_ratio`·η."""

    constant = auto()
    cosine = auto()


# Called after every evaluation with (step, validation loss); returning True stops the run
# (Optuna's pruner decides through it).
EvalCallback = Callable[[int, float], bool]


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3e-3  # η: the base-width Adam LR; µP divides it by m for hidden matrices
    weight_decay: float = 0.0  # decoupled (AdamW); µP keeps lr·wd constant across widths
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    scale_eps: bool = False  # µP refinement: hidden-matrix ε divided by m
    warmup_steps: int = 0
    schedule: str = "cosine"  # after warmup: "constant" or cosine decay to min_lr_ratio·η
    min_lr_ratio: float = 0.1
    grad_clip: float = 0.0  # global gradient-norm clip; 0 disables

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if self.schedule not in set(Schedule):
            choices = ", ".join(Schedule)
            raise ValueError(f"optim.schedule must be one of {choices}, got {self.schedule!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        for name in ("weight_decay", "eps", "grad_clip", "min_lr_ratio"):
            if getattr(self, name) < 0:
                raise ValueError(f"optim.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class RunConfig:
    model: GPTConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 200
    batch_size: int = 16
    seed: int = 0  # seeds the init and the batch order
    eval_every: int = 50  # validation every this many steps, and at the end
    eval_batches: int = 4
    diverge_factor: float = 2.0  # a loss above this × the first loss counts as divergence
    device: str = "cpu"
    compile: bool = False  # torch.compile the model

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_batches"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"run.{name} must be a positive integer, got {getattr(self, name)}"
                )
        if self.diverge_factor <= 1:
            raise ValueError(f"run.diverge_factor must be > 1, got {self.diverge_factor}")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.model.seq_len

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunResult:
    status: str  # "completed", "diverged" or "stopped" (by the eval callback)
    reason: str
    steps_done: int
    train_loss: list[tuple[int, float]]  # (step, loss) of every optimizer step
    val_loss: list[tuple[int, float]]  # (step, loss) at every evaluation
    tokens: int
    flops: int
    resumed_from: int = 0  # the step a checkpoint resumed this run at (0: a fresh start)

    @property
    def final_val_loss(self) -> float:
        return self.val_loss[-1][1] if self.val_loss else math.nan

    def to_dict(self) -> dict:
        return asdict(self)


def lr_factor(step: int, optim: OptimConfig, total_steps: int) -> float:
    """Schedule multiplier of η at `step` (0-based): linear warmup, then constant or cosine."""
    if step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == Schedule.constant:
        return 1.0
    progress = (step - optim.warmup_steps) / max(1, total_steps - optim.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return optim.min_lr_ratio + (1.0 - optim.min_lr_ratio) * cosine


def make_optimizer(model: GPT, optim: OptimConfig) -> torch.optim.AdamW:
    groups = P.param_groups(model, optim.lr, optim.weight_decay, optim.eps, optim.scale_eps)
    return torch.optim.AdamW(groups, lr=optim.lr, betas=(optim.beta1, optim.beta2))


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    model.eval()
    losses = [lm_loss(model, x, y).item() for x, y in batches]
    model.train()
    return float(np.mean(losses))


def train(
    run: RunConfig,
    corpus: Corpus,
    *,
    init_state: dict[str, torch.Tensor] | None = None,
    on_eval: EvalCallback | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 0,
) -> tuple[RunResult, GPT]:
    """Train one model; resume from `checkpoint_path` if it holds this run's checkpoint.

    `init_state` (a warm start) replaces the fresh init before step 0. With `checkpoint_path`,
    a checkpoint is written every `checkpoint_every` steps (0: never mid-run) and at the end, so
    calling `train` again on a finished run returns its result without training.
    """
    cfg = run.model
    if cfg.vocab_size < corpus.vocab_size:
        raise ValueError(
            f"model.vocab_size ({cfg.vocab_size}) is smaller than the corpus vocabulary "
            f"({corpus.vocab_size})"
        )
    check_corpus_fits(corpus, cfg.seq_len)
    device = torch.device(run.device)
    torch.manual_seed(run.seed)
    model = GPT(cfg).to(device)
    if init_state is not None:
        model.load_state_dict(init_state)
    optimizer = make_optimizer(model, run.optim)
    state = {"step": 0, "train_loss": [], "val_loss": [], "status": "running", "reason": ""}

    if checkpoint_path is not None and Path(checkpoint_path).exists():
        ckpt = load_checkpoint(checkpoint_path)
        if ckpt["run"] != run.to_dict():
            raise ValueError(f"checkpoint {checkpoint_path} belongs to a different run config")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optim"])
        state = {key: ckpt[key] for key in state}
    resumed_from = state["step"]

    def save() -> None:
        if checkpoint_path is not None:
            payload = {"run": run.to_dict(), "model": model.state_dict()}
            save_checkpoint(checkpoint_path, payload | {"optim": optimizer.state_dict()} | state)

    def stop(status: str, reason: str) -> bool:
        state["status"], state["reason"] = status, reason
        return True

    forward = torch.compile(model) if run.compile else model
    eval_set = [
        (x.to(device), y.to(device))
        for x, y in val_batches(corpus.val, run.eval_batches, run.batch_size, cfg.seq_len)
    ]

    def evaluate_and_check(step: int) -> bool:
        """Evaluate at `step`; True when the run must stop (divergence or the callback's wish)."""
        val = evaluate(forward, eval_set)
        state["val_loss"].append((step, val))
        if not math.isfinite(val):
            return stop("diverged", f"validation loss is {val} at step {step}")
        if on_eval is not None and on_eval(step, val):
            return stop("stopped", f"stopped by the evaluation callback at step {step}")
        return False

    step = state["step"]
    done = state["status"] != "running" or (step == 0 and evaluate_and_check(0))
    while not done and step < run.steps:
        factor = lr_factor(step, run.optim, run.steps)
        for group in optimizer.param_groups:
            group["lr"] = run.optim.lr * group["lr_mult"] * factor
        x, y = train_batch(corpus.train, step, run.seed, run.batch_size, cfg.seq_len)
        loss = lm_loss(forward, x.to(device), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if run.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), run.optim.grad_clip)
        optimizer.step()
        step += 1
        value = loss.item()
        state["step"] = step
        state["train_loss"].append((step, value))
        first = state["train_loss"][0][1]
        if not math.isfinite(value) or value > run.diverge_factor * first:
            done = stop("diverged", f"train loss {value:.4g} at step {step} (first {first:.4g})")
        elif step % run.eval_every == 0 or step == run.steps:
            done = evaluate_and_check(step)
        if not done and checkpoint_every and step % checkpoint_every == 0:
            save()
    if state["status"] == "running":
        stop("completed", f"trained {run.steps} steps")
    save()
    tokens = step * run.tokens_per_step
    result = RunResult(
        state["status"],
        state["reason"],
        step,
        state["train_loss"],
        state["val_loss"],
        tokens,
        training_flops(cfg, tokens),
        resumed_from,
    )
    return result, model
