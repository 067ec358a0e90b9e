"""Warm-run schedules and progressive growth: which schedule makes a warm start pay most at a
ladder's target, on several seeds, with the source's cost counted or not.

    python -m analysis.warm_schedules --ladder gpt_small --seeds 0 1 2

Tunes the proxy with the pipeline's own tune stage (`<out>/<ladder>`, resumable), then trains the
target cold and warm (shrink-pad-perturb from the widest ladder width, the tuned HPs unchanged,
the same batches) under each variant of the warm run's schedule (`VARIANTS`: its warmup, from
the LR the source ended at, and its peak), progressive growth through a middle width, and the
two first variants on a schedule half as long. Per run: steps to the same seed's cold final
validation loss and the speedup, without the source (what the pipeline pays: its source is the
transfer check's run) and with it (what a source trained for the purpose costs), in target-step
FLOPs (docs/methods.md §7).

Every run is a Submitit job (`launcher=local`, 2 at a time) that writes `<out>/<ladder>/bench/
<run>.json`; a rerun skips finished runs. Prints a table; writes `schedules.json` and
`warm_schedules.png` there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from analysis.warmstart import bench_job, pipeline_cfg, source_job, tune_proxy, warmstart_of
from sweep.config import plain
from sweep.core.atomic import write_atomic
from sweep.core.speedup import speedup
from sweep.core.train import RunResult
from sweep.edges.launch import run_jobs

# the warm run's schedule: {warmstart setting: value}; the ladder's warmup and peak otherwise
VARIANTS: dict[str, dict[str, Any]] = {
    "warmup10": {},  # the ladder's 10 warmup steps, rising from the source's final LR
    "no_warmup": {"warmup": 0},
    "warmup10_peak0.5": {"peak": 0.5},
}
PROGRESSIVE_STEPS = 50  # progressive: the next-to-widest width, grown into the widest, then 2×
HALF = ("warmup10", "no_warmup")  # also trained on a schedule of half the target's steps


def plan(ladder: str, out: Path, seeds: list[int], *overrides: str) -> list[dict[str, Any]]:
    spp = warmstart_of(ladder, out, "shrink_pad_perturb")
    shape = pipeline_cfg(ladder, out, *overrides).ladder
    full, widths = shape.target_steps, list(shape.widths)
    progressive = {
        "source": str(widths[-2]),
        "stages": [widths[-1]],
        "stage_steps": PROGRESSIVE_STEPS,
    }
    runs = []
    for seed in seeds:
        runs.append({"name": f"cold_s{seed}", "seed": seed, "shift": 0, "warmstart": None})
        for name, settings in (VARIANTS | {"progressive": progressive}).items():
            ws = spp | settings
            runs.append({"name": f"{name}_s{seed}", "seed": seed, "shift": 0, "warmstart": ws})
            if name in HALF:
                runs.append(
                    {
                        "name": f"{name}_b{full // 2}_s{seed}",
                        "seed": seed,
                        "shift": 0,
                        "steps": full // 2,
                        "warmstart": ws,
                    }
                )
    return runs


def compare(record: dict, cold: dict, tune_flops: float) -> dict[str, Any]:
    """A warm run against its seed's cold run: steps to the cold final loss, the speedup with
    the warm start's extra cost as the pipeline pays it (stages only), as a source trained for
    the purpose costs (source and stages), and with the tuning too (docs/methods.md §7)."""
    result, baseline = RunResult(**record["result"]), RunResult(**cold["result"])
    per_step = cold["flops_per_step"]
    info = record["warmstart"]
    paid = info.get("stage_flops", 0) / per_step
    full = paid + info.get("source_flops", 0) / per_step
    out = speedup(result.val_loss, baseline.val_loss, paid, tune_flops / per_step)
    with_source = speedup(result.val_loss, baseline.val_loss, source_steps_equiv=full)
    return {
        "final_val_loss": result.final_val_loss,
        "cold_final_val_loss": baseline.final_val_loss,
        "steps": result.steps_done,
        "steps_to_cold_final": out["warm_steps"],
        "speedup": out["speedup"],
        "speedup_flops": out["speedup_with_source"],
        "speedup_with_source": with_source["speedup_with_source"],
        "speedup_with_tuning": out["speedup_with_tuning"],
        "charged_steps": paid,
        "source_steps": full - paid,
    }


def stats(values: list[float | None]) -> dict[str, Any]:
    finite = [v for v in values if v is not None]
    if len(finite) < len(values) or not finite:
        return {"values": values, "mean": None, "min": None, "max": None}
    return {
        "values": values,
        "mean": float(np.mean(finite)),
        "min": min(finite),
        "max": max(finite),
    }


def summarize(records: dict[str, dict], seeds: list[int], tune_flops: float) -> dict[str, Any]:
    rows = {
        name: compare(rec, records[f"cold_s{rec['seed']}"], tune_flops)
        for name, rec in records.items()
        if not name.startswith("cold_")
    }
    variants = sorted({name.rsplit("_s", 1)[0] for name in rows})
    table = {}
    for variant in variants:
        per_seed = [rows[f"{variant}_s{s}"] for s in seeds]
        table[variant] = {
            key: stats([r[key] for r in per_seed])
            for key in (
                "speedup",
                "speedup_flops",
                "speedup_with_source",
                "speedup_with_tuning",
                "final_val_loss",
                "steps_to_cold_final",
            )
        }
    cold = stats([RunResult(**records[f"cold_s{s}"]["result"]).final_val_loss for s in seeds])
    return {
        "runs": rows,
        "variants": table,
        "cold_final_val_loss": cold,
        "seeds": seeds,
        "tuning_flops": tune_flops,
    }


def plot(records: dict[str, dict], summary: dict, path: Path) -> Path:
    """Left: validation curves of the first seed; right: each variant's speedups over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curves, bars) = plt.subplots(1, 2, figsize=(14, 4.8))
    first = summary["seeds"][0]
    for name, rec in sorted(records.items()):
        if rec["seed"] == first:
            steps, losses = zip(*RunResult(**rec["result"]).val_loss, strict=True)
            style = {"color": "black", "lw": 2} if name.startswith("cold") else {}
            curves.plot(steps, losses, label=name.rsplit("_s", 1)[0], **style)
    cold = records[f"cold_s{first}"]
    cold_final = RunResult(**cold["result"]).final_val_loss
    curves.axhline(cold_final, color="grey", ls=":", lw=1)
    curves.set(
        xlabel="step",
        ylabel="validation loss",
        title=f"target runs, seed {first}",
        ylim=(cold_final - 0.3, cold_final + 0.9),
    )
    curves.legend(fontsize=8)
    names = list(summary["variants"])
    for offset, (key, label) in enumerate(
        (
            ("speedup", "steps"),
            ("speedup_flops", "FLOPs, as the pipeline pays"),
            ("speedup_with_source", "FLOPs, with a trained source"),
        )
    ):
        stats_ = [summary["variants"][n][key] for n in names]
        mean = [0 if s["mean"] is None else s["mean"] for s in stats_]
        err = [
            [0 if s["mean"] is None else s["mean"] - s["min"] for s in stats_],
            [0 if s["mean"] is None else s["max"] - s["mean"] for s in stats_],
        ]
        x = np.arange(len(names)) + (offset - 1) * 0.27
        bars.bar(x, mean, 0.27, yerr=err, capsize=3, label=label)
    bars.axhline(1, color="grey", lw=1)
    bars.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    bars.set(
        ylabel="speedup to the cold final loss (min-max over seeds)",
        title="warm-run schedules and progressive growth",
    )
    bars.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fmt(stat: dict[str, Any], spec: str = ".2f") -> str:
    if stat["mean"] is None:
        return "never"
    return f"{stat['mean']:{spec}} [{stat['min']:{spec}}, {stat['max']:{spec}}]"


