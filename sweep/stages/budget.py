"""The budget applied to a run's config (docs/methods.md §12): what each check may cost at worst,
which of them fit in `budget` target runs besides the target's own, and the config values that
make the stages run exactly what was kept.

The pipeline applies this once, before the plan and before any job, so the plan shows and the
stages run the same allocation; without a budget every check runs as configured.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from sweep.config import (
    VerifyCheck,
    budgeted,
    check_steps,
    check_width,
    cold_baseline,
    run_config,
    target_depth,
    verify_check,
)
from sweep.core.budget import Allocation, Item, allocate, largest_fitting
from sweep.grow.choices import Method
from sweep.stages.axes import rungs_within_budget
from sweep.stages.source import source_run
from sweep.stages.stage import target_run_flops
from sweep.stages.target import before_warm, source_is_transfer_point

FEWEST_RUNS = 3  # a check's smallest grid: the centre and its two neighbours can bracket
PROBE_FRACTIONS = (1 / 8, 1 / 16, 1 / 32, 1 / 64, 1 / 128)  # a probe's share of the target's steps
AXES_SHARE = 0.5  # the axes may take at most this much of what the required checks leave
SP_WIDTH = "sp_width"  # an SP item's width: the kept ones make `ladder.sp_widths`
SHARES = (1.0, 0.5, 0.25, 0.125)  # the sizes tried for the axes' and the resolving seeds' budgets


def probe_floor(cfg: DictConfig) -> int:
    """The fewest steps a probe may train: past its warmup four times over, and at least 16."""
    return max(16, 4 * cfg.ladder.warmup_steps)


def point_flops(cfg: DictConfig, width: int, parametrization: str = "mup") -> float:
    ladder = cfg.ladder
    return run_config(
        cfg, width, parametrization, dict(ladder.hparams), ladder.transfer_steps, cfg.seed
    ).flops


def series_runs(cfg: DictConfig) -> int:
    """The most runs one transfer series may take: its grid grown to `lr_max_points` at every
    grid seed, then the noise seeds at its best point and that point's neighbour."""
    ladder = cfg.ladder
    return ladder.lr_max_points * ladder.transfer_seeds + 2 * ladder.noise_seeds


def trial_flops(cfg: DictConfig) -> float:
    ladder = cfg.ladder
    return run_config(
        cfg, ladder.widths[0], "mup", dict(ladder.hparams), ladder.tune_steps, cfg.seed
    ).flops


def warm_source_flops(cfg: DictConfig) -> float:
    """What the warm run trains before itself: its source, unless the transfer check trains
    it, and the progressive stages."""
    ladder, values = cfg.ladder, dict(cfg.ladder.hparams)
    target = run_config(
        cfg, ladder.target, "mup", values, ladder.target_steps, cfg.seed, target_depth(cfg)
    )
    source = source_run(cfg, values, cfg.seed)
    shared = source_is_transfer_point(cfg, values, cfg.seed)
    return float(sum(r.flops for r in before_warm(cfg, values, target, source, shared)))


def check_run_flops(cfg: DictConfig, steps: int, width: int | None = None) -> float:
    """One run of the check at the target: its steps, at the target's width or `width`, at the
    target's depth."""
    ladder = cfg.ladder
    return run_config(
        cfg, ladder.target if width is None else width, "mup", dict(ladder.hparams), steps,
        cfg.seed, target_depth(cfg),
    ).flops  # fmt: skip


def with_values(cfg: DictConfig, values: dict[str, Any]) -> DictConfig:
    out = copy.deepcopy(cfg)
    OmegaConf.set_readonly(out, False)
    with open_dict(out):
        for key, value in values.items():
            OmegaConf.update(out, key, value, merge=False)
    return out


NO_CHECK = "no check at the target: the verdict rests on the ladder and the fitted rules"


def check_items(cfg: DictConfig, target: float) -> list[Item]:
    """The check at the target: whole target runs when asked for (then required); else, in the
    order a budget prefers them, a rung of the target's length at each ladder width, then probes
    at fractions of the target's steps."""
    runs = cfg.verify.max_runs + 1
    if cfg.verify.max_runs < 2:
        return []
    if verify_check(cfg) == VerifyCheck.full:
        centre = 0 if cold_baseline(cfg) else 1  # the cold target is the centre when it runs
        return [
            Item(
                "verify", f"the check at the target: {runs - 1 + centre} whole target runs",
                (runs - 1 + centre) * target, required=True,
            )
        ]  # fmt: skip
    asked = cfg.verify.check
    rungs = rung_check_items(cfg) if asked in (None, VerifyCheck.rung) else []
    if asked not in (None, VerifyCheck.probes):
        return rungs
    return rungs + probe_check_items(cfg, none_else=not rungs)


