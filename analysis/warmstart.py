"""Warm-start benchmark: which warm start pays at a ladder's target, by how much, and does the
proxy's tuned LR stay optimal for a warm-started target?

    python -m analysis.warmstart --ladder gpt_small --seeds 0 1

1. Tunes the proxy with the pipeline's own tune stage (`<out>/<ladder>`, resumable).
2. At the target width, with the tuned HPs unchanged and the same data order: the cold run and
   every `warmstart.method` (its own config file's settings), for each seed; a λ × σ grid of
   shrink-pad-perturb (first seed); and an LR grid (tuned LR × 2^k) for the cold run and for
   the default warm start (first seed), whose fitted optima give the drift in log2
   (docs/methods.md §3).
3. Per run: steps to the same seed's cold final validation loss, speedup, final loss, FLOPs of
   the target run and of the source that was grown (docs/methods.md §7).

Every run is a Submitit job (`launcher=local`, 2 at a time) that writes `<out>/<ladder>/bench/
<run>.json` when it ends; a rerun skips finished runs. Prints a table; writes `bench.json` and
`warmstart_bench.png` there.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from omegaconf import DictConfig

from sweep.config import compose_config, job_config, plain
from sweep.core.atomic import write_atomic
from sweep.core.lr_curve import fit_optimum
from sweep.core.speedup import speedup
from sweep.core.train import RunResult
from sweep.edges.launch import run_jobs
from sweep.pipeline import Pipeline
from sweep.stages.stage import tuned_hparams
from sweep.stages.target import train_source, train_target
from sweep.stages.tune import open_or_create_study, tuning_flops

METHOD_FILES = ("shrink_pad_perturb", "function_preserving", "rc_sampling", "stack")
RC_IID = {"method": "rc_sampling", "sampling": "iid"}  # the mean-field variant, beside stratified
GRID_SHRINK = (0.4, 0.8, 1.0)
GRID_PERTURB = (0.1, 0.3, 1.0)
LR_SHIFTS = (-2, -1, 0, 1, 2)  # log2 steps around the tuned LR
BUDGETS = (1 / 2, 2 / 3)  # shorter schedules (fractions of target_steps) for every warm start
DEFAULT = "shrink_pad_perturb"


def pipeline_cfg(ladder: str, out: Path, *overrides: str) -> DictConfig:
    fixed = (f"out_root={out}", f"+ladder={ladder}", "logger=none", "launcher.cpus_per_task=1")
    return compose_config(*fixed, *overrides)


def tune_proxy(
    ladder: str, out: Path, max_parallel: int, *overrides: str
) -> tuple[DictConfig, Path, dict[str, float], float]:
    """The proxy tuned by the pipeline's own tune stage (resumable): its config, run folder,
    tuned values and the FLOPs tuning cost."""
    cfg = pipeline_cfg(
        ladder, out, "stages=[tune]", f"launcher.max_parallel={max_parallel}", *overrides
    )
    Pipeline(cfg).run()
    folder = out / cfg.ladder.name
    study = open_or_create_study(cfg, folder)
    return cfg, folder, tuned_hparams(cfg, study), tuning_flops(study)


def warmstart_of(ladder: str, out: Path, method: str) -> dict[str, Any]:
    """The settings of `conf/warmstart/<method>.yaml`."""
    cfg = pipeline_cfg(ladder, out, f"warmstart={method}")
    return plain(cfg.warmstart)


def runs(ladder: str, out: Path, seeds: list[int]) -> list[dict[str, Any]]:
    """Every run of the benchmark: name, seed, LR shift, schedule length (None: the ladder's
    target_steps), warm-start settings (None: cold).

    With the full schedule a warm run re-warms to the peak LR and decays with the cold run, so it
    cannot reach the cold run's final loss much before the decay does; the shorter schedules
    (`BUDGETS`, their own warmup and cosine) measure how many steps a warm start saves.
    """
    methods = {m: warmstart_of(ladder, out, m) for m in METHOD_FILES}
    methods["rc_sampling_iid"] = methods["rc_sampling"] | RC_IID
    full = pipeline_cfg(ladder, out).ladder.target_steps
    out_runs = []
    for seed in seeds:
        for name, ws in {"cold": None, **methods}.items():
            out_runs.append({"name": f"{name}_s{seed}", "seed": seed, "shift": 0, "warmstart": ws})
            for budget in BUDGETS:
                steps = round(full * budget)
                out_runs.append(
                    {"name": f"{name}_b{steps}_s{seed}", "seed": seed, "shift": 0,
                     "steps": steps, "warmstart": ws}
                )  # fmt: skip
    first, spp = seeds[0], methods[DEFAULT]
    for shrink in GRID_SHRINK:
        for perturb in GRID_PERTURB:
            if (shrink, perturb) != (spp["shrink"], spp["perturb"]):
                ws = spp | {"shrink": shrink, "perturb": perturb}
                name = f"spp_l{shrink}_p{perturb}_s{first}"
                out_runs.append({"name": name, "seed": first, "shift": 0, "warmstart": ws})
    for shift in LR_SHIFTS:
        if shift:
            for kind, ws in (("cold", None), (DEFAULT, spp)):
                name = f"{kind}_lr{shift:+d}_s{first}"
                out_runs.append({"name": name, "seed": first, "shift": shift, "warmstart": ws})
    return out_runs


def with_warmstart(spec: dict[str, Any]) -> DictConfig:
    """The job's config: the tuned pipeline's, with this run's warm start and eval cadence."""
    container = copy.deepcopy(spec["cfg"])
    container["ladder"]["eval_every"] = spec["eval_every"]  # finer than tuning's: steps-to-loss
    if spec["warmstart"] is not None:
        container["warmstart"] = spec["warmstart"]
    return job_config(container)


