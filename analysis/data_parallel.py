"""Benchmark: one training run in 1 process against the same run data-parallel over N processes.

Every configuration trains the same model on the same global batches (`sweep.core.train.train`,
gloo on the CPU, NCCL on GPUs), so their losses agree to round-off (checked and printed) and
their step times compare directly. On the CPU the fair comparison gives both the same cores: one
process with N threads against N processes with one thread each.

    python -m analysis.data_parallel --width 256 --steps 30 --out bench_results/dp.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sweep.core.data import DataConfig, load_corpus
from sweep.core.hardware import Execution, World
from sweep.core.model import GPTConfig
from sweep.core.train import OptimConfig, RunConfig, train


def run_config(args: argparse.Namespace) -> RunConfig:
    model = GPTConfig(
        d_model=args.width, base_d_model=64, n_layer=args.layers, d_head=32, seq_len=args.seq_len
    )
    return RunConfig(
        model=model,
        optim=OptimConfig(lr=1e-2, warmup_steps=5),
        steps=args.steps,
        batch_size=args.batch_size,
        eval_every=args.steps,
        eval_batches=2,
    )


def worker(rank: int, size: int, threads: int, port: int, args: argparse.Namespace, out: Any):
    torch.set_num_threads(threads)
    world = World(rank, size, rank, args.strategy)
    if size > 1:
        os.environ |= {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": str(size),
        }
        dist.init_process_group("gloo")
    corpus = load_corpus(DataConfig())
    result, _ = train(run_config(args), corpus, execution=Execution(), world=world)
    if world.main:
        out.put(result.to_dict())
    if size > 1:
        dist.barrier()
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(processes: int, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = free_port()
    procs = [
        context.Process(target=worker, args=(rank, processes, threads, port, args, queue))
        for rank in range(processes)
    ]
    for p in procs:
        p.start()
    result = queue.get(timeout=1800)
    for p in procs:
        p.join()
    run = run_config(args)
    return {
        "processes": processes,
        "threads_each": threads,
        "tokens_per_s": result["tokens_per_s"],
        "step_s": run.tokens_per_step / result["tokens_per_s"],
        "final_train_loss": result["train_loss"][-1][1],
        "final_val_loss": result["val_loss"][-1][1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--strategy", choices=["ddp", "fsdp"], default="ddp")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    n = args.processes
    rows = [measure(1, 1, args), measure(1, n, args), measure(n, 1, args)]
    base = rows[1]["step_s"]  # one process with the same cores as the N processes
    print(
        f"width {args.width}, {args.layers} layers, batch {args.batch_size}x{args.seq_len}, "
        f"{args.steps} steps, {args.strategy}"
    )
    print(
        f"{'processes':>9} {'threads':>7} {'step s':>8} {'tokens/s':>9} {'vs 1 proc':>9} "
        f"{'final train loss':>17}"
    )
    for row in rows:
        row["speedup_vs_one_process_same_cores"] = base / row["step_s"]
        print(
            f"{row['processes']:>9} {row['threads_each']:>7} {row['step_s']:>8.4f} "
            f"{row['tokens_per_s']:>9.0f} {row['speedup_vs_one_process_same_cores']:>8.2f}x "
            f"{row['final_train_loss']:>17.6f}"
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"settings": vars(args) | {"out": str(args.out)}, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