def rung_check_items(cfg: DictConfig) -> list[Item]:
    """A rung of the target's length at each ladder width, widest first (the nearest the
    target's curve, and the target's whole horizon), at `verify.max_runs` + 1 runs (the centre
    is its own run) and then at the fewest that can bracket, 3 (the user's width alone when
    given)."""
    runs, steps = cfg.verify.max_runs + 1, cfg.ladder.target_steps
    widths = reversed(cfg.ladder.widths) if cfg.verify.width is None else [cfg.verify.width]
    items = []
    for width, count in ((w, n) for w in widths for n in dict.fromkeys((runs, FEWEST_RUNS))):
        fewer = {} if count == runs else {"verify.max_runs": count - 1}
        items.append(
            Item(
                "verify", f"the check at the target: {count} runs of its {steps} steps at "
                f"width {width}", count * check_run_flops(cfg, steps, width), group="check",
                lost=NO_CHECK, keep={"verify.check": str(VerifyCheck.rung),
                                     "verify.width": width, **fewer},
                drop={"verify.max_runs": 0},
            )
        )  # fmt: skip
    return items


def probe_check_items(cfg: DictConfig, none_else: bool) -> list[Item]:
    """Probes at the target's width at the largest fraction of its steps whose
    `verify.max_runs` + 1 runs fit (the user's fraction alone when given); where no fraction
    reaches the probe floor and nothing else checks (`none_else`), probes at the floor."""
    runs, steps = cfg.verify.max_runs + 1, cfg.ladder.target_steps
    given = cfg.verify.probe_fraction
    probes = []
    for fraction in [given] if given is not None else PROBE_FRACTIONS:
        probe = max(1, round(steps * fraction))
        if given is None and probe < probe_floor(cfg):
            continue
        probes.append(
            Item(
                "verify", f"the check at the target: {runs} probes of {probe} steps at width "
                f"{cfg.ladder.target}", runs * check_run_flops(cfg, probe), group="check",
                lost=NO_CHECK, keep={"verify.check": str(VerifyCheck.probes),
                                     "verify.probe_fraction": fraction},
                drop={"verify.max_runs": 0},
            )
        )  # fmt: skip
    if not probes and none_else:
        probes.append(
            Item(
                "verify", f"the check at the target: probes of at least {probe_floor(cfg)} steps",
                runs * check_run_flops(cfg, probe_floor(cfg)), group="check", lost=NO_CHECK,
                drop={"verify.max_runs": 0},
            )
        )  # fmt: skip
    return probes


def axes_items(cfg: DictConfig) -> list[Item]:
    """The axes' rungs at each share of `axes.budget`: one group, kept at the largest that fits."""
    if not (cfg.axes.horizon or cfg.axes.batch):
        return []
    items, asked = [], float(cfg.axes.budget)
    for share in SHARES:
        allowance = asked * share
        spent = rungs_within_budget(with_values(cfg, {"axes.budget": allowance}))[2]
        items.append(
            Item(
                "axes", f"the axes' rungs within {allowance:.3g} target runs", spent,
                group="axes", share=AXES_SHARE, keep={"axes.budget": allowance},
                drop={"axes.horizon": [], "axes.batch": []},
                lost="no horizon or batch rule: the target trains at the tuned LR carried "
                "over, and probes read no horizon rule",
            )
        )  # fmt: skip
    return items


def budget_items(cfg: DictConfig) -> list[Item]:
    """Every part of the checks, required first, then in the order a budget keeps them."""
    ladder, target = cfg.ladder, float(target_run_flops(cfg))
    trial = trial_flops(cfg)
    widths = list(ladder.widths)
    items = [
        Item("tune", f"{cfg.tune.n_trials} tuning trials at width {widths[0]}",
             cfg.tune.n_trials * trial, required=True),
        Item("transfer", f"µP LR grids at widths {', '.join(map(str, widths))}",
             series_runs(cfg) * sum(point_flops(cfg, w) for w in widths), required=True),
    ]  # fmt: skip
    if cfg.warmstart.method != Method.cold and (source := warm_source_flops(cfg)):
        items.append(Item("target", "the warm start's source", source, required=True))
    if cold_baseline(cfg) and cfg.warmstart.method != Method.cold:  # asked for, under a budget
        items.append(Item("target", "the cold baseline beside the warm target", target, True))
    items += axes_items(cfg)
    items += check_items(cfg, target)
    for width in widths:
        items.append(
            Item(
                "transfer", f"the SP contrast at width {width}",
                series_runs(cfg) * point_flops(cfg, width, "sp"),
                keep={SP_WIDTH: width}, lost=f"no SP contrast at width {width}",
            )
        )  # fmt: skip
    if ladder.resolve_budget > 0:
        for share in SHARES:
            amount = ladder.resolve_budget * share
            items.append(
                Item(
                    "transfer", f"more seeds for a regret near the tolerance ({amount:.3g} "
                    "target runs)", amount * target, group="resolve",
                    keep={"ladder.resolve_budget": amount}, drop={"ladder.resolve_budget": 0.0},
                    lost="no more seeds for a regret near the tolerance: it may stay within the "
                    "noise",
                )
            )  # fmt: skip
    if cfg.tune.widen_trials > 0 and ladder.search:
        bounds = 2 * len(ladder.search)
        items.append(
            Item(
                "tune", f"{cfg.tune.widen_trials} more trials for each of {bounds} bounds a tuned "
                "value may reach", cfg.tune.widen_trials * bounds * trial,
                drop={"tune.widen_trials": 0},
                lost="a tuned value at a bound of its range is flagged, not searched beyond",
            )
        )  # fmt: skip
    return items