def source_job(spec: dict[str, Any]) -> str:
    """Train (or find) one source model: every warm run that grows it then only loads it."""
    torch.set_num_threads(1)
    cfg = with_warmstart(spec)
    run, result, _ = train_source(cfg, Path(spec["dir"]), spec["hparams"], spec["seed"])
    return f"{run.model.d_model}x{run.model.n_layer}: val {result.final_val_loss:.4f}"


def bench_job(spec: dict[str, Any]) -> str:
    """One target run (cold or warm); writes its JSON, the benchmark's record of it."""
    torch.set_num_threads(1)
    cfg = with_warmstart(spec)
    folder = Path(spec["dir"])
    checkpoint = folder / "bench" / f"{spec['name']}.ckpt"
    record = train_target(
        cfg,
        folder,
        spec["hparams"],  # the source is trained with the tuned HPs, unshifted
        warm=spec["warmstart"] is not None,
        checkpoint=checkpoint,
        seed=spec["seed"],
        steps=spec.get("steps") or cfg.ladder.target_steps,
        lr_scale=2.0 ** spec["shift"],
    )
    record |= {k: spec[k] for k in ("name", "shift")}
    write_atomic(folder / "bench" / f"{spec['name']}.json", json.dumps(record).encode())
    checkpoint.unlink()  # 75 MB at width 512; the JSON is the record
    return f"final val loss {RunResult(**record['result']).final_val_loss:.4f}"


def compare(record: dict, cold: dict) -> dict[str, Any]:
    """A run against its seed's cold run: docs/methods.md §7's speedups, final loss, FLOPs."""
    result, baseline = RunResult(**record["result"]), RunResult(**cold["result"])
    per_step = cold["flops_per_step"]
    out = speedup(
        result.val_loss, baseline.val_loss, source_steps_equiv=record["source_flops"] / per_step
    )
    warm_steps = out["warm_steps"]
    return {
        "final_val_loss": result.final_val_loss,
        "cold_final_val_loss": baseline.final_val_loss,
        "steps_to_cold_final": warm_steps,
        "cold_steps": out["cold_steps"],
        "speedup": out["speedup"],
        "speedup_with_source": out["speedup_with_source"],
        "target_flops_to_cold_final": None if warm_steps is None else warm_steps * per_step,
        "source_flops": record["source_flops"],
        "note": out["reason"],
    }


