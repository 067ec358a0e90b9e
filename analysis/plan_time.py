"""Benchmark: how long `stages=[plan]` takes for every shipped ladder, what it says the checks
cost, and how close its clock (`sweep.core.throughput`) comes to step times measured here.

Each plan runs as the user runs it (`python -m sweep.run +ladder=NAME stages=[plan]`, a fresh
run folder, so the reference steps are measured too); `--extra` adds overrides to one ladder's
command (a cluster's launcher and stated throughput). The clock is then checked against real
steps: for the ladders whose steps this machine trains in under a second, one step of the
proxy, the widest rung and the target, timed with the jobs' thread count.

    python -m analysis.plan_time --out bench_results/plan_time.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from sweep.config import (
    compose_config,
    data_config,
    execution,
    resolve_hardware,
    resolve_vocabulary,
    run_config,
    target_depth,
)
from sweep.core.data import load_corpus
from sweep.core.throughput import Throughput
from sweep.core.train import RunConfig, train

LADDERS = Path(__file__).resolve().parent.parent / "conf" / "ladder"
CLUSTER = [
    "launcher=slurm",
    "launcher.nodes=8",
    "launcher.gpus_per_node=8",
    "hardware.peak_tflops=989",
    "hardware.mfu=0.4",
    "model.vocab_size=50304",
]
TIMED_STEPS = 5
MAX_STEP_FLOPS = 2e10  # steps this machine trains in well under a second


def plan_row(ladder: str, extra: list[str], root: Path) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "sweep.run", f"+ladder={ladder}", "stages=[plan]",
        f"out_root={root}", "logger=none", *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{ladder}: {proc.stderr.strip().splitlines()[-1]}")
    record = json.loads((root / ladder / "plan.json").read_text())
    budget = record.get("budget")
    return {
        "ladder": ladder,
        "overrides": extra,
        "plan_seconds": seconds,
        "estimated_seconds": record["total"]["seconds"],
        "max_besides_target": record["total"]["max_besides_target"],
        "budget": None if budget is None else budget["budget_vs_target"],
        "throughput": record["throughput"],
    }


def step_seconds(run: RunConfig, corpus, cfg) -> float:
    """Seconds per step of `run` here, a warm-up step left out."""
    probe = RunConfig(
        run.model, run.optim, TIMED_STEPS + 1, run.batch_size, run.seed, TIMED_STEPS + 1, 1
    )
    result, _ = train(probe, corpus, execution=execution(cfg))
    return probe.tokens_per_step / result.tokens_per_s


def clock_rows(ladder: str, throughput: Throughput) -> list[dict[str, Any]]:
    cfg = compose_config(f"+ladder={ladder}", "logger=none")
    resolve_hardware(cfg, 0)
    resolve_vocabulary(cfg)
    hp, lad = dict(cfg.ladder.hparams), cfg.ladder
    shapes = {
        "proxy": run_config(cfg, lad.widths[0], "mup", hp, lad.tune_steps, cfg.seed),
        "widest rung": run_config(cfg, lad.widths[-1], "mup", hp, lad.transfer_steps, cfg.seed),
        "target": run_config(
            cfg, lad.target, "mup", hp, lad.target_steps, cfg.seed, target_depth(cfg)
        ),
    }
    corpus, rows = load_corpus(data_config(cfg)), []
    torch.set_num_threads(int(cfg.launcher.cpus_per_task))
    for name, run in shapes.items():
        if run.flops / run.steps > MAX_STEP_FLOPS:
            continue
        measured = step_seconds(run, corpus, cfg)
        estimated = throughput.step_seconds(run)
        rows.append({
            "ladder": ladder, "shape": name, "width": run.model.d_model,
            "step_flops": run.flops / run.steps, "measured_s": measured,
            "estimated_s": estimated, "estimated_over_measured": estimated / measured,
        })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="bench_results/plan_time.json")
    args = parser.parse_args(argv)
    ladders = sorted(p.stem for p in LADDERS.glob("*.yaml") if not p.stem.endswith("_schema"))
    plans, clock = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for ladder in ladders:
            extra = CLUSTER if ladder == "gpt_cluster" else []
            row = plan_row(ladder, extra, Path(tmp) / ladder)
            plans.append(row)
            budget = "null" if row["budget"] is None else f"{row['budget']:g}"
            print(
                f"{ladder:12s} plan {row['plan_seconds']:5.1f} s   estimate "
                f"{row['estimated_seconds'] / 3600:9.2f} h   besides target ≤ "
                f"{row['max_besides_target']:6.3f} target runs (budget {budget})   "
                f"{row['throughput']['source']}"
            )
        for row in plans:
            if row["ladder"] != "gpt_cluster":  # its rate is a cluster's, stated
                clock += clock_rows(row["ladder"], Throughput(**row["throughput"]))
    print("\nthe clock (each ladder's own measured throughput) against steps measured here")
    for r in clock:
        print(
            f"{r['ladder']:12s} {r['shape']:12s} width {r['width']:5d}  "
            f"{r['step_flops']:9.3g} FLOPs  measured {r['measured_s'] * 1e3:8.1f} ms  "
            f"estimated {r['estimated_s'] * 1e3:8.1f} ms  ×{r['estimated_over_measured']:.2f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m analysis.plan_time", *(argv or sys.argv[1:])])
    out.write_text(json.dumps({"command": command, "plans": plans, "clock": clock}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
