"""One training run: (model config, optimizer HPs, steps, batch, seed, initial weights) → history.

Pure of side effects except the optional checkpoint file. Batches are a function of
(seed, step) and there is no dropout, so a run resumed from a checkpoint replays exactly the
losses of the uninterrupted run. Divergence ends a run with a reason; it never raises.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from sweep.core import distributed as D
from sweep.core.checkpoint import load_checkpoint, save_checkpoint
from sweep.core.configs import OptimConfig, RunConfig, Schedule
from sweep.core.data import Corpus, check_corpus_fits, train_batch, val_batches
from sweep.core.flops import flops_per_token, training_flops
from sweep.core.hardware import ON_CPU, SINGLE, Execution, Precision, World, mfu, peak_flops
from sweep.core.model import lm_loss
from sweep.core.models import build_model, param_groups

# Called after every evaluation with (step, validation loss); returning True stops the run
# (Optuna's pruner decides through it).
EvalCallback = Callable[[int, float], bool]
# Called with (step, metrics) as the run's history grows, every row once and in step order: the
# train loss at each read-back ("train/loss"), the validation loss and the training throughput
# so far at each evaluation ("val/loss", "tokens_per_s"). A resumed run first replays the rows
# it restored. For live logs and dashboards; it cannot change the run.
ProgressCallback = Callable[[int, dict[str, float]], None]


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
    tokens_per_s: float = math.nan  # training throughput, evaluations and checkpoints excluded
    mfu: float | None = None  # model FLOPs utilisation (None: the device's peak is unknown)
    devices: int = 1  # processes (GPUs) the run was spread over

    @property
    def final_val_loss(self) -> float:
        return self.val_loss[-1][1] if self.val_loss else math.nan

    def to_dict(self) -> dict:
        return asdict(self)


def lr_factor(step: int, optim: OptimConfig, total_steps: int) -> float:
    """Schedule multiplier of η at `step` (0-based): linear warmup from `warmup_from`, then
    constant, cosine or warmup-stable-decay."""
    if step < optim.warmup_steps:
        start = optim.warmup_from
        return start + (1.0 - start) * (step + 1) / optim.warmup_steps
    if optim.schedule == Schedule.constant:
        return 1.0
    if optim.schedule == Schedule.wsd:
        decay_start = max(
            optim.warmup_steps, total_steps - round(optim.decay_fraction * total_steps)
        )
        if step < decay_start:
            return 1.0
        progress = (step - decay_start) / max(1, total_steps - decay_start)
        return 1.0 - (1.0 - optim.min_lr_ratio) * min(1.0, progress)
    progress = (step - optim.warmup_steps) / max(1, total_steps - optim.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return optim.min_lr_ratio + (1.0 - optim.min_lr_ratio) * cosine


def make_optimizer(
    model: torch.nn.Module, optim: OptimConfig, fused: bool = False
) -> torch.optim.AdamW:
    """AdamW over a model built by `sweep.core.models.build_model`, with its µP groups."""
    groups = param_groups(model, optim.lr, optim.weight_decay, optim.eps, optim.scale_eps)
    return torch.optim.AdamW(groups, lr=optim.lr, betas=(optim.beta1, optim.beta2), fused=fused)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    world: World = SINGLE,
    precision: str = Precision.fp32,
) -> float:
    """Mean validation loss over `batches` (this process's rows of each), averaged over `world`."""
    model.eval()
    with _autocast(batches[0][0].device, precision):
        losses = torch.stack([lm_loss(model, x, y) for x, y in batches])
    model.train()
    return float(np.mean(D.mean_over_world(losses, world).tolist()))


def _autocast(device: torch.device, precision: str) -> torch.autocast:
    return torch.autocast(device.type, torch.bfloat16, enabled=precision == Precision.bf16)


def _device(execution: Execution) -> torch.device:
    device = torch.device(execution.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = execution.tf32
        torch.backends.cudnn.allow_tf32 = execution.tf32
        if device.index is None:  # the process's current GPU (its local rank's, under DP)
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def _to(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def micro_batches(run: RunConfig, execution: Execution, world: World) -> tuple[int, int]:
    """(rows per forward/backward, forward/backwards per step) of one process."""
    if run.batch_size % world.size:
        raise ValueError(
            f"the batch ({run.batch_size} rows) does not split evenly over {world.size} processes"
        )
    rows = run.batch_size // world.size
    micro = execution.micro_batch_size or rows
    if rows % micro:
        raise ValueError(f"a process's {rows} rows do not split into micro-batches of {micro}")
    return micro, rows // micro


def _saved_run(saved: dict) -> dict:
    """A checkpoint's run as this version writes it: fields that moved to `Execution` dropped,
    optimizer fields added since with their defaults (the run they describe is the same)."""
    moved = ("device", "compile")
    out = {k: v for k, v in saved.items() if k not in moved}
    if isinstance(out.get("optim"), dict):
        out["optim"] = asdict(OptimConfig()) | out["optim"]
    return out


def _same_run(saved: dict, run: RunConfig) -> bool:
    """A checkpoint's run against this one."""
    return _saved_run(saved) == run.to_dict()


def branch_point(saved: dict, step: int, run: RunConfig) -> None:
    """ValueError unless a checkpoint of `saved`'s run at `step` can start `run`: the two runs
    differ in their length only, and their LR schedules agree on every step before `step`."""
    other = _saved_run(saved)
    mine = run.to_dict()
    if {k: v for k, v in other.items() if k != "steps"} != {
        k: v for k, v in mine.items() if k != "steps"
    }:
        raise ValueError("a run branches only from a run that differs from it in length")
    optim, longer = run.optim, int(other["steps"])
    if step > run.steps or any(
        lr_factor(t, optim, longer) != lr_factor(t, optim, run.steps) for t in range(step)
    ):
        raise ValueError(
            f"cannot branch at step {step}: the {longer}-step run's LR schedule differs from "
            f"this {run.steps}-step run's before it (branch from its stable phase)"
        )


def snapshot_path(checkpoint_path: str | Path, step: int) -> Path:
    """Where `train(..., snapshots=...)` keeps the checkpoint of `step`."""
    path = Path(checkpoint_path)
    return path.with_name(f"{path.stem}.step{step}{path.suffix}")


@dataclass
class LoopState:
    """What a checkpoint carries besides the weights: where the run is and what it has seen."""

    step: int = 0
    train_loss: list[tuple[int, float]] = field(default_factory=list)
    val_loss: list[tuple[int, float]] = field(default_factory=list)
    status: str = "running"
    reason: str = ""
    train_seconds: float = 0.0  # training time banked up to the last checkpoint
    steps_timed: int = 0  # the steps that time covers

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> LoopState:
        return cls(**{f.name: ckpt[f.name] for f in fields(cls) if f.name in ckpt})


@dataclass
class _Clock:
    """Training time since the last bank, evaluations and checkpoints paused out: throughput
    counts only optimizer steps."""

    from_step: int
    started: float = field(default_factory=time.perf_counter)
    paused: float = 0.0

    def restart(self) -> None:
        self.started, self.paused = time.perf_counter(), 0.0

    def bank(self, state: LoopState, step: int, now: float) -> None:
        """Add the time since the last bank to `state` (a checkpoint carries it on)."""
        state.train_seconds += now - self.started - self.paused
        state.steps_timed += step - self.from_step
        self.started, self.paused, self.from_step = now, 0.0, step

    def tokens_per_s(self, state: LoopState, step: int, tokens_per_step: int) -> float:
        seconds = state.train_seconds + time.perf_counter() - self.started - self.paused
        steps = state.steps_timed + step - self.from_step
        return steps * tokens_per_step / seconds if steps > 0 and seconds > 0 else math.nan


def starting_checkpoint(
    run: RunConfig,
    execution: Execution,
    checkpoint_path: str | Path | None,
    branch_from: str | Path | None,
) -> dict | None:
    """The checkpoint a run starts from: its own (a resume), else `branch_from`'s once it is
    shown to be a point of a run this one can branch from, else None (a fresh start)."""
    own = checkpoint_path is not None and Path(checkpoint_path).exists()
    if not own and branch_from is None:
        return None
    path = checkpoint_path if own else branch_from
    ckpt = load_checkpoint(path)
    if own and not _same_run(ckpt["run"], run):
        raise ValueError(f"checkpoint {checkpoint_path} belongs to a different run config")
    if not own:
        if ckpt["status"] != "running":
            raise ValueError(f"{branch_from}: a run branches from a checkpoint taken mid-run")
        branch_point(ckpt["run"], ckpt["step"], run)
    if ckpt.get("precision", Precision.fp32) != execution.precision:
        raise ValueError(
            f"checkpoint {path} was trained in {ckpt.get('precision', 'fp32')}; "
            f"resume it in that precision, not {execution.precision}"
        )
    return ckpt


class _Loop:
    """One run under way: the model, its optimizer and `LoopState`, and the named steps `train`
    takes over them (an optimizer step, reading the losses, evaluating, saving)."""

    def __init__(
        self,
        run: RunConfig,
        corpus: Corpus,
        execution: Execution,
        world: World,
        init_state: dict[str, torch.Tensor] | None,
        on_eval: EvalCallback | None,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.run, self.corpus, self.execution, self.world = run, corpus, execution, world
        self.on_eval, self.on_progress = on_eval, on_progress
        self.micro, self.n_micro = micro_batches(run, execution, world)
        self.device = device = _device(execution)
        torch.manual_seed(run.seed)
        self.model = build_model(run.model)  # drawn on the CPU: the same weights on any device
        if init_state is not None:
            self.model.load_state_dict(init_state)
        self.module = D.wrap(self.model.to(device), world, device)
        fused = device.type == "cuda"
        self.optimizer = make_optimizer(D.unwrapped(self.module), run.optim, fused=fused)
        self.forward = torch.compile(self.module) if execution.compile else self.module
        self.rows = D.rows(run.batch_size, world)
        batches = val_batches(corpus.val, run.eval_batches, run.batch_size, run.model.seq_len)
        self.eval_set = [(_to(x[self.rows], device), _to(y[self.rows], device)) for x, y in batches]
        self.state = LoopState()
        self.pending: list[tuple[int, torch.Tensor]] = []  # losses not yet read back to the host
        self.clock = _Clock(0)

    def restore(self, ckpt: dict) -> None:
        """Continue from `ckpt` (weights, optimizer, state), replaying its history to progress."""
        D.load_full_state(self.module, self.optimizer, ckpt["model"], ckpt["optim"])
        self.state = LoopState.from_checkpoint(ckpt)
        for step, metrics in history_rows(self.state.train_loss, self.state.val_loss):
            self.report(step, metrics)  # what a resumed run restored, before what it adds

    def report(self, step: int, metrics: dict[str, float]) -> None:
        if self.on_progress is not None:
            self.on_progress(step, metrics)

    def stop(self, status: str, reason: str) -> bool:
        self.state.status, self.state.reason = status, reason
        return True

    def save(self, path: str | Path | None) -> None:
        if path is None:
            return
        model_state, optim_state = D.full_state(self.module, self.optimizer)  # FSDP: collective
        if self.world.main:
            payload = {"run": self.run.to_dict(), "precision": self.execution.precision}
            payload |= {"model": model_state, "optim": optim_state}
            save_checkpoint(path, payload | asdict(self.state))
        D.barrier(self.world)

    def evaluate(self, step: int) -> bool:
        """Evaluate at `step`; True when the run must stop (divergence or the callback's wish)."""
        rate = self.clock.tokens_per_s(self.state, step, self.run.tokens_per_step)
        val = evaluate(self.forward, self.eval_set, self.world, self.execution.precision)
        self.state.val_loss.append((step, val))
        self.report(
            step, {"val/loss": val} | ({"tokens_per_s": rate} if math.isfinite(rate) else {})
        )
        if not math.isfinite(val):
            return self.stop("diverged", f"validation loss is {val} at step {step}")
        if self.on_eval is not None and self.on_eval(step, val):
            return self.stop("stopped", f"stopped by the evaluation callback at step {step}")
        return False

    def read_losses(self) -> bool:
        """Record the pending losses (one host sync); True when one of them diverged."""
        if not self.pending:
            return False
        stacked = torch.stack([loss for _, loss in self.pending])
        values = D.mean_over_world(stacked, self.world).tolist()
        steps = [s for s, _ in self.pending]
        self.pending.clear()
        history = self.state.train_loss
        for s, value in zip(steps, values, strict=True):
            history.append((s, value))
            self.report(s, {"train/loss": value})
            first = history[0][1]
            if not math.isfinite(value) or value > self.run.diverge_factor * first:
                self.state.step = s  # the run ends at the step that diverged
                return self.stop(
                    "diverged", f"train loss {value:.4g} at step {s} (first {first:.4g})"
                )
        return False

    def optimizer_step(self) -> None:
        """One step at the schedule's LR over this process's rows of the step's batch, in
        micro-batches; its loss is left pending (read back every `sync_every` steps)."""
        run, state, micro, n_micro = self.run, self.state, self.micro, self.n_micro
        factor = lr_factor(state.step, run.optim, run.steps)
        for group in self.optimizer.param_groups:
            group["lr"] = run.optim.lr * group["lr_mult"] * factor
        x, y = train_batch(
            self.corpus.train, state.step, run.seed, run.batch_size, run.model.seq_len
        )
        x, y = x[self.rows], y[self.rows]
        self.optimizer.zero_grad(set_to_none=True)
        total = None
        for i in range(n_micro):
            xb = _to(x[i * micro : (i + 1) * micro], self.device)
            yb = _to(y[i * micro : (i + 1) * micro], self.device)
            last = i == n_micro - 1
            with (
                _gradient_sync(self.module, last),
                _autocast(self.device, self.execution.precision),
            ):
                loss = lm_loss(self.forward, xb, yb)
            (loss / n_micro if n_micro > 1 else loss).backward()
            total = loss.detach() if total is None else total + loss.detach()
        if run.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), run.optim.grad_clip)
        self.optimizer.step()
        state.step += 1
        self.pending.append((state.step, total / n_micro if n_micro > 1 else total))

    def run_steps(
        self, checkpoint_path: str | Path | None, checkpoint_every: int, snapshots: Collection[int]
    ) -> None:
        """Train to the end (or a stop), evaluating, checkpointing and keeping snapshots on the
        way, and save the final checkpoint."""
        run, state = self.run, self.state
        self.clock = clock = _Clock(state.step)
        done = state.status != "running" or (state.step == 0 and self.evaluate(0))
        clock.restart()
        while not done and state.step < run.steps:
            self.optimizer_step()
            step = state.step
            evaluating = step % run.eval_every == 0 or step == run.steps
            saving = bool(checkpoint_every) and step % checkpoint_every == 0
            keeping = step in snapshots
            if step % self.execution.sync_every == 0 or evaluating or saving or keeping:
                done = self.read_losses()
            if done:
                break
            pause = time.perf_counter()
            if evaluating:
                done = self.evaluate(step)
            if not done and (saving or keeping):
                clock.bank(state, step, pause)
                if saving:
                    self.save(checkpoint_path)
                if keeping:
                    self.save(snapshot_path(checkpoint_path, step))
            clock.paused += time.perf_counter() - pause
        self.read_losses()
        if state.step > clock.from_step:
            clock.bank(state, state.step, time.perf_counter())
        if state.status == "running":
            if worse := ended_worse(state.val_loss):
                self.stop("diverged", worse)
            else:
                self.stop("completed", f"trained {run.steps} steps")
        self.save(checkpoint_path)

    def result(self, resumed_from: int) -> RunResult:
        run, state, cfg = self.run, self.state, self.run.model
        tokens = state.step * run.tokens_per_step
        seconds = state.train_seconds
        tokens_per_s = (
            state.steps_timed * run.tokens_per_step / seconds if seconds > 0 else math.nan
        )
        peak = self.execution.peak_flops
        if peak is None and self.device.type == "cuda":
            peak = peak_flops(torch.cuda.get_device_name(self.device))
        return RunResult(
            state.status,
            state.reason,
            state.step,
            state.train_loss,
            state.val_loss,
            tokens,
            training_flops(cfg, tokens),
            resumed_from,
            tokens_per_s,
            mfu(flops_per_token(cfg), tokens_per_s, peak, self.world.size),
            self.world.size,
        )


def train(
    run: RunConfig,
    corpus: Corpus,
    *,
    execution: Execution = ON_CPU,
    world: World = SINGLE,
    init_state: dict[str, torch.Tensor] | None = None,
    on_eval: EvalCallback | None = None,
    on_progress: ProgressCallback | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 0,
    branch_from: str | Path | None = None,
    snapshots: Collection[int] = (),
) -> tuple[RunResult, torch.nn.Module]:
    """Train one model; resume from `checkpoint_path` if it holds this run's checkpoint.

    `init_state` (a warm start) replaces the fresh init before step 0. With `checkpoint_path`,
    a checkpoint is written every `checkpoint_every` steps (0: never mid-run) and at the end, so
    calling `train` again on a finished run returns its result without training. `branch_from`,
    a checkpoint of a run that differs from this one only in length, taken where their LR
    schedules still agree (a WSD run's stable phase), starts this run at that step instead of
    step 0; this run's own checkpoint, once it has one, takes precedence. At each step of
    `snapshots` a copy of the checkpoint is kept beside it (`snapshot_path`): the points that
    shorter runs branch from. Under a `world` of several processes every process calls `train`
    alike; they train one model on their rows of each batch, see the same losses, and only the
    main process writes the checkpoint.
    """
    if snapshots and checkpoint_path is None:
        raise ValueError("snapshots are copies of the run's checkpoint: give checkpoint_path")
    if run.model.vocab_size < corpus.vocab_size:
        raise ValueError(
            f"model.vocab_size ({run.model.vocab_size}) is smaller than the corpus vocabulary "
            f"({corpus.vocab_size})"
        )
    check_corpus_fits(corpus, run.model.seq_len)
    loop = _Loop(run, corpus, execution, world, init_state, on_eval, on_progress)
    start = starting_checkpoint(run, execution, checkpoint_path, branch_from)
    if start is not None:
        loop.restore(start)
    resumed_from = loop.state.step
    loop.run_steps(checkpoint_path, checkpoint_every, snapshots)
    return loop.result(resumed_from), loop.model


def ended_worse(val_loss: list[tuple[int, float]]) -> str:
    """Why a run that trained to its end counts as diverged, or "": its last validation loss
    above its first (step 0's, before any update). A run that blew up and settled below the
    divergence factor has learned less than nothing, and its loss is no point of an LR curve."""
    if len(val_loss) < 2 or val_loss[0][0] != 0:
        return ""
    (_, first), (step, last) = val_loss[0], val_loss[-1]
    if last > first:
        return f"validation loss {last:.4g} at step {step}, above the untrained {first:.4g}"
    return ""


def history_rows(
    train_loss: list[tuple[int, float]], val_loss: list[tuple[int, float]]
) -> list[tuple[int, dict[str, float]]]:
    """A run's history as (step, metrics) rows in step order, as `ProgressCallback` gets it."""
    rows: dict[int, dict[str, float]] = {}
    for step, loss in train_loss:
        rows.setdefault(step, {})["train/loss"] = loss
    for step, loss in val_loss:
        rows.setdefault(step, {})["val/loss"] = loss
    return sorted(rows.items())


def _gradient_sync(module: torch.nn.Module, sync: bool):
    """Skip the gradient all-reduce on all but a step's last micro-batch (DDP, FSDP2)."""
    if isinstance(module, torch.nn.parallel.DistributedDataParallel) and not sync:
        return module.no_sync()
    if hasattr(module, "set_requires_gradient_sync"):
        module.set_requires_gradient_sync(sync)
    return nullcontext()
