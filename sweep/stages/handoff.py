"""`tuned.yaml`: the tuned values handed on, for `sweep.single --from` and for a user's own script.

It holds the proxy's tuned hyperparameters; the values the target trains at (the tuned ones moved
by what the axes stage fitted, `sweep.stages.applied`) beside them carried over unchanged, with
the rule that moved them; and, for the target width and depth, what the µP and CompleteP rules
make of the applied values: every parameter's Adam LR, weight decay, ε and init std, the forward
multipliers, and the full run (model, optimizer, schedule, steps, batch, seed, data) that the
target's cold run trains. Everything is plain YAML numbers and strings: reading it needs no
part of this package.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

import yaml
from omegaconf import DictConfig

from sweep.config import data_config, run_config, target_depth
from sweep.core import models
from sweep.core.models import ModelConfig
from sweep.core.sections import Applied
from sweep.core.train import OptimConfig, RunConfig

FORMAT = "musweep-tuned 1"


def tuned_record(cfg: DictConfig, applied: Applied) -> dict[str, Any]:
    ladder, hparams = cfg.ladder, applied["hparams"]
    run = run_config(
        cfg, ladder.target, "mup", hparams, ladder.target_steps, cfg.seed, target_depth(cfg)
    )
    return {
        "format": FORMAT,
        "proxy": {
            "width": ladder.widths[0],
            "n_layer": ladder.n_layer,
            "hparams": {k: float(v) for k, v in applied["carried"].items()},
        },
        "target": {
            "width": ladder.target,
            "n_layer": target_depth(cfg),
            "hparams": {k: float(v) for k, v in hparams.items()},
            "carried": {k: float(v) for k, v in applied["carried"].items()},
            "rule": applied["rule"],
            "multipliers": models.multipliers(run.model),
            "parameters": parameter_rules(run.model, run.optim),
        },
        "run": run.to_dict(),
        "data": asdict(data_config(cfg)),
    }


def parameter_rules(model_cfg: ModelConfig, optim: OptimConfig) -> dict[str, dict[str, Any]]:
    """Per parameter (blocks collapsed to `blocks.*`): role, peak Adam LR, decoupled weight
    decay, ε and init std (null: the vector or factory init kept), as µP gives them here."""
    model = models.skeleton_model(model_cfg)
    groups = models.param_groups(model, optim.lr, optim.weight_decay, optim.eps, optim.scale_eps)
    shapes = {name: p.shape for name, p in model.named_parameters()}
    stds = models.init_stds(model)
    rules: dict[str, dict[str, Any]] = {}
    for group in groups:
        for name in group["names"]:
            key = re.sub(r"(^|\.)(blocks|layers|h)\.\d+\.", r"\1\2.*.", name)
            if key in rules:
                continue
            rules[key] = {
                "role": group["role"],
                "shape": list(shapes[name]),
                "lr": group["lr"],
                "weight_decay": group["weight_decay"],
                "eps": group["eps"],
                "init_std": stds[name],
            }
    return rules


def run_from_record(record: dict[str, Any]) -> RunConfig:
    """The target's run as `tuned_record` wrote it."""
    if record.get("format") != FORMAT:
        raise ValueError(f"not a musweep tuned file (format {record.get('format')!r})")
    run = dict(record["run"])
    return RunConfig(
        model=models.model_from_dict(run.pop("model")),
        optim=OptimConfig(**run.pop("optim")),
        **run,
    )


def tuned_yaml(record: dict[str, Any]) -> str:
    header = (
        "# The values musweep tuned at the proxy, and what µP makes of them at the target\n"
        "# (python -m sweep.single --from tuned.yaml trains the target's run).\n"
    )
    return header + yaml.safe_dump(record, sort_keys=False)
