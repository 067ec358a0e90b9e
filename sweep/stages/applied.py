"""The values the target trains at (docs/methods.md §11): the proxy's tuned ones, the LR moved
by the joint fit's prediction for the target's width, tokens and batch, and λ moved to the proxy's
AdamW timescale where the axes stage measured that this rule beats a fixed λ. The fit's shift is
already shrunk part by part (width, the horizon, batch) by its errors, so a part the checks did
not resolve moves nothing. The target's
warm and cold runs, a source trained for the warm start, the verify stage's centre and
`tuned.yaml` all read these; `axes.apply=false` keeps the plain carry-over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from omegaconf import DictConfig

from sweep.config import proxy_setting, target_setting
from sweep.core.axis_rules import adamw_timescale, weight_decay_for
from sweep.core.sections import Applied, AxesSection


def applied_values(
    cfg: DictConfig, tuned: Mapping[str, float], axes: AxesSection | None
) -> Applied:
    """The target's values from the tuned ones and the axes stage's section (None: not run)."""
    carried = {k: float(v) for k, v in tuned.items()}
    if not cfg.axes.apply:
        return _carried(carried, "carried over unchanged (axes.apply=false)")
    if axes is None or "joint" not in axes:
        return _carried(carried, "carried over unchanged: no LR optimum was fitted beside width")
    shift = float(axes["joint"]["log2_shift_vs_carry"])
    lr = carried["lr"] * 2.0**shift  # exactly the tuned LR when nothing moves it
    hparams = carried | {"lr": lr}
    rule = (
        f"LR by the joint fit of the optimum ({shift:+.2f} log2 from the tuned one)"
        if shift
        else "LR carried over: the joint fit resolves no slope toward the target"
    )
    if (wd := timescale_weight_decay(cfg, carried, axes, lr)) is not None:
        hparams["weight_decay"] = wd
        rule += "; λ at the proxy's AdamW timescale (it beat a fixed λ on the axes' rungs)"
    return Applied(
        hparams=hparams, carried=carried, log2_lr_shift=math.log2(lr / carried["lr"]), rule=rule
    )


def _carried(carried: dict[str, float], rule: str) -> Applied:
    return Applied(hparams=dict(carried), carried=carried, log2_lr_shift=0.0, rule=rule)


def timescale_weight_decay(
    cfg: DictConfig, tuned: Mapping[str, float], axes: AxesSection, lr: float
) -> float | None:
    """λ at the target that keeps the proxy's AdamW timescale at LR `lr`, where the axes' λ
    grids measured it doing no worse than a fixed λ over their rungs; None otherwise (λ stays)."""
    if tuned["weight_decay"] <= 0:
        return None
    grids = [g for axis in ("horizon", "batch") if (g := axes.get(axis, {}).get("weight_decay"))]
    fixed = sum(v for g in grids for v in g["regret_fixed"].values() if math.isfinite(v))
    timescale = sum(v for g in grids for v in g["regret_timescale"].values() if math.isfinite(v))
    if not grids or timescale > fixed:
        return None
    proxy, target = proxy_setting(cfg), target_setting(cfg)
    tau = adamw_timescale(proxy.batch_tokens, tuned["lr"], tuned["weight_decay"], proxy.tokens)
    return weight_decay_for(tau, target.batch_tokens, lr, target.tokens)
