"""Coordinate check (METHODS §2): do activations keep their size as the model gets wider?

Trains every width of a ladder for a few steps at a deliberately large LR, recording the mean
|x| of each module's output before every update, and fits the slope of log(mean |x|) against
log(width) per module and step. Under µP the slopes stay near 0 (or below: the readout starts
at order 1/sqrt(m) and grows to order 1); under SP they grow with the step as updates blow up
with width. The check fails when the worst (largest) slope exceeds a threshold.

    python -m analysis.coord_check --widths 64 128 256 512 --out coord_check.png
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace

import numpy as np
import torch

from sweep.data import Corpus, DataConfig, load_corpus, train_batch
from sweep.model import GPT, GPTConfig, lm_loss
from sweep.train import OptimConfig, make_optimizer

DEFAULT_THRESHOLD = 0.25  # the largest slope µP may show; SP reaches about 1 within a few steps


@dataclass(frozen=True)
class CoordCheck:
    parametrization: str
    widths: list[int]
    modules: list[str]
    scales: np.ndarray  # (module, step, width): mean |x| averaged over seeds
    slopes: np.ndarray  # (module, step): d log(mean |x|) / d log(width)

    def worst(self) -> tuple[str, int, float]:
        """(module, step, slope) of the largest slope: the module blowing up fastest."""
        i, t = np.unravel_index(np.argmax(self.slopes), self.slopes.shape)
        return self.modules[i], int(t), float(self.slopes[i, t])

    def passes(self, threshold: float = DEFAULT_THRESHOLD) -> bool:
        return self.worst()[2] <= threshold


def tracked_modules(model: GPT) -> dict[str, torch.nn.Module]:
    """Modules whose outputs the check follows: embedding, each attention, MLP and block, logits."""
    tracked = {"embedding": model.wte}
    for i, block in enumerate(model.blocks):
        tracked |= {f"block{i}.attn": block.attn, f"block{i}.mlp": block.mlp, f"block{i}": block}
    return tracked | {"logits": model}


def record_scales(
    model: GPT, corpus: Corpus, optim: OptimConfig, steps: int, batch_size: int, seed: int
) -> dict[str, list[float]]:
    """Mean |output| of every tracked module in the forward pass before each of `steps` updates."""
    seen: dict[str, list[float]] = {name: [] for name in tracked_modules(model)}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: seen[name].append(out.detach().abs().mean().item())
        )
        for name, module in tracked_modules(model).items()
    ]
    optimizer = make_optimizer(model, optim)
    try:
        for step in range(steps):
            x, y = train_batch(corpus.train, step, seed, batch_size, model.cfg.seq_len)
            loss = lm_loss(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def coord_check(
    base: GPTConfig,
    widths: list[int],
    optim: OptimConfig,
    corpus: Corpus,
    steps: int = 5,
    batch_size: int = 8,
    seeds: tuple[int, ...] = (0, 1),
) -> CoordCheck:
    """Run the check for `base.parametrization` over `widths` (the smallest is the µP base)."""
    if len(widths) < 3 or sorted(widths) != list(widths) or len(set(widths)) != len(widths):
        raise ValueError(f"widths must be at least 3 strictly increasing values, got {widths}")
    per_width = []
    for width in widths:
        cfg = replace(base, d_model=width, base_d_model=widths[0])
        runs = []
        for seed in seeds:
            torch.manual_seed(seed)
            runs.append(record_scales(GPT(cfg), corpus, optim, steps, batch_size, seed))
        per_width.append({name: np.mean([r[name] for r in runs], axis=0) for name in runs[0]})
    modules = list(per_width[0])
    scales = np.array([[w[name] for w in per_width] for name in modules])  # (module, width, step)
    scales = scales.transpose(0, 2, 1)
    log_w = np.log(widths)
    slopes = np.array([[np.polyfit(log_w, np.log(s), 1)[0] for s in mod] for mod in scales])
    return CoordCheck(base.parametrization, list(widths), modules, scales, slopes)


def plot(checks: list[CoordCheck], path: str) -> None:
    """One row per parametrization, one panel per step: mean |x| vs width for every module."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = checks[0].scales.shape[1]
    fig, axes = plt.subplots(
        len(checks), steps, figsize=(3 * steps, 3 * len(checks)), sharex=True, squeeze=False
    )
    for row, check in zip(axes, checks, strict=True):
        for t, ax in enumerate(row):
            for i, name in enumerate(check.modules):
                ax.plot(check.widths, check.scales[i, t], marker="o", ms=3, label=name)
            ax.set(xscale="log", yscale="log", title=f"{check.parametrization.upper()}  step {t}")
            ax.minorticks_off()
            ax.set_xticks(check.widths, [str(w) for w in check.widths])
        row[0].set_ylabel("mean |x|")
    axes[0, -1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    for ax in axes[-1]:
        ax.set_xlabel("width")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    parser.add_argument("--out", default="coord_check.png")
    args = parser.parse_args(argv)

    corpus = load_corpus(DataConfig())
    optim = OptimConfig(lr=args.lr, schedule="constant")
    checks = []
    for parametrization in ("mup", "sp"):
        base = GPTConfig(
            n_layer=args.layers,
            d_head=args.d_head,
            seq_len=args.seq_len,
            d_model=args.widths[0],
            parametrization=parametrization,
        )
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
    plot(checks, args.out)

    mup, sp = checks
    print(f"{'module':<14}{'µP max slope':>14}{'SP max slope':>14}")
    for i, name in enumerate(mup.modules):
        print(f"{name:<14}{mup.slopes[i].max():>14.3f}{sp.slopes[i].max():>14.3f}")
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
