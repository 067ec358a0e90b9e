"""The run's summary: everything measured so far, rebuilt from the run folder's files.

Each section appears once its stage is complete (a transfer check still growing its grids, or a
check at the target still short of its bracket, has none yet), then the run's verdict and the
FLOPs each stage spent. `summary.json`, the console table and the report all read this.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from omegaconf import DictConfig

from sweep.config import ModelKind, model_config, tunable, world_size
from sweep.core.metrics import run_verdict
from sweep.core.records import read_record
from sweep.stages import axes
from sweep.stages.model_check import CHECK_FILE
from sweep.stages.report import coord_check_summary, read_coord_checks
from sweep.stages.target import KINDS, cold_run_flops, target_summary
from sweep.stages.transfer import next_runs, read_results, transfer_summary
from sweep.stages.tune import near_best, tune_summary, tuned_hparams
from sweep.stages.verify import final_loss, next_steps, read_curve, verify_summary


def differs(cfg: DictConfig) -> str:
    """How the target differs from the ladder's transfer check besides its width."""
    ladder, parts = cfg.ladder, []
    if ladder.target_steps != ladder.transfer_steps:
        parts.append(f"{ladder.target_steps} steps against the ladder's {ladder.transfer_steps}")
    if ladder.target_n_layer and ladder.target_n_layer != ladder.n_layer:
        parts.append(f"{ladder.target_n_layer} layers against {ladder.n_layer}")
    return "the target trains " + " and ".join(parts) if parts else ""


def build_summary(cfg: DictConfig, run_dir: Path, study: optuna.Study) -> dict[str, Any]:
    """Everything measured so far in `run_dir`, with the run's verdict and costs."""
    summary: dict[str, Any] = {
        "ladder": {
            "name": cfg.ladder.name,
            "widths": list(cfg.ladder.widths),
            "proxy": cfg.ladder.widths[0],
            "target": cfg.ladder.target,
        },
        "model": model_summary(cfg, run_dir),
    }
    cost, target_flops = {}, cold_run_flops(cfg)
    if study.get_trials(deepcopy=False):
        summary["tune"] = tune_summary(cfg, study)
        cost["tuning_flops"] = summary["tune"].pop("flops")
    tuned = tuned_hparams(cfg, study) if summary.get("tune", {}).get("best_params") else None
    results = read_results(run_dir / "transfer", tuned) if tuned else {}
    if results and not next_runs(cfg, results):
        summary["transfer"] = transfer_summary(cfg, results, tuned["lr"], target_flops)
        cost["transfer_flops"] = summary["transfer"].pop("flops")
        summary["tune"]["near_best"] = near_best(study, summary["transfer"]["noise"]["band"])
    axis_results = axes.read_results(run_dir / "axes", tuned) if tuned else {}
    if axis_results and not axes.next_runs(cfg, tuned, axis_results):
        flops = axes.read_flops(run_dir / "axes", tuned)
        summary["axes"] = axes.axes_summary(cfg, tuned, axis_results, flops)
        cost["axes_flops"] = summary["axes"].pop("flops")
    runs = {kind: read_record(run_dir / "target" / f"{kind}.json") for kind in KINDS}
    if runs := {kind: run for kind, run in runs.items() if run is not None}:
        summary["target"] = target_summary(cfg, runs, cost.get("tuning_flops", 0.0))
        cost["target_flops"] = summary["target"].pop("flops")
    records = read_curve(run_dir, tuned) if tuned else {}
    curve = {k: final_loss(record) for k, record in records.items()}
    if records and not next_steps(curve, cfg.verify.max_runs):
        band = summary.get("transfer", {}).get("noise", {}).get("relative_band", 0.0)
        predicted = summary.get("axes", {}).get("prediction", {}).get("lr")
        summary["verify"] = verify_summary(
            records,
            tuned["lr"],
            band,
            target_flops,
            cfg.ladder.regret_tolerance,
            differs(cfg),
            predicted_lr=predicted,
        )
        cost["verify_flops"] = summary["verify"].pop("flops")
    if checks := read_coord_checks(run_dir / "report"):
        summary["coord_check"] = coord_check_summary(checks)
    verdict = run_verdict(
        summary.get("transfer", {}).get("verdict"),
        summary.get("coord_check", {}).get("mup"),
        summary.get("verify", {}).get("verdict"),
    )
    if verdict:
        summary["verdict"] = verdict
    summary["cost"] = cost
    summary["hardware"] = hardware_summary(cfg, study)
    return summary


def model_summary(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Which model, which HPs its search could change, and the pre-flight check's verdict."""
    model = model_config(cfg, cfg.ladder.widths[0], "mup", dict(cfg.ladder.hparams))
    out: dict[str, Any] = {"kind": str(cfg.model.kind), "tunable": list(tunable(cfg))}
    if cfg.model.kind != ModelKind.gpt:
        out |= {"factory": model.factory, "init": model.init, "readout": model.readout}
    with contextlib.suppress(OSError, ValueError, KeyError):
        record = json.loads((run_dir / CHECK_FILE).read_text())
        out["check"] = record["worst"] | {"widths": record["widths"]}
    return out


def hardware_summary(cfg: DictConfig, study: optuna.Study) -> dict[str, Any]:
    """Where the runs trained, and the tuning trials' median throughput (the target's is in
    its own section, run by run)."""
    hw = cfg.hardware
    rates = [
        t.user_attrs["tokens_per_s"]
        for t in study.get_trials(deepcopy=False)
        if math.isfinite(t.user_attrs.get("tokens_per_s", math.nan))
    ]
    return {
        "device": str(hw.device),
        "precision": str(hw.precision),
        "compile": bool(hw.compile),
        "data_parallel": str(hw.data_parallel),
        "processes": world_size(cfg),
        "tune_tokens_per_s": float(np.median(rates)) if rates else None,
    }
