"""The joint fit redone on finished runs: the target's LR shift as the run computed it and as the
current code computes it from the same optima (the transfer check's and the axes' sections of
`summary.json`, the run's own `config.yaml`). Nothing is trained.

    python -m analysis.joint_refit runs/gpt_small runs/gpt_small_hf_llama
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from omegaconf import OmegaConf

from sweep.stages.axes import AXES, joint_summary, optimum_points


def refit(run_dir: Path) -> dict:
    """The run's joint shift and the one the current fit gives, with its parts."""
    summary = json.loads((run_dir / "summary.json").read_text())
    cfg = OmegaConf.load(run_dir / "config.yaml")
    axes = {k: v for k, v in summary["axes"].items() if k in AXES}
    points = optimum_points(cfg, axes, summary.get("transfer"))
    joint = joint_summary(cfg, math.log2(summary["tune"]["best_params"]["lr"]), points)
    return {
        "run": run_dir.name,
        "shift_as_run": summary["axes"]["joint"]["log2_shift_vs_carry"],
        "shift_now": joint["log2_shift_vs_carry"],
        "parts": joint["shifts"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    args = parser.parse_args()
    for run_dir in args.runs:
        r = refit(run_dir)
        parts = "; ".join(
            f"{name} {p['fitted']:+.3f} ± {p['stderr']:.3f} → {p['shrunk']:+.3f}"
            for name, p in r["parts"].items()
        )
        print(f"{r['run']}: as run {r['shift_as_run']:+.3f}, now {r['shift_now']:+.3f} ({parts})")


if __name__ == "__main__":
    main()
