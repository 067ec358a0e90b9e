"""Coordinate check from the command line: µP and SP over a width ladder, a figure and a table.

    python -m analysis.coord_check --widths 64 128 256 512 --out coord_check.png
    python -m analysis.coord_check --factory examples/llama.py:build --widths 32 64 128 256

The computation is `sweep.core.coord_check`; the figure is the report's (`sweep.edges.figures`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweep.core.coord_check import DEFAULT_THRESHOLD, coord_check
from sweep.core.custom import CustomConfig
from sweep.core.data import DataConfig, load_corpus
from sweep.core.model import GPTConfig
from sweep.core.train import OptimConfig
from sweep.edges.figures import plot_coord_check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--d-head", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--factory", default=None, help="a custom model (as model.factory)")
    parser.add_argument("--readout", default=None, help="its readout module (as model.readout)")
    parser.add_argument("--out", default="coord_check.png")
    args = parser.parse_args(argv)

    corpus = load_corpus(DataConfig())
    optim = OptimConfig(lr=args.lr, schedule="constant")
    checks = []
    for parametrization in ("mup", "sp"):
        shape = {"n_layer": args.layers, "seq_len": args.seq_len, "d_model": args.widths[0]}
        if args.factory:
            base = CustomConfig(
                factory=args.factory, readout=args.readout, parametrization=parametrization, **shape
            )
        else:
            base = GPTConfig(d_head=args.d_head, parametrization=parametrization, **shape)
        checks.append(
            coord_check(
                base,
                args.widths,
                optim,
                corpus,
                args.steps,
                args.batch_size,
                tuple(range(args.seeds)),
            )
        )
    plot_coord_check(checks, Path(args.out))

    mup, sp = checks
    width = max(14, *(len(name) + 2 for name in mup.modules))
    print(f"{'module':<{width}}{'µP max slope':>14}{'SP max slope':>14}")
    for i, name in enumerate(mup.modules):
        print(f"{name:<{width}}{mup.slopes[i].max():>14.3f}{sp.slopes[i].max():>14.3f}")
    for check in checks:
        module, step, slope = check.worst()
        print(f"{check.parametrization}: worst slope {slope:.3f} ({module}, step {step})")
    print(f"wrote {args.out}")
    if not mup.passes(args.threshold):
        print(f"FAIL: µP slope above {args.threshold}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
