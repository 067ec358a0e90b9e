"""The run's summary: everything measured so far, rebuilt from the run folder's files.

Each section is its stage's (`Stage.summary`) and appears once the stage is complete (a transfer
check still growing its grids, or a check at the target still short of its bracket, has none
yet), then the run's verdict and the FLOPs each stage spent. `summary.json`, the console table
and the report all read this.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import optuna
from omegaconf import DictConfig

from sweep.config import ModelKind, model_config, tunable, world_size
from sweep.core.metrics import coord_verdict, run_verdict
from sweep.core.sections import (
    SUMMARY_FORMAT,
    HardwareSection,
    LadderSection,
    ModelCheck,
    ModelSection,
    Sections,
    Summary,
)
from sweep.core.verdict import Verdict
from sweep.stages.model_check import CHECK_FILE
from sweep.stages.registry import STAGES
from sweep.stages.stage import Context, Stage, target_run_flops
from sweep.stages.target import wanted_kind


def build_summary(
    cfg: DictConfig,
    run_dir: Path,
    study: optuna.Study,
    stages: Mapping[str, Stage] = STAGES,
    budget: Mapping | None = None,
) -> Summary:
    """Everything measured so far in `run_dir`: each registered stage's section once it is
    complete (each given those before it), the run's verdict, what each stage spent, and with a
    `budget` (its allocation, `sweep.stages.budget`) whether the spending kept to it."""
    ladder = LadderSection(
        name=cfg.ladder.name,
        widths=list(cfg.ladder.widths),
        proxy=cfg.ladder.widths[0],
        target=cfg.ladder.target,
    )
    summary = Sections(ladder=ladder, model=model_summary(cfg, run_dir), cost={})
    ctx = Context(cfg, run_dir, study, sections=lambda: summary)
    for stage in stages.values():
        section = stage.summary(ctx, summary)
        if section is None:
            continue
        summary[section.key] = section.content
        if section.flops is not None:
            summary["cost"][section.cost_key] = section.flops
        for key, extra in section.amends.items():
            if key in summary:
                summary[key] |= extra
    parts = [summary.get(key, {}).get("verdict") for key in ("transfer", "verify")]
    transfer, target = (None if p is None else Verdict.from_dict(p) for p in parts)
    coord = summary.get("coord_check", {}).get("mup")
    verdict = run_verdict(transfer, coord, target)
    cost = summary.pop("cost")  # the verdict, the cost and the hardware close the summary
    closing = {"verdict": verdict.to_dict()} if verdict else {}
    vs_target = cost_vs_target(
        cost, target_run_flops(cfg), wanted_kind(cfg) in summary.get("target", {})
    )
    out = Summary(
        format=SUMMARY_FORMAT,
        **summary,
        **closing,
        status=statuses(transfer, target, coord, verdict),
        cost=cost,
        cost_vs_target=vs_target,
        cost_share=cost_shares(cost),
        hardware=hardware_summary(cfg, study),
    )
    if budget is not None:
        spent = vs_target["besides_target"]
        out["budget"] = dict(budget) | {
            "spent_vs_target": spent,
            "within": spent <= budget["budget_vs_target"] + 1e-9,
        }
    return out


def statuses(
    transfer: Verdict | None,
    target: Verdict | None,
    coord: Mapping | None,
    run: Verdict | None,
) -> dict[str, str]:
    """Each verdict's status word, for a program to gate on: the run's, the transfer check's,
    the check at the target's and µP's coordinate check's, where each exists."""
    out = {
        name: str(v.status)
        for name, v in (("run", run), ("transfer", transfer), ("target", target))
        if v is not None
    }
    if coord is not None:
        out["coord_check"] = str(coord_verdict(coord).status)
    return out


def cost_shares(cost: Mapping[str, float]) -> dict[str, float]:
    """Each stage's FLOPs as a fraction of everything the run spent."""
    finite = finite_costs(cost)
    total = sum(finite.values())
    return {key: value / total for key, value in finite.items()} if total else {}


def finite_costs(cost: Mapping[str, float]) -> dict[str, float]:
    """{stage: FLOPs} from the cost record's "<stage>_flops" keys, its finite values only."""
    return {k.removesuffix("_flops"): v for k, v in cost.items() if math.isfinite(v)}


def cost_vs_target(cost: Mapping[str, float], target: float, trained: bool) -> dict[str, float]:
    """Each stage's FLOPs in target runs, their total, and what the checks spent besides the one
    run a user wants (the warm target, or the cold one without a warm start, once it
    `trained`): µTransfer's promise is that this is a small fraction of it."""
    finite = finite_costs(cost)
    out = {key: value / target for key, value in finite.items()}
    out["total"] = sum(finite.values()) / target
    out["besides_target"] = out["total"] - (1.0 if trained else 0.0)
    return out


def model_summary(cfg: DictConfig, run_dir: Path) -> ModelSection:
    """Which model, which HPs its search could change, and the pre-flight check's verdict."""
    model = model_config(cfg, cfg.ladder.widths[0], "mup", dict(cfg.ladder.hparams))
    out = ModelSection(kind=str(cfg.model.kind), tunable=list(tunable(cfg)))
    if cfg.model.kind != ModelKind.gpt:
        out |= {"factory": model.factory, "init": model.init, "readout": model.readout}
    with contextlib.suppress(OSError, ValueError, KeyError):
        record = json.loads((run_dir / CHECK_FILE).read_text())
        out["check"] = ModelCheck(**record["worst"], widths=record["widths"])
    return out


def hardware_summary(cfg: DictConfig, study: optuna.Study) -> HardwareSection:
    """Where the runs trained, and the tuning trials' median throughput (the target's is in
    its own section, run by run)."""
    hw = cfg.hardware
    rates = [
        t.user_attrs["tokens_per_s"]
        for t in study.get_trials(deepcopy=False)
        if math.isfinite(t.user_attrs.get("tokens_per_s", math.nan))
    ]
    return HardwareSection(
        device=str(hw.device),
        precision=str(hw.precision),
        compile=bool(hw.compile),
        data_parallel=str(hw.data_parallel),
        processes=world_size(cfg),
        tune_tokens_per_s=float(np.median(rates)) if rates else None,
    )