def summarize(records: dict[str, dict], seeds: list[int], tune_flops: float) -> dict[str, Any]:
    cold = {s: records[f"cold_s{s}"] for s in seeds}
    rows = {
        name: {**compare(rec, cold[rec["seed"]]), "warmstart": rec["warmstart"]}
        for name, rec in records.items()
        if rec["shift"] == 0 and name not in {f"cold_s{s}" for s in seeds}
    }
    methods = sorted({name.rsplit("_s", 1)[0] for name in rows if not name.startswith("spp_")})
    per_method = {}
    for method in methods:
        seeds_rows = [rows[f"{method}_s{s}"] for s in seeds]
        speed = [r["speedup"] for r in seeds_rows]
        per_method[method] = {
            "speedup": speed,
            "speedup_with_source": [r["speedup_with_source"] for r in seeds_rows],
            "final_val_loss": [r["final_val_loss"] for r in seeds_rows],
            "cold_final_val_loss": [r["cold_final_val_loss"] for r in seeds_rows],
            "mean_speedup": float(np.mean(speed)) if None not in speed else None,
        }
    first = seeds[0]
    lr = {}
    for kind, prefix in (("cold", "cold"), ("warm", DEFAULT)):
        points = sorted(
            (rec["log2_lr"], RunResult(**rec["result"]).final_val_loss)
            for name, rec in records.items()
            if rec["seed"] == first
            and (name == f"{prefix}_s{first}" or name.startswith(f"{prefix}_lr"))
        )
        optimum = fit_optimum([p[0] for p in points], [p[1] for p in points])
        lr[kind] = {"points": points, "optimum_log2_lr": optimum.log2_lr, "fitted": optimum.fitted}
    tuned = records[f"cold_s{first}"]["log2_lr"]
    lr["proxy_log2_lr"] = tuned
    lr["drift_warm_vs_cold"] = abs(lr["warm"]["optimum_log2_lr"] - lr["cold"]["optimum_log2_lr"])
    lr["drift_warm_vs_proxy"] = abs(lr["warm"]["optimum_log2_lr"] - tuned)
    lr["drift_cold_vs_proxy"] = abs(lr["cold"]["optimum_log2_lr"] - tuned)
    return {"runs": rows, "methods": per_method, "lr_transfer": lr, "tuning_flops": tune_flops}


def plot(records: dict[str, dict], summary: dict, seeds: list[int], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curves, budgets, grid, lrs) = plt.subplots(1, 4, figsize=(22, 4.8))
    first = seeds[0]
    for name, rec in sorted(records.items()):
        full = rec["shift"] == 0 and "_b" not in name and not name.startswith("spp_")
        if rec["seed"] == first and full:
            steps, losses = zip(*RunResult(**rec["result"]).val_loss, strict=True)
            style = {"color": "black", "lw": 2} if name.startswith("cold") else {}
            curves.plot(steps, losses, label=name.rsplit("_s", 1)[0], **style)
    cold_final = summary["runs"][f"{DEFAULT}_s{first}"]["cold_final_val_loss"]
    curves.axhline(cold_final, color="grey", ls=":", lw=1)
    curves.set(xlabel="step", ylabel="validation loss", title=f"target runs, seed {first}")
    curves.set_ylim(cold_final - 0.4, cold_final + 1.2)
    curves.legend(fontsize=8)

    table = np.full((len(GRID_SHRINK), len(GRID_PERTURB)), np.nan)
    for name, row in summary["runs"].items():
        ws = row["warmstart"]
        if ws.get("method") == DEFAULT and name.endswith(f"_s{first}"):
            i, j = GRID_SHRINK.index(ws["shrink"]), GRID_PERTURB.index(ws["perturb"])
            table[i, j] = np.nan if row["speedup"] is None else row["speedup"]
    image = grid.imshow(table, cmap="viridis", origin="lower")
    for (i, j), value in np.ndenumerate(table):
        text = "never" if np.isnan(value) else f"{value:.2f}×"
        grid.text(j, i, text, ha="center", va="center", color="white" if value < 1.5 else "black")
    grid.set_xticks(range(len(GRID_PERTURB)), [str(p) for p in GRID_PERTURB])
    grid.set_yticks(range(len(GRID_SHRINK)), [str(s) for s in GRID_SHRINK])
    grid.set(xlabel="σ (perturb)", ylabel="λ (shrink)", title="shrink-pad-perturb speedup")
    fig.colorbar(image, ax=grid, fraction=0.046)

    lr = summary["lr_transfer"]
    for kind, color in (("cold", "black"), ("warm", "tab:blue")):
        x, y = zip(*lr[kind]["points"], strict=True)
        lrs.plot(
            x, y, "o-", color=color, label=f"{kind} (optimum {lr[kind]['optimum_log2_lr']:.2f})"
        )
        lrs.axvline(lr[kind]["optimum_log2_lr"], color=color, ls="--", lw=1)
    lrs.axvline(lr["proxy_log2_lr"], color="tab:red", ls=":", label="proxy-tuned LR")
    lrs.set(xlabel="log2 LR", ylabel="final validation loss", title="LR transfer at the target")
    lrs.legend(fontsize=8)

    for method in ("cold", *METHOD_FILES, "rc_sampling_iid"):
        points = sorted(
            (rec["result"]["steps_done"], RunResult(**rec["result"]).final_val_loss)
            for name, rec in records.items()
            if rec["shift"] == 0
            and (name.startswith(f"{method}_b") or name.startswith(f"{method}_s"))
            and name.rsplit("_s", 1)[0].split("_b")[0] == method
        )
        if points:
            steps = sorted({p[0] for p in points})
            means = [np.mean([v for x, v in points if x == step]) for step in steps]
            style = {"color": "black", "lw": 2} if method == "cold" else {}
            budgets.plot(steps, means, "o-", label=method, **style)
    budgets.axhline(cold_final, color="grey", ls=":", lw=1)
    budgets.set(
        xlabel="schedule length (steps)",
        ylabel="final validation loss (mean over seeds)",
        title="shorter schedules: where each reaches cold's final loss",
    )
    budgets.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fmt(value: Any, spec: str = ".2f") -> str:
    return (
        "—"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )


