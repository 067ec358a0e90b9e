"""Benchmarks. `throughput`: what does µP cost per training step?

Trains three models of identical shapes at each width, in one process, on the same batches:
the µP GPT of `sweep.core.model` with its per-role AdamW groups
(`sweep.core.train.make_optimizer`), the same GPT in SP, and `RefGPT`, a plain nanoGPT-style
transformer with default PyTorch init and one AdamW group. µP vs SP isolates the price of the µP
rules; µP vs the reference shows what the auditable model (separate q/k/v, forward multipliers)
costs against idiomatic PyTorch.

The machine may be shared and noisy, so every model is warmed up before timing, the three models
are interleaved within each repeat (the order rotates between repeats so none always runs first),
and throughputs are medians over repeats.

    python -m analysis.bench throughput --widths 64 128 256 512 --out bench_results/throughput.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from sweep.core.data import Corpus, DataConfig, load_corpus, train_batch
from sweep.core.model import GPT, GPTConfig, lm_loss
from sweep.core.train import OptimConfig, make_optimizer

MODELS = ("mup", "sp", "ref")
LABELS = {"mup": "µP", "sp": "SP", "ref": "ref"}
RATIOS = {"mup/sp": ("mup", "sp"), "mup/ref": ("mup", "ref")}
TARGET_MUP_OVER_SP = 0.97  # the goal: µP costs at most 3% of SP's throughput
# A repeat counts as clean when no model's threads waited for a core (run-queue delay, i.e.
# another process held it) more than this share of their time.
CLEAN_WAIT_SHARE = 0.05

Log = Callable[[str], None]


class RefBlock(nn.Module):
    """Pre-norm block, nanoGPT style: fused qkv, SDPA with its default 1/sqrt(h) scale."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_heads, self.head_size = cfg.n_heads, cfg.head_size
        d_attn = self.n_heads * self.head_size
        self.norm_attn = nn.RMSNorm(cfg.d_model, eps=1e-6)
        self.qkv = nn.Linear(cfg.d_model, 3 * d_attn, bias=False)
        self.attn_proj = nn.Linear(d_attn, cfg.d_model, bias=False)
        self.norm_mlp = nn.RMSNorm(cfg.d_model, eps=1e-6)
        self.fc = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.mlp_proj = nn.Linear(cfg.d_mlp, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = (
            t.view(B, T, self.n_heads, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
            for t in self.qkv(self.norm_attn(x)).chunk(3, dim=-1)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(B, T, -1))
        return x + self.mlp_proj(F.gelu(self.fc(self.norm_mlp(x))))


class RefGPT(nn.Module):
    """Plain-PyTorch GPT with the shapes of `GPT(cfg)` (same parameter count) and none of its
    µP machinery: default init, no forward multipliers, untied readout."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.blocks = nn.ModuleList(RefBlock(cfg) for _ in range(cfg.n_layer))
        self.norm_f = nn.RMSNorm(cfg.d_model, eps=1e-6)
        self.readout = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.readout(self.norm_f(x))


def load_average() -> float:
    """The 1-minute load average (NaN where the OS has none): how busy the machine was."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return math.nan


def available_cores() -> int:
    """CPUs this process may run on (the affinity mask, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class ThroughputSettings:
    widths: tuple[int, ...] = (64, 128, 256, 512)  # the smallest is the µP base width
    n_layer: int = 2
    d_head: int = 16
    seq_len: int = 128
    batch_size: int = 16
    steps: int | None = None  # optimizer steps per timing; None: `default_steps(width)`
    repeats: int = 5
    warmup: int = 3  # untimed steps per model before the first repeat
    seed: int = 0  # init and batch order
    threads: int = field(default_factory=available_cores)

    def __post_init__(self) -> None:
        if not self.widths:
            raise ValueError("widths must not be empty")
        for name in ("n_layer", "d_head", "seq_len", "batch_size", "repeats", "threads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.steps is not None and self.steps <= 0:
            raise ValueError(f"steps must be positive, got {self.steps}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")

    @property
    def base_width(self) -> int:
        return min(self.widths)

    def steps_at(self, width: int) -> int:
        return self.steps if self.steps is not None else default_steps(width)

    def config(self, width: int, parametrization: str) -> GPTConfig:
        return GPTConfig(
            vocab_size=256,  # the byte-level default corpus
            seq_len=self.seq_len,
            n_layer=self.n_layer,
            d_model=width,
            d_head=self.d_head,
            parametrization=parametrization,
            base_d_model=self.base_width,
        )


def default_steps(width: int) -> int:
    """Steps per timing: more for narrow models, whose steps are short and relatively noisier,
    fewer for wide ones, so the default four-width run stays within a few minutes on 2 cores."""
    return 20 if width <= 128 else 10 if width <= 256 else 6


class Timing(NamedTuple):
    """One timed stretch of training steps."""

    wall: float  # seconds (perf_counter)
    cpu: float  # process CPU seconds, all threads
    waited: float  # seconds this process's threads sat runnable waiting for a core (NaN: unknown)


def run_delays() -> dict[str, int]:
    """Per-thread run-queue delay (ns) of this process from /proc/self/task/*/schedstat: time a
    thread was ready to run but another process held the core. Empty where there is no procfs."""
    delays = {}
    for stat in Path("/proc/self/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            delays[stat.parent.name] = int(stat.read_text().split()[1])
    return delays


@dataclass
class WidthResult:
    width: int
    steps: int  # optimizer steps per timing
    tokens_per_timing: int
    threads: int
    params: dict[str, int]  # model -> parameter count (equal by construction)
    timings: dict[str, list[Timing]]  # model -> one per repeat, in repeat order
    order: list[list[str]]  # the model order of each repeat
    loadavg: tuple[float, float] = (math.nan, math.nan)  # 1-min load average before and after

    def seconds(self, model: str) -> list[float]:
        return [t.wall for t in self.timings[model]]

    def tokens_per_second(self, model: str) -> list[float]:
        return [self.tokens_per_timing / t.wall for t in self.timings[model]]

    def wait_share(self, model: str) -> list[float]:
        """Share of the threads' time spent waiting for a core, per repeat: near 0 on an idle
        machine, large when other processes compete for the cores."""
        return [t.waited / (t.wall * self.threads) for t in self.timings[model]]

    def clean_repeats(self) -> list[int]:
        """Repeats in which no model waited for a core more than CLEAN_WAIT_SHARE of the time."""
        shares = zip(*(self.wait_share(m) for m in MODELS), strict=True)
        return [i for i, share in enumerate(shares) if max(share) < CLEAN_WAIT_SHARE]

    def _repeats(self, clean: bool) -> list[int]:
        return self.clean_repeats() if clean else list(range(len(self.timings[MODELS[0]])))

    def median(self, model: str, clean: bool = False) -> float:
        """Median tokens/s over the repeats (only the clean ones with `clean`; NaN if none)."""
        tps = self.tokens_per_second(model)
        picked = [tps[i] for i in self._repeats(clean)]
        return statistics.median(picked) if picked else math.nan

    def ratio(self, name: str, clean: bool = False) -> float:
        """Ratio of median throughputs, e.g. "mup/sp" (above 1: µP is faster)."""
        a, b = RATIOS[name]
        return self.median(a, clean) / self.median(b, clean)

    def paired_ratio(self, name: str, clean: bool = False) -> float:
        """Median of the per-repeat ratios: the two runs of a repeat are seconds apart, so their
        ratio cancels slow drifts in the machine's load that the ratio of medians still sees."""
        a, b = RATIOS[name]
        ta, tb = self.tokens_per_second(a), self.tokens_per_second(b)
        picked = [ta[i] / tb[i] for i in self._repeats(clean)]
        return statistics.median(picked) if picked else math.nan


def build(settings: ThroughputSettings, width: int, model: str) -> tuple[nn.Module, Any]:
    """(model, optimizer) for one of MODELS at `width`, seeded identically."""
    torch.manual_seed(settings.seed)
    optim = OptimConfig()
    if model == "ref":
        ref = RefGPT(settings.config(width, "sp"))
        return ref, torch.optim.AdamW(
            ref.parameters(),
            lr=optim.lr,
            betas=(optim.beta1, optim.beta2),
            eps=optim.eps,
            weight_decay=optim.weight_decay,
        )
    gpt = GPT(settings.config(width, model))
    return gpt, make_optimizer(gpt, optim)


def train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    steps: int,
) -> Timing:
    """Time `steps` training steps (forward, backward, AdamW step), cycling `batches`."""
    delays, cpu, start = run_delays(), time.process_time(), time.perf_counter()
    for step in range(steps):
        x, y = batches[step % len(batches)]
        loss = lm_loss(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    after = run_delays()
    waited = sum(ns - delays.get(tid, 0) for tid, ns in after.items()) / 1e9 if after else math.nan
    return Timing(wall, cpu, waited)


def measure_width(
    settings: ThroughputSettings, corpus: Corpus, width: int, log: Log | None = None
) -> WidthResult:
    """Time the three models at one width, interleaved within each repeat."""
    steps = settings.steps_at(width)
    batches = [
        train_batch(corpus.train, step, settings.seed, settings.batch_size, settings.seq_len)
        for step in range(max(steps, settings.warmup))
    ]
    built = {model: build(settings, width, model) for model in MODELS}
    for model, optimizer in built.values():
        train_steps(model, optimizer, batches, settings.warmup)
    timings: dict[str, list[Timing]] = {model: [] for model in MODELS}
    order = []
    load_before = load_average()
    for repeat in range(settings.repeats):
        shift = repeat % len(MODELS)
        this_order = [*MODELS[shift:], *MODELS[:shift]]
        order.append(this_order)
        for name in this_order:
            gc.collect()
            timings[name].append(train_steps(*built[name], batches, steps))
        if log is not None:
            log(
                f"  width {width} repeat {repeat + 1}/{settings.repeats}: "
                + ", ".join(
                    f"{LABELS[n]} {t.wall:.3f}s (cpu {t.cpu:.2f}s, waited {t.waited:.2f}s)"
                    for n in MODELS
                    for t in timings[n][-1:]
                )
                + f"; load {load_average():.2f}"
            )
    params = {name: sum(p.numel() for p in m.parameters()) for name, (m, _) in built.items()}
    return WidthResult(
        width,
        steps,
        steps * settings.batch_size * settings.seq_len,
        settings.threads,
        params,
        timings,
        order,
        (load_before, load_average()),
    )


def measure_throughput(
    settings: ThroughputSettings, corpus: Corpus, log: Log | None = None
) -> list[WidthResult]:
    """Training throughput of µP, SP and the reference at every width, with torch pinned to
    `settings.threads` threads for the duration (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return [measure_width(settings, corpus, w, log) for w in settings.widths]
    finally:
        torch.set_num_threads(previous)


# --- reporting --------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's "model name" from /proc/cpuinfo (the platform string where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(threads: int) -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "available_cores": available_cores(),
        "torch_threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def format_table(results: list[WidthResult], clean: bool = False) -> str:
    """Markdown table of median tok/s and ratios; `clean` restricts it to the clean repeats.
    The last column counts the clean repeats, so a reader sees how contended the run was."""
    header = ["width", "µP tok/s", "SP tok/s", "ref tok/s", "µP/SP", "µP/ref", "clean"]
    rows = [
        [
            str(r.width),
            *(f"{r.median(m, clean):,.0f}" for m in MODELS),
            *(f"{r.ratio(name, clean):.3f}" for name in RATIOS),
            f"{len(r.clean_repeats())}/{len(r.order)}",
        ]
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _summary(r: WidthResult, clean: bool) -> dict[str, Any]:
    return {
        "median_tokens_per_s": {m: r.median(m, clean) for m in MODELS},
        "ratios": {name: r.ratio(name, clean) for name in RATIOS},
        "paired_ratios": {name: r.paired_ratio(name, clean) for name in RATIOS},
    }


def json_safe(value: Any) -> Any:
    """`value` with NaN/inf replaced by None (strict JSON has no NaN) and tuples as lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def to_json(
    settings: ThroughputSettings, results: list[WidthResult], corpus: Corpus, command: str
) -> dict[str, Any]:
    """The whole run: machine, settings, per-width summaries and every raw timing."""
    return {
        "benchmark": "throughput",
        "command": command,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(settings.threads),
        "settings": asdict(settings) | {"corpus": corpus.description},
        "target_mup_over_sp": TARGET_MUP_OVER_SP,
        "clean_wait_share": CLEAN_WAIT_SHARE,
        "results": [
            {
                "width": r.width,
                "steps_per_timing": r.steps,
                "tokens_per_timing": r.tokens_per_timing,
                "params": r.params,
                **_summary(r, clean=False),
                "clean_repeats": r.clean_repeats(),
                "clean": _summary(r, clean=True),
                "raw_seconds": {m: r.seconds(m) for m in MODELS},
                "raw_tokens_per_s": {m: r.tokens_per_second(m) for m in MODELS},
                "raw_cpu_seconds": {m: [t.cpu for t in r.timings[m]] for m in MODELS},
                "raw_waited_seconds": {m: [t.waited for t in r.timings[m]] for m in MODELS},
                "loadavg_1min_before_after": list(r.loadavg),
                "order": r.order,
            }
            for r in results
        ],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)
    tp = sub.add_parser("throughput", help="training tokens/s of µP vs SP vs plain PyTorch")
    defaults = ThroughputSettings()
    tp.add_argument("--widths", type=int, nargs="+", default=list(defaults.widths))
    tp.add_argument("--steps", type=int, default=None, help="steps per timing (default: by width)")
    tp.add_argument("--repeats", type=int, default=defaults.repeats)
    tp.add_argument("--warmup", type=int, default=defaults.warmup)
    tp.add_argument("--layers", type=int, default=defaults.n_layer)
    tp.add_argument("--d-head", type=int, default=defaults.d_head)
    tp.add_argument("--seq-len", type=int, default=defaults.seq_len)
    tp.add_argument("--batch-size", type=int, default=defaults.batch_size)
    tp.add_argument("--threads", type=int, default=defaults.threads)
    tp.add_argument("--out", default="bench_results/throughput.json")
    args = parser.parse_args(argv)

    settings = ThroughputSettings(
        widths=tuple(args.widths),
        n_layer=args.layers,
        d_head=args.d_head,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        steps=args.steps,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
    )
    corpus = load_corpus(DataConfig())
    print(f"corpus: {corpus.description}")
    info = machine_info(settings.threads)
    print(f"machine: {info['cpu']}, {info['torch_threads']} threads, torch {info['torch']}")
    results = measure_throughput(settings, corpus, log=print)
    print(format_table(results))
    if any(len(r.clean_repeats()) < settings.repeats for r in results):
        print("clean repeats only (no model waited for a core):")
        print(format_table(results, clean=True))
    command = " ".join(["python -m analysis.bench", *argv])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = json_safe(to_json(settings, results, corpus, command))
    out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    print(f"wrote {out}")
    n_clean = sum(len(r.clean_repeats()) for r in results)
    n_all = settings.repeats * len(results)
    if n_clean < n_all:
        print(
            f"warning: only {n_clean}/{n_all} repeats were clean (1-min load up to "
            f"{max(max(r.loadavg) for r in results):.1f} on {settings.threads} threads); "
            "the all-repeat medians include timings slowed by other processes"
        )
    for label, clean in (("all repeats", False), ("clean repeats", True)):
        ratios = {r.width: r.ratio("mup/sp", clean) for r in results}
        measured = {w: x for w, x in ratios.items() if not math.isnan(x)}
        missing = sorted(set(ratios) - set(measured))
        note = f" (no clean repeat at width {', '.join(map(str, missing))})" if missing else ""
        if not measured:
            print(f"µP/SP, {label}: n/a{note}")
            continue
        worst = min(measured.values())
        verdict = "meets" if worst >= TARGET_MUP_OVER_SP else "misses"
        goal = f"≤{1 - TARGET_MUP_OVER_SP:.0%} overhead goal"
        print(f"µP/SP, {label}: worst {worst:.3f} over widths, {verdict} the {goal}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
