"""Seconds of one training run with `sweep.core.train.train`, after one untimed warm-up run: the
figure BENCHMARKS.md compares between two checkouts of the code, run alternately.

    PYTHONPATH=<checkout> python -m analysis.step_time --width 32 --steps 150
"""

from __future__ import annotations

import argparse
import time

import torch

from sweep.core.data import DataConfig, load_corpus
from sweep.core.model import GPTConfig
from sweep.core.train import OptimConfig, RunConfig, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = GPTConfig(
        d_model=args.width, base_d_model=32, n_layer=2, d_head=16, seq_len=128, vocab_size=256
    )
    run = RunConfig(
        model=model,
        optim=OptimConfig(lr=0.01, warmup_steps=10),
        steps=args.steps,
        batch_size=16,
        eval_every=50,
        eval_batches=4,
    )
    corpus = load_corpus(DataConfig())
    train(run, corpus)  # warm-up
    start = time.perf_counter()
    train(run, corpus)
    print(f"{time.perf_counter() - start:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
