"""Depth transfer: does the optimal LR stay put as the model gets deeper? (CompleteP,
docs/methods.md §1)

For each depth, trains a µP GPT over a grid of log2 LRs and fits the optimum (docs/methods.md
§3), twice: with CompleteP (residual branches × (L_base/L)^α, hidden LR × (L/L_base)^(α-1),
L_base the shallowest depth) and without depth scaling (every depth its own base). Drift =
max − min of the optima across depths, as for width.

    python -m analysis.depth_transfer --depths 2 4 8 16 --width 64

Each (variant, depth, LR) result is appended to the JSON as it finishes, so a rerun continues.
Prints a table; writes the JSON and a loss-vs-LR plot (one panel per variant).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from sweep.core.atomic import write_atomic
from sweep.core.data import DataConfig, load_corpus
from sweep.core.lr_curve import fit_optimum
from sweep.core.metrics import drift
from sweep.core.model import GPTConfig
from sweep.core.train import OptimConfig, RunConfig, train

VARIANTS = {"completep": 1.0, "no depth scaling": None}  # name -> α (None: base = the depth)


def run_config(depth: int, base: int, alpha: float | None, log2_lr: float, args) -> RunConfig:
    model = GPTConfig(
        n_layer=depth,
        d_model=args.width,
        d_head=args.d_head,
        seq_len=args.seq_len,
        base_n_layer=depth if alpha is None else base,
        depth_alpha=1.0 if alpha is None else alpha,
    )
    optim = OptimConfig(lr=2.0**log2_lr, warmup_steps=args.steps // 15)
    return RunConfig(
        model=model,
        optim=optim,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        eval_every=args.steps,
        eval_batches=4,
    )


def optima(results: dict, depths: list[int], grid: list[float]) -> dict:
    out = {}
    for variant in VARIANTS:
        per_depth = {}
        for depth in depths:
            losses = [results.get(f"{variant}|{depth}|{lr}", math.nan) for lr in grid]
            per_depth[depth] = fit_optimum(grid, losses).log2_lr
        out[variant] = {"optimum_log2_lr": per_depth, "drift_log2": drift(per_depth)}
    return out


def plot(results: dict, summary: dict, depths: list[int], grid: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(VARIANTS), figsize=(11, 4.2), sharey=True)
    for ax, variant in zip(axes, VARIANTS, strict=True):
        for depth in depths:
            losses = [results.get(f"{variant}|{depth}|{lr}", math.nan) for lr in grid]
            (line,) = ax.plot(grid, losses, "o-", label=f"L={depth}")
            ax.axvline(summary[variant]["optimum_log2_lr"][depth], color=line.get_color(), ls=":")
        ax.set(
            title=f"{variant}: drift {summary[variant]['drift_log2']:.2f} log2",
            xlabel="log2 LR",
            ylabel="final validation loss",
        )
        finite = [v for v in results.values() if math.isfinite(v)]
        ax.set_ylim(min(finite) - 0.05, min(finite) + 1.0)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--d-head", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr-grid", type=float, nargs="+", default=[-10, -9, -8, -7, -6, -5, -4])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench_results/depth_transfer.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    corpus = load_corpus(DataConfig())
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    base = min(args.depths)
    for variant, alpha in VARIANTS.items():
        for depth in args.depths:
            for lr in args.lr_grid:
                key = f"{variant}|{depth}|{lr}"
                if key not in results:
                    run = run_config(depth, base, alpha, lr, args)
                    results[key] = train(run, corpus)[0].final_val_loss
                    write_atomic(out, json.dumps(results, indent=1).encode())
                print(f"{variant:<17} L={depth:<3} log2 lr {lr:>5}: {results[key]:.4f}", flush=True)
    summary = optima(results, args.depths, args.lr_grid)
    for variant, row in summary.items():
        optimum = " / ".join(f"{row['optimum_log2_lr'][d]:.2f}" for d in args.depths)
        print(
            f"{variant:<17} optimum log2 LR at L={args.depths}: {optimum}; "
            f"drift {row['drift_log2']:.2f}"
        )
    plot(results, summary, args.depths, args.lr_grid, out.with_suffix(".png"))
    write_atomic(out.with_name(out.stem + "_summary.json"), json.dumps(summary, indent=1).encode())
    print(f"plot  {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