def print_table(summary: dict) -> None:
    print(f"cold final val loss {fmt(summary['cold_final_val_loss'], '.4f')} (mean [min, max])")
    head = (
        "variant",
        "final loss",
        "steps to cold",
        "speedup",
        "FLOPs (pipeline)",
        "with a trained source",
        "with tuning",
    )
    print(" ".join(f"{h:>22}" for h in head))
    for name, row in summary["variants"].items():
        cells = [fmt(row["final_val_loss"], ".4f"), fmt(row["steps_to_cold_final"], ".0f")]
        cells += [
            fmt(row[k])
            for k in ("speedup", "speedup_flops", "speedup_with_source", "speedup_with_tuning")
        ]
        print(f"{name:>22} " + " ".join(f"{c:>22}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ladder", default="gpt_small")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/warm_schedules")
    parser.add_argument("--max-parallel", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=10, help="target and source runs")
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. ladder.target_steps=100"
    )
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg, folder, hparams, tune_flops = tune_proxy(
        args.ladder, out, args.max_parallel, *args.overrides
    )
    todo_plan = plan(args.ladder, out, args.seeds, *args.overrides)
    todo = [r for r in todo_plan if not (folder / "bench" / f"{r['name']}.json").exists()]
    common = {
        "cfg": plain(cfg),
        "dir": str(folder),
        "hparams": hparams,
        "eval_every": args.eval_every,
    }
    sources = {}
    for r in todo:  # one job per distinct source, before any target run needs it
        if r["warmstart"] is not None:
            key = (r["warmstart"]["source"], r["seed"])
            sources.setdefault(key, {**common, "seed": r["seed"], "warmstart": r["warmstart"]})

    def report(spec: dict, result: Any, error: BaseException | None) -> None:
        print(f"{spec.get('name', 'source')}: {error or result}", flush=True)

    launcher, jobs = plain(cfg.launcher), folder / "jobs" / "bench"
    run_jobs(launcher, jobs, source_job, list(sources.values()), report)
    run_jobs(launcher, jobs, bench_job, [{**common, **r} for r in todo], report)
    records = {
        r["name"]: json.loads(path.read_text())
        for r in todo_plan
        if (path := folder / "bench" / f"{r['name']}.json").exists()
    }
    if len(records) < len(todo_plan):
        print(f"{len(todo_plan) - len(records)} runs failed; rerun the same command to retry")
        return 1
    summary = summarize(records, args.seeds, tune_flops) | {"tuned_hparams": hparams}
    write_atomic(folder / "schedules.json", json.dumps(summary, indent=1, default=float).encode())
    print_table(summary)
    print(f"plot  {plot(records, summary, folder / 'warm_schedules.png')}")
    print(f"json  {folder / 'schedules.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
