"""Train one GPT from the command line, µP or SP, and write its history and checkpoint.

    python -m sweep.single --d-model 256 --base-d-model 64 --steps 300

The run folder keeps a checksummed checkpoint: rerunning the same command resumes where an
interrupted run stopped, or returns the finished result without training.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import torch
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from sweep.core.data import DataConfig, Source, load_corpus
from sweep.core.hardware import Device, Execution, Precision, resolve_device, resolve_precision
from sweep.core.model import GPTConfig
from sweep.core.models import describe
from sweep.core.train import OptimConfig, RunConfig, train
from sweep.stages.handoff import run_from_record

MODEL_FLAGS = (
    "d_model",
    "base_d_model",
    "n_layer",
    "d_head",
    "seq_len",
    "parametrization",
    "head_scaling",
    "init_std",
    "output_std",
    "alpha_in",
    "alpha_out",
    "alpha_attn",
)
OPTIM_FLAGS = ("lr", "weight_decay", "warmup_steps", "schedule")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for cls, names in ((GPTConfig, MODEL_FLAGS), (OptimConfig, OPTIM_FLAGS)):
        for f in fields(cls):
            if f.name in names:
                kind = int if f.name in ("base_d_model", "warmup_steps") else type(f.default)
                flag = "--" + f.name.replace("_", "-")
                parser.add_argument(flag, type=kind, default=f.default, help=f"default {f.default}")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--data", choices=[str(s) for s in Source], default=str(Source.stdlib))
    parser.add_argument("--data-path", default=None, help="text file or uint16 token file/folder")
    parser.add_argument("--device", choices=[str(d) for d in Device], default=str(Device.auto))
    parser.add_argument(
        "--precision", choices=[str(p) for p in Precision], default=str(Precision.auto)
    )
    parser.add_argument(
        "--from",
        dest="from_file",
        default=None,
        help="a run folder's tuned.yaml: train its target run (model, HPs, schedule, data); "
        "the flags above are then ignored",
    )
    parser.add_argument("--out", default="runs/single", help="run folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    try:
        return run_single(args, console)
    except ValueError as e:  # bad input: one line, no traceback, before any training
        console.print(f"[red]error:[/] {e}")
        return 2


def run_from_flags(args: argparse.Namespace) -> tuple[RunConfig, DataConfig]:
    data = DataConfig(source=args.data, path=args.data_path)
    model = GPTConfig(
        vocab_size=max(256, load_corpus(data).vocab_size),
        **{name: getattr(args, name) for name in MODEL_FLAGS},
    )
    optim = OptimConfig(**{name: getattr(args, name) for name in OPTIM_FLAGS})
    run = RunConfig(
        model=model,
        optim=optim,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        eval_every=args.eval_every,
    )
    return run, data


def run_from_tuned_file(path: str) -> tuple[RunConfig, DataConfig]:
    try:
        record = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    if not isinstance(record, dict):
        raise ValueError(f"{path} is not a musweep tuned file")
    return run_from_record(record), DataConfig(**record["data"])


def run_single(args: argparse.Namespace, console: Console) -> int:
    run, data = run_from_tuned_file(args.from_file) if args.from_file else run_from_flags(args)
    corpus = load_corpus(data)
    model, optim = run.model, run.optim
    cuda = torch.cuda.is_available()
    device = resolve_device(args.device, cuda)
    bf16 = cuda and torch.cuda.is_bf16_supported()
    execution = Execution(device=device, precision=resolve_precision(args.precision, device, bf16))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]data[/] {corpus.description}")
    console.print(
        f"[bold]model[/] {describe(model)}; lr={optim.lr:g}, {run.steps} steps of "
        f"{run.batch_size}x{model.seq_len} tokens; {execution.device}, {execution.precision}"
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[msg]}"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("training", total=run.steps, msg="")

        def on_eval(step: int, val: float) -> bool:
            progress.update(task, completed=step, msg=f"val loss {val:.4f}")
            return False

        result, _ = train(
            run,
            corpus,
            execution=execution,
            on_eval=on_eval,
            checkpoint_path=out / "checkpoint.pt",
            checkpoint_every=run.eval_every,
        )
        progress.update(task, completed=result.steps_done)

    summary = {"run": run.to_dict(), "result": result.to_dict()}
    (out / "result.json").write_text(json.dumps(summary, indent=1))
    console.print(
        f"[bold]{result.status}[/]: {result.reason}; final val loss "
        f"{result.final_val_loss:.4f}; {result.tokens:,} tokens, {result.flops:.3g} FLOPs"
    )
    console.print(f"wrote {out / 'result.json'}")
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
