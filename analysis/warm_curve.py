"""The warm start's speedup as a curve over the target's length, from warmup-stable-decay runs.

    python -m analysis.warm_curve --ladder gpt_small --seeds 0 1 2 --max-steps 1000

A WSD run can be stopped and decayed at any step of its stable phase, so one long run per seed
and kind (cold, and warm: shrink-pad-perturb from the widest ladder width, the pipeline's
default) keeps snapshots where shorter runs start their decay, and each shorter run is that
snapshot decayed over its own last `ladder.decay_fraction` (`train(..., branch_from=...)`: the
same losses as a run scheduled to end there). That gives the final loss at every length, cold
and warm, for the price of one long run and the short decays; then, at each cold length L, the
warm length that reaches the cold final loss (interpolated between the measured warm lengths)
and the speedup L ÷ that length, per seed, in steps and in tokens per parameter. "With source"
adds the source's training, which the pipeline does not pay (its source is the transfer check's
run, docs/methods.md §7).

The proxy is tuned by the pipeline's own tune stage (`<out>/<ladder>`, resumable) with the
ladder's schedule; the curve's runs are in `<out>/<ladder>/curve/`, each a Submitit job
(`launcher=local`, 2 at a time) writing `<name>.json`; a rerun skips finished runs. Prints a
table; writes `curve.json` and `warm_curve.png` there.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from analysis.warmstart import pipeline_cfg, tune_proxy
from sweep.config import job_config, plain, resolve_vocabulary, run_config, target_depth
from sweep.core.atomic import write_atomic
from sweep.core.models import state_shapes
from sweep.core.speedup import steps_to_reach
from sweep.core.train import RunResult, snapshot_path
from sweep.edges.launch import run_jobs
from sweep.stages.target import train_target

COLD_FRACTIONS = (0.3, 0.6, 1.0)  # of --max-steps: the cold lengths the speedup is read at
WARM_FRACTIONS = (0.1, 0.15, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0)  # where the warm loss is measured


def lengths(max_steps: int, fractions: tuple[float, ...]) -> list[int]:
    return sorted({round(max_steps * f) for f in fractions})


def decay_start(steps: int, decay_fraction: float) -> int:
    """The step a WSD run of `steps` starts decaying at (`sweep.core.train.lr_factor`)."""
    return steps - round(decay_fraction * steps)


def curve_job(spec: dict[str, Any]) -> str:
    """One run: a long one keeping snapshots, or a short one decayed from the long one's."""
    torch.set_num_threads(1)
    cfg = job_config(spec["cfg"])
    folder = Path(spec["dir"])
    long = folder / f"{spec['kind']}_s{spec['seed']}.ckpt"
    branch = spec.get("branch")
    checkpoint = folder / f"{spec['name']}.ckpt" if branch is not None else long
    record = train_target(
        cfg,
        folder,
        spec["hparams"],
        warm=spec["kind"] == "warm",
        checkpoint=checkpoint,
        seed=spec["seed"],
        steps=spec["steps"],
        branch_from=None if branch is None else snapshot_path(long, branch),
        snapshots=tuple(spec.get("snapshots", ())),
    )
    record |= {"name": spec["name"], "branch": branch}
    write_atomic(folder / f"{spec['name']}.json", json.dumps(record).encode())
    if branch is not None:
        checkpoint.unlink()  # the JSON is the record
    return f"final val loss {RunResult(**record['result']).final_val_loss:.4f}"


def plan(max_steps: int, seeds: list[int], decay_fraction: float) -> list[list[dict]]:
    """Two rounds of runs: the long ones (with their snapshots), then the decays from them."""
    rounds: list[list[dict]] = [[], []]
    for seed in seeds:
        for kind, fractions in (("cold", COLD_FRACTIONS), ("warm", WARM_FRACTIONS)):
            short = [s for s in lengths(max_steps, fractions) if s < max_steps]
            snaps = [decay_start(s, decay_fraction) for s in short]
            rounds[0].append(
                {
                    "name": f"{kind}_L{max_steps}_s{seed}",
                    "kind": kind,
                    "seed": seed,
                    "steps": max_steps,
                    "snapshots": snaps,
                }
            )
            rounds[1] += [
                {
                    "name": f"{kind}_L{s}_s{seed}",
                    "kind": kind,
                    "seed": seed,
                    "steps": s,
                    "branch": b,
                }
                for s, b in zip(short, snaps, strict=True)
            ]
    return rounds


