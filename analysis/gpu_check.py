"""The GPU check: one script that prints every GPU figure BENCHMARKS.md records, sized to fit a
few minutes of a GPU machine.

0. Every dependency imports (the wheelhouse installed: `analysis.wheelhouse`), or one line and
   exit 2 before anything is measured.
1. Throughput and MFU of the µP GPT, the same GPT in SP and a plain nanoGPT-style reference
   (`analysis.bench.RefGPT`) at each width eager, then compiled at the goals' widths (compiling
   costs tens of seconds a model), in the precision given, with the training loop's own
   ingredients (fused AdamW, autocast, no host sync inside the timing).
2. The µP GPT through `sweep.core.train.train` itself at the widest width: the tokens/s and MFU a
   pipeline run records.
3. `+ladder=gpt_medium stages=[tune,transfer]`, trimmed to fit, through the real pipeline on this
   machine's GPUs: the tuned values, the verdict, the regrets and the drift.

Each part and each row prints as it is measured, and the JSON is rewritten after each, so a run
stopped at its limit still returns what it measured; a part that would start past `--deadline-s`
is skipped and named. Every part's seconds are recorded, so its budget is known.

    launchers/gpu_check.sh                             # on the GPU machine, the wheelhouse carried
    python -m analysis.gpu_check --out bench_results/gpu_check.json
    python -m analysis.gpu_check --device cpu --widths 64 128 --steps 3 --modes eager \\
        --skip-pipeline                                    # the script itself, on a CPU
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from analysis.bench import RefGPT
from analysis.wheelhouse import missing_imports
from sweep.core.data import DataConfig, load_corpus, train_batch
from sweep.core.flops import flops_per_token
from sweep.core.hardware import Execution, mfu, peak_flops
from sweep.core.model import GPT, GPTConfig, lm_loss
from sweep.core.train import OptimConfig, RunConfig, make_optimizer, train

MODELS = ("mup", "sp", "ref")
MODES = ("eager", "compiled")
GOALS = {"mfu_at_1024_and_wider": 0.40, "mup_over_ref": 0.97}
# the trimmed gpt_medium pipeline: a few trials, one seed, short runs, no compile per job
PIPELINE_OVERRIDES = (
    "stages=[tune,transfer]",
    "logger=none",
    "tune.n_trials=8",
    "tune.n_startup_trials=4",
    "tune.widen_trials=0",
    "ladder.tune_steps=300",
    "ladder.transfer_steps=300",
    "ladder.eval_every=100",
    "ladder.warmup_steps=30",
    "ladder.transfer_seeds=1",
    "ladder.noise_seeds=1",
    "ladder.lr_resolution=1.0",
    "ladder.lr_span=1",
    "ladder.lr_max_points=5",
    "hardware.compile=false",
)


def model_config(args: argparse.Namespace, width: int, parametrization: str) -> GPTConfig:
    return GPTConfig(
        vocab_size=256,
        seq_len=args.seq_len,
        n_layer=args.layers,
        d_model=width,
        d_head=args.d_head,
        parametrization=parametrization,
        base_d_model=min(args.widths),
    )


def build(args: argparse.Namespace, width: int, name: str, device: torch.device, compiled: bool):
    torch.manual_seed(0)
    cuda = device.type == "cuda"
    if name == "ref":
        model = RefGPT(model_config(args, width, "sp")).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=cuda)
    else:
        model = GPT(model_config(args, width, name)).to(device)
        optimizer = make_optimizer(model, OptimConfig(lr=1e-3), fused=cuda)
    forward = torch.compile(model) if compiled else model
    return forward, optimizer


def timed_steps(forward, optimizer, batches, steps: int, device: torch.device, bf16: bool) -> float:
    """Seconds for `steps` training steps, synchronising only at both ends."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for step in range(steps):
        x, y = batches[step % len(batches)]
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            loss = lm_loss(forward, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


class Clock:
    """Seconds since the check began, and whether a part may still start."""

    def __init__(self, deadline: float) -> None:
        self.start, self.deadline = time.perf_counter(), deadline

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def allows(self, what: str, skipped: list[str]) -> bool:
        if self.elapsed() < self.deadline:
            return True
        skipped.append(what)
        print(f"skipped {what}: past the {self.deadline:.0f} s deadline", flush=True)
        return False


def throughput_row(
    args: argparse.Namespace, width: int, mode: str, device: torch.device, peak: float | None
) -> dict[str, Any]:
    """The three models at one width in one mode, on the same batches."""
    corpus = load_corpus(DataConfig())
    batches = [
        tuple(t.to(device) for t in train_batch(corpus.train, s, 0, args.batch_size, args.seq_len))
        for s in range(4)
    ]
    bf16 = args.precision == "bf16"
    tokens = args.steps * args.batch_size * args.seq_len
    per_token = flops_per_token(model_config(args, width, "mup"))
    row: dict[str, Any] = {"width": width, "mode": mode}
    start = time.perf_counter()
    for name in MODELS:
        forward, optimizer = build(args, width, name, device, compiled=mode == "compiled")
        timed_steps(forward, optimizer, batches, args.warmup, device, bf16)  # and compile
        seconds = min(
            timed_steps(forward, optimizer, batches, args.steps, device, bf16)
            for _ in range(args.repeats)
        )
        row[f"{name}_tokens_per_s"] = tokens / seconds
        row[f"{name}_mfu"] = mfu(per_token, tokens / seconds, peak, 1)
        del forward, optimizer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    row["mup_over_ref"] = row["mup_tokens_per_s"] / row["ref_tokens_per_s"]
    row["mup_over_sp"] = row["mup_tokens_per_s"] / row["sp_tokens_per_s"]
    row["seconds"] = time.perf_counter() - start
    print(
        f"{mode:>8} width {width:>5}: "
        + ", ".join(f"{n} {row[f'{n}_tokens_per_s']:,.0f} tok/s" for n in MODELS)
        + f"; MFU µP {_pct(row['mup_mfu'])} ref {_pct(row['ref_mfu'])}, "
        f"µP/ref {row['mup_over_ref']:.3f}, µP/SP {row['mup_over_sp']:.3f} "
        f"({row['seconds']:.0f} s)",
        flush=True,
    )
    return row


def through_train(
    args: argparse.Namespace, device: torch.device, peak: float | None, compiled: bool
) -> dict[str, Any]:
    """The pipeline's own loop (`train`) at the widest width: what a run records."""
    width, start = max(args.widths), time.perf_counter()
    run = RunConfig(
        model=model_config(args, width, "mup"),
        optim=OptimConfig(lr=3e-3, warmup_steps=5),
        steps=args.warmup + args.steps,
        batch_size=args.batch_size,
        eval_every=args.warmup + args.steps,
        eval_batches=1,
    )
    execution = Execution(
        device=str(device),
        precision=args.precision,
        compile=compiled,
        sync_every=16 if device.type == "cuda" else 1,
        peak_flops=peak,
    )
    result, _ = train(run, load_corpus(DataConfig()), execution=execution)
    out = {"width": width, "compiled": compiled, "tokens_per_s": result.tokens_per_s}
    out |= {"mfu": result.mfu, "seconds": time.perf_counter() - start}
    print(
        f"train() at width {width}: {result.tokens_per_s:,.0f} tok/s, MFU {_pct(result.mfu)} "
        f"(compile and warm-up included; {out['seconds']:.0f} s)",
        flush=True,
    )
    return out


def pipeline(args: argparse.Namespace) -> dict[str, Any]:
    from sweep.config import compose_config
    from sweep.pipeline import Pipeline

    folder = Path(args.pipeline_dir or tempfile.mkdtemp(prefix="gpu_check_"))
    overrides = [f"+ladder={args.ladder}", *PIPELINE_OVERRIDES, *args.pipeline_override]
    cfg = compose_config(*overrides, f"out_root={folder}")
    start = time.perf_counter()
    summary = Pipeline(cfg).run()
    seconds = time.perf_counter() - start
    transfer = summary.get("transfer", {})
    out = {
        "seconds": seconds,
        "overrides": overrides,
        "tuned": summary.get("tune", {}).get("best_params"),
        "verdict": transfer.get("verdict", {}).get("text"),
        "status": transfer.get("verdict", {}).get("status"),
        "hardware": summary.get("hardware"),
        "mup": _series(transfer.get("mup", {})),
        "sp": _series(transfer.get("sp", {})),
    }
    print(f"{args.ladder} tune+transfer in {seconds:.0f} s: {out['verdict']}", flush=True)
    return out


def _series(series: dict[str, Any]) -> dict[str, Any]:
    keep = ("worst_regret", "regret", "drift_log2", "optimum_log2_lr", "optimum_interval")
    return {key: series[key] for key in keep if key in series}


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The goals against the widest mode measured (compiled where it ran)."""
    best = [r for r in rows if r["mode"] == "compiled"] or rows
    return {
        "mode": best[0]["mode"] if best else None,
        "mfu_at_1024_and_wider": [r["mup_mfu"] for r in best if r["width"] >= 1024],
        "mup_over_ref": [r["mup_over_ref"] for r in best],
        "targets": GOALS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--widths", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--compiled-widths", type=int, nargs="*", default=None,
                        help="measured compiled (default: those ≥ 1024, the goals')")  # fmt: skip
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-head", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=None, help="default: the table's")
    parser.add_argument("--deadline-s", type=float, default=420.0,
                        help="no part starts after this many seconds")  # fmt: skip
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--ladder", default="gpt_medium", help="the pipeline part's ladder")
    parser.add_argument("--pipeline-dir", default=None)
    parser.add_argument("--pipeline-override", nargs="*", default=[])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    missing = missing_imports()
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        print(f"error: cannot import {missing[0]}{more}; install the wheelhouse first")
        return 2
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no GPU is visible")
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_flops(name)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    peak_text = "unknown" if peak is None else f"{peak / 1e12:.0f} TFLOP/s"
    print(f"device {name}, bf16 peak {peak_text}; {args.precision}, torch {torch.__version__}")
    clock, skipped = Clock(args.deadline_s), []
    settings = dict(vars(args)) | {"out": str(args.out)}
    report: dict[str, Any] = {"device": name, "torch": torch.__version__, "peak_flops": peak}
    report |= {"settings": settings, "throughput": [], "skipped": skipped}

    def save() -> None:
        report["goals"] = goals(report["throughput"])
        report["seconds"] = clock.elapsed()
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1, default=str))

    compiled = args.compiled_widths
    if compiled is None:
        compiled = [w for w in args.widths if w >= 1024] or [max(args.widths)]
    for mode in args.modes:
        for width in args.widths if mode == "eager" else compiled:
            if clock.allows(f"{mode} width {width}", skipped):
                report["throughput"].append(throughput_row(args, width, mode, device, peak))
            save()
    if clock.allows("train()", skipped):
        report["train"] = through_train(args, device, peak, compiled="compiled" in args.modes)
    save()
    if not args.skip_pipeline and clock.allows("the pipeline", skipped):
        report["pipeline"] = pipeline(args)
    save()
    print(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