def print_table(summary: dict) -> None:
    print(f"{'run':<28} {'final':>7} {'cold':>7} {'steps':>6} {'speedup':>8} {'w/ source':>9}")
    for name, row in sorted(summary["runs"].items()):
        print(
            f"{name:<28} {fmt(row['final_val_loss'], '.4f'):>7} "
            f"{fmt(row['cold_final_val_loss'], '.4f'):>7} "
            f"{fmt(row['steps_to_cold_final'], '.0f'):>6} "
            f"{fmt(row['speedup']):>8} {fmt(row['speedup_with_source']):>9}"
        )
    lr = summary["lr_transfer"]
    print(
        f"LR optimum (log2): proxy-tuned {lr['proxy_log2_lr']:.2f}, cold "
        f"{lr['cold']['optimum_log2_lr']:.2f}, warm {lr['warm']['optimum_log2_lr']:.2f}; drift "
        f"warm-cold {lr['drift_warm_vs_cold']:.2f}, warm-proxy {lr['drift_warm_vs_proxy']:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ladder", default="gpt_small")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default="runs/warmstart_bench")
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
    container = plain(cfg)
    plan = runs(args.ladder, out, args.seeds)
    todo = [r for r in plan if not (folder / "bench" / f"{r['name']}.json").exists()]
    common = {
        "cfg": container,
        "dir": str(folder),
        "hparams": hparams,
        "eval_every": args.eval_every,
    }
    sources = {}
    for r in todo:  # one job per distinct source, before any target run needs it
        if r["warmstart"] is not None:
            key = (r["warmstart"]["method"] == "stack", r["seed"])
            sources.setdefault(key, {**common, "seed": r["seed"], "warmstart": r["warmstart"]})
    launcher = container["launcher"]

    def report(spec: dict, result: Any, error: BaseException | None) -> None:
        print(f"{spec.get('name', 'source')}: {error or result}", flush=True)

    run_jobs(launcher, folder / "jobs" / "bench", source_job, list(sources.values()), report)
    specs = [{**common, **r} for r in todo]
    run_jobs(launcher, folder / "jobs" / "bench", bench_job, specs, report)
    records = {
        r["name"]: json.loads((folder / "bench" / f"{r['name']}.json").read_text())
        for r in plan
        if (folder / "bench" / f"{r['name']}.json").exists()
    }
    if len(records) < len(plan):
        print(f"{len(plan) - len(records)} runs failed; rerun the same command to retry them")
        return 1
    summary = summarize(records, args.seeds, tune_flops)
    summary["tuned_hparams"] = hparams
    write_atomic(folder / "bench.json", json.dumps(summary, indent=1, default=float).encode())
    print_table(summary)
    print(f"plot  {plot(records, summary, args.seeds, folder / 'warmstart_bench.png')}")
    print(f"json  {folder / 'bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