def summarize(records: dict[str, dict], seeds: list[int], tokens_per_param: float) -> dict:
    """Per seed: the final loss at every length, cold and warm; at each cold length, the warm
    length reaching the cold final loss and the speedup; then mean, min and max over seeds."""
    per_seed: dict[int, dict] = {}
    for seed in seeds:
        finals: dict[str, dict[int, float]] = {"cold": {}, "warm": {}}
        for rec in records.values():
            if rec["seed"] == seed:
                result = RunResult(**rec["result"])
                finals[rec["kind"]][result.steps_done] = result.final_val_loss
        warm_rec = next(r for r in records.values() if r["seed"] == seed and r["kind"] == "warm")
        per_step = warm_rec["flops_per_step"]
        source_steps = warm_rec["warmstart"].get("source_flops", 0) / per_step
        warm_curve = sorted(finals["warm"].items())
        points = {}
        for length, loss in sorted(finals["cold"].items()):
            needed = steps_to_reach(warm_curve, loss)
            points[length] = {
                "cold_final": loss,
                "warm_steps": needed,
                "speedup": None if needed is None else length / needed,
                "speedup_with_source": None if needed is None else length / (needed + source_steps),
                "at_shortest": needed == warm_curve[0][0],  # a bound: the warm curve starts below
            }
        per_seed[seed] = {
            "cold": finals["cold"],
            "warm": finals["warm"],
            "points": points,
            "source_steps": source_steps,
        }
    curve = {}
    for length in sorted(per_seed[seeds[0]]["points"]):
        row: dict[str, Any] = {"tokens_per_param": length * tokens_per_param}
        for key in ("speedup", "speedup_with_source", "warm_steps"):
            values = [per_seed[s]["points"][length][key] for s in seeds]
            finite = [v for v in values if v is not None]
            row[key] = {
                "values": values,
                "mean": float(np.mean(finite)) if finite else None,
                "min": min(finite, default=None),
                "max": max(finite, default=None),
            }
        row["bound"] = any(per_seed[s]["points"][length]["at_shortest"] for s in seeds)
        curve[length] = row
    return {"seeds": per_seed, "curve": curve}


def plot(summary: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (losses, gains) = plt.subplots(1, 2, figsize=(12, 4.6))
    for seed, data in summary["seeds"].items():
        for kind, color in (("cold", "black"), ("warm", "tab:blue")):
            xs, ys = zip(*sorted((int(k), v) for k, v in data[kind].items()), strict=True)
            losses.plot(xs, ys, "o-", color=color, alpha=0.6, label=f"{kind} s{seed}")
    losses.set(
        xscale="log",
        xlabel="run length (steps, each decayed at its end)",
        ylabel="final validation loss",
        title="WSD: final loss at every length",
    )
    losses.legend(fontsize=7, ncol=2)
    lengths_, rows = zip(*sorted((int(k), v) for k, v in summary["curve"].items()), strict=True)
    for key, label in (("speedup", "speedup"), ("speedup_with_source", "counting the source")):
        mean = [r[key]["mean"] for r in rows]
        low = [r[key]["mean"] - r[key]["min"] for r in rows]
        high = [r[key]["max"] - r[key]["mean"] for r in rows]
        gains.errorbar(lengths_, mean, yerr=[low, high], fmt="o-", capsize=4, label=label)
    gains.axhline(1, color="grey", lw=1)
    gains.set(
        xscale="log",
        xlabel="cold run length (steps)",
        ylabel="speedup (min-max over seeds)",
        title="warm-start speedup against the target's length",
    )
    gains.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_table(summary: dict) -> None:
    print(
        f"{'cold steps':>10} {'tokens/param':>12} {'warm steps':>18} {'speedup':>20} "
        f"{'with source':>20}"
    )

    def cell(stat: dict, spec: str) -> str:
        if stat["mean"] is None:
            return "never"
        return f"{stat['mean']:{spec}} [{stat['min']:{spec}}, {stat['max']:{spec}}]"

    for length, row in sorted(summary["curve"].items(), key=lambda kv: int(kv[0])):
        bound = " (≥)" if row["bound"] else ""
        print(
            f"{int(length):>10} {row['tokens_per_param']:>12.3f} "
            f"{cell(row['warm_steps'], '.0f'):>18} {cell(row['speedup'], '.2f') + bound:>20} "
            f"{cell(row['speedup_with_source'], '.2f'):>20}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ladder", default="gpt_small")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--out", default="runs/warm_curve")
    parser.add_argument("--max-parallel", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. ladder.target=256")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parallel = f"launcher.max_parallel={args.max_parallel}"
    _, _, hparams, _ = tune_proxy(args.ladder, out, args.max_parallel, *args.overrides)
    cfg = pipeline_cfg(
        args.ladder,
        out,
        parallel,
        "ladder.schedule=wsd",
        f"ladder.eval_every={args.eval_every}",
        *args.overrides,
    )
    folder = out / cfg.ladder.name / "curve"
    common = {"cfg": plain(cfg), "dir": str(folder), "hparams": hparams}

    def report(spec: dict, result: Any, error: BaseException | None) -> None:
        print(f"{spec['name']}: {error or result}", flush=True)

    rounds = plan(args.max_steps, args.seeds, cfg.ladder.decay_fraction)
    for runs in rounds:
        todo = [{**common, **r} for r in runs if not (folder / f"{r['name']}.json").exists()]
        run_jobs(plain(cfg.launcher), folder / "jobs", curve_job, todo, report)
    names = [r["name"] for runs in rounds for r in runs]
    records = {n: json.loads(p.read_text()) for n in names if (p := folder / f"{n}.json").exists()}
    if len(records) < len(names):
        print(f"{len(names) - len(records)} runs failed; rerun the same command to retry them")
        return 1
    resolve_vocabulary(cfg)
    target = run_config(cfg, cfg.ladder.target, "mup", hparams, 1, 0, target_depth(cfg))
    params = sum(math.prod(shape) for shape in state_shapes(target.model).values())
    summary = summarize(records, args.seeds, target.tokens_per_step / params) | {
        "tuned_hparams": hparams,
        "target_params": params,
        "tokens_per_step": target.tokens_per_step,
    }
    write_atomic(folder / "curve.json", json.dumps(summary, indent=1, default=float).encode())
    print_table(summary)
    print(f"plot  {plot(summary, folder / 'warm_curve.png')}")
    print(f"json  {folder / 'curve.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