def refusal(cfg: DictConfig, allocation: Allocation) -> str:
    """One line: the budget, what the required checks need, and settings that would fit."""
    target = float(target_run_flops(cfg))
    needed = allocation.required_flops
    fixes = [f"budget={math.ceil(needed / target * 1000) / 1000:g}"]
    required = [i for i in allocation.kept if i.required]
    rest = needed - sum(i.flops for i in required if i.stage == "tune")
    trial = trial_flops(cfg)
    trials = largest_fitting(
        lambda n: n * trial + rest, 1, cfg.tune.n_trials, allocation.budget_flops
    )
    if trials is not None and trials < cfg.tune.n_trials:
        fixes.append(f"tune.n_trials={trials}")
    ladder = cfg.ladder
    grid = sum(point_flops(cfg, w) for w in ladder.widths)
    others = needed - ladder.transfer_seeds * ladder.lr_max_points * grid
    points = largest_fitting(
        lambda n: others + ladder.transfer_seeds * n * grid, 2 * ladder.lr_span + 1,
        ladder.lr_max_points, allocation.budget_flops,
    )  # fmt: skip
    if points is not None and points < ladder.lr_max_points:
        fixes.append(f"ladder.lr_max_points={points}")
    what = " and ".join(i.what for i in required)
    return (
        f"budget={cfg.budget:g} allows {allocation.budget_flops:.3g} FLOPs besides the target's "
        f"run, but {what} need up to {needed:.3g} ({needed / target:.3g} target "
        f"runs, {needed / allocation.budget_flops:.2f}× the budget); fits with "
        f"{' or '.join(fixes)}, or budget=null for every check in full"
    )


def budget_allocation(cfg: DictConfig) -> Allocation | None:
    """The allocation under `budget` (None without one)."""
    if not budgeted(cfg):
        return None
    return allocate(budget_items(cfg), float(cfg.budget) * target_run_flops(cfg))


def apply_budget(cfg: DictConfig) -> dict[str, Any] | None:
    """Set in `cfg` the values that make the stages run what the budget keeps, and return the
    allocation as a record (None without a budget). ValueError, in one line, when the required
    checks do not fit."""
    allocation = budget_allocation(cfg)
    if allocation is None:
        return None
    if not allocation.fits:
        raise ValueError(refusal(cfg, allocation))
    values = allocation.settings()
    values.pop(SP_WIDTH, None)
    values["ladder.sp_widths"] = [i.keep[SP_WIDTH] for i in allocation.kept if SP_WIDTH in i.keep]
    values["warmstart.baseline"] = cold_baseline(cfg)
    values.setdefault("verify.check", str(verify_check(cfg)))
    for key, value in values.items():
        OmegaConf.update(cfg, key, value, merge=False)
    target = float(target_run_flops(cfg))
    return budget_record(allocation, target, check_steps(cfg), check_width(cfg))


def budget_record(allocation: Allocation, target: float, steps: int, width: int) -> dict[str, Any]:
    def row(item: Item) -> dict[str, Any]:
        return {"stage": item.stage, "what": item.what, "max_flops": item.flops,
                "max_vs_target": item.flops / target}  # fmt: skip

    return {
        "budget_vs_target": allocation.budget_flops / target,
        "budget_flops": allocation.budget_flops,
        "max_flops": allocation.flops,
        "max_vs_target": allocation.flops / target,
        "kept": [row(i) for i in allocation.kept],
        "dropped": [row(i) | {"lost": i.lost} for i in allocation.dropped],
        "check_steps": steps,
        "check_width": width,
    }
