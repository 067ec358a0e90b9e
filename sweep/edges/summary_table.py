"""The run's summary as (label, value) rows: one table for the console and the HTML report.

Numbers are formatted here once; the console (`sweep.edges.console`) and the page
(`sweep.edges.report`) only lay the rows out. Every section of the summary is optional: a stage
that has not run yet has no rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sweep.core.sections import (
    JUDGED,
    AxesSection,
    CoordVerdict,
    HardwareSection,
    Summary,
    TargetComparison,
    TargetSection,
    TransferSection,
    TuneSection,
    VerifySection,
)
from sweep.core.verdict import Verdict

PARAM_LABELS = {"mup": "µP", "sp": "SP"}


def num(value: Any) -> float:
    """A summary number as float; None (JSON null for NaN/diverged) becomes NaN."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def fmt_flops(value: Any) -> str:
    """1.234e15 → '1.23e15' (no '+', no leading zeros in the exponent)."""
    x = num(value)
    if not math.isfinite(x):
        return "—"
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def fmt_num(value: Any, digits: int = 4) -> str:
    x = num(value)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}g}"


def fmt_speedup(value: Any) -> str:
    x = num(value)
    return "—" if math.isnan(x) else f"{fmt_num(x, 3)}×"


def tuned_log2_lr(summary: Summary) -> float:
    """log2 of the proxy-tuned LR, from the transfer section or else the tuned values."""
    transfer = summary.get("transfer") or {}
    if transfer.get("tuned_log2_lr") is not None:
        return num(transfer["tuned_log2_lr"])
    lr = num(((summary.get("tune") or {}).get("best_params") or {}).get("lr"))
    return math.log2(lr) if lr > 0 else math.nan


def coord_check_text(check: CoordVerdict) -> str:
    """'0.098 at block1.attn, step 1 ≤ 0.25: pass' from a coordinate check's verdict."""
    slope, threshold = num(check.get("worst_slope")), num(check.get("threshold"))
    sign = "≤" if check.get("passes") else ">"
    where = f"{check.get('module')}, step {check.get('step')}"
    verdict = "pass" if check.get("passes") else "FAIL"
    return f"{slope:.3f} at {where} {sign} {threshold:g}: {verdict}"


def fmt_percent(fraction: Any) -> str:
    x = num(fraction)
    if math.isnan(x):
        return "—"
    return "diverges" if math.isinf(x) else f"{100 * x:.2f}%"


def _tune_rows(tune: TuneSection) -> list[tuple[str, str]]:
    rows = []
    at_bound = tune.get("at_bound") or {}
    ranges = (tune.get("near_best") or {}).get("ranges") or {}
    for name, value in (tune.get("best_params") or {}).items():
        text = fmt_num(value)
        if name == "lr" and num(value) > 0:
            text += f" (log2 {math.log2(num(value)):.2f})"
        if name in ranges:
            text += f"; {fmt_num(ranges[name][0], 3)} to {fmt_num(ranges[name][1], 3)} near best"
        if name in at_bound:
            text += f"; AT THE {at_bound[name].upper()} BOUND of its range"
        rows.append((f"tuned {name}", text))
    rows.append(("best proxy val loss", fmt_num(tune.get("best_value"))))
    trials = f"{tune.get('n_trials', '—')} ({tune.get('n_pruned', 0)} pruned, "
    trials += f"{tune.get('n_diverged', 0)} diverged, {tune.get('n_failed', 0)} failed)"
    near = tune.get("near_best") or {}
    if near:
        trials += f"; {near['trials']} within the noise ({fmt_num(near['band'], 3)}) of the best"
    rows.append(("trials", trials))
    if tune.get("widened"):
        rows.append(("search widened", ", ".join(tune["widened"])))
    return rows


RESOLVE_OUTCOMES = {
    "settled": "settled against the tolerance",
    "budget": "still straddles it, ladder.resolve_budget spent",
    "seeds": "still straddles it at the most seeds a point takes",
    "diverged": "a seed added diverged at the tuned LR",
}


def _transfer_rows(transfer: TransferSection) -> list[tuple[str, str]]:
    rows = []
    noise = transfer.get("noise") or {}
    if noise:
        std = num(noise.get("std"))
        text = "not measured" if math.isnan(std) else (
            f"seed std {std:.4f} ({noise.get('dof')} dof); points differ beyond "
            f"{num(noise.get('band')):.4f} ({fmt_percent(noise.get('relative_band'))})"
        )  # fmt: skip
        if noise.get("paired"):
            text += (
                f", paired: same-seed differences std {num(noise['paired_std']):.4f} "
                f"({noise['paired_dof']} dof, seed correlation {num(noise['correlation']):.2f}); "
                f"unpaired {fmt_percent(noise['relative_unpaired_band'])}"
            )
        rows.append(("noise", text))
    for kind in ("mup", "sp"):
        section = transfer.get(kind)
        if not section:
            continue
        label = PARAM_LABELS[kind]
        regrets, bands = section.get("regret") or {}, section.get("regret_band") or {}
        per_width = ", ".join(
            f"{w} {fmt_percent(r)}" + (f" ± {fmt_percent(bands[w])}" if w in bands else "")
            for w, r in regrets.items()
        )
        rows.append((f"{label} regret at the tuned LR", per_width))
        intervals = section.get("optimum_interval") or {}
        optima = section.get("optimum_log2_lr") or {}
        text = ", ".join(
            f"{w} {num(optima.get(w)):.2f} [{num(lo):.2f}, {num(hi):.2f}]"
            for w, (lo, hi) in intervals.items()
        )
        rows.append((f"{label} optimum log2 LR [within noise]", text))
        text = f"{num(section.get('drift_log2')):.2f} log2"
        text += f" ({num(section.get('drift_beyond_noise_log2')):.2f} beyond the noise)"
        wib = section.get("wider_is_better")
        if wib is not None:
            text += f"; wider is better: {'yes' if wib else 'no'}"
        rows.append((f"{label} optimum drift", text))
    for width, r in (transfer.get("resolved") or {}).items():
        text = (
            f"{fmt_percent(r['regret'])} ± {fmt_percent(r['band'])} from {r['seeds']} seeds "
            f"({r['added']} added): {RESOLVE_OUTCOMES.get(r['outcome'], r['outcome'])}"
        )
        rows.append((f"µP regret near the tolerance, width {width}", text))
    if "flops_vs_target" in transfer:
        text = f"{transfer.get('runs')} runs, {num(transfer['flops_vs_target']):.2f}× a target run"
        resolving = num(transfer.get("resolve_flops_vs_target"))
        if resolving > 0:
            text += f" ({resolving:.2f}× resolving regrets near the tolerance)"
        rows.append(("transfer check cost", text))
    return rows


def _axes_rows(axes: AxesSection) -> list[tuple[str, str]]:
    """The joint fit of the LR optimum: each slope with its error, and what it predicts."""
    joint = axes.get("joint")
    if not joint:
        return []
    slopes = ", ".join(
        f"{axis} {num(slope):+.2f} ± {num(joint['stderr'].get(axis)):.2f}"
        for axis, slope in joint["slopes"].items()
    )
    drift = "; the width slope is beyond its error (µP predicts 0)" if joint["width_drift"] else ""
    predicted = (
        f"{num(joint['log2_lr']):.2f} ({num(joint['log2_shift_vs_carry']):+.2f} from the tuned LR)"
    )
    parts = "; ".join(
        f"{name} {num(part['fitted']):+.2f} ± {num(part['stderr']):.2f}"
        f" → {num(part['shrunk']):+.2f}"
        for name, part in joint.get("shifts", {}).items()
    )
    rows = [
        (f"LR optimum slopes, log2 ({joint['points']} optima)", (slopes or "none fitted") + drift),
        ("target log2 LR by the joint fit", predicted),
    ]
    if parts:
        rows.append(("its shift by part, ± error → as applied", parts))
    return rows


def _verify_rows(verify: VerifySection) -> list[tuple[str, str]]:
    lo, hi = (num(v) for v in verify.get("optimum_interval") or [math.nan, math.nan])
    optimum = f"{num(verify.get('optimum_log2_lr')):.2f} [{lo:.2f}, {hi:.2f}]"
    if not verify.get("bracketed", True):
        optimum += " (not bracketed)"
    cost = f"{verify.get('runs')} runs, {num(verify.get('flops_vs_target')):.2f}× a target run"
    check = verify.get("check", "full")
    at = {"rung": "rung", "probes": "probes"}.get(check, "target")
    rows = []
    if check != "full":
        where = (
            f"width {verify.get('width')}, the target's {verify.get('steps')} steps"
            if check == "rung"
            else f"the target's width, {verify.get('steps')} steps"
        )
        rows.append((f"target check: {check}", where))
    for name, judged in (verify.get("judged") or {}).items():
        lo, hi = judged["interval"]
        text = f"{fmt_percent(judged['regret'])} [{fmt_percent(lo)}, {fmt_percent(hi)}]"
        label = JUDGED.get(name, name)
        rows.append((f"{at} regret at {label} (log2 {num(judged['log2_lr']):.2f})", text))
    rows.append((f"{at} optimum log2 LR [within noise]", optimum))
    if "target_optimum_log2_lr" in verify:
        lo, hi = (num(v) for v in verify.get("target_optimum_interval") or [math.nan] * 2)
        moved = f"{num(verify['target_optimum_log2_lr']):.2f} [{lo:.2f}, {hi:.2f}]"
        rows.append(("target optimum log2 LR, carried from the check", moved))
    rows.append(("target check cost", cost))
    return rows


def _target_rows(target: TargetSection | TargetComparison) -> list[tuple[str, str]]:
    rows = []
    if applied := target.get("applied"):
        lr, carried = num(applied["hparams"]["lr"]), num(applied["carried"]["lr"])
        text = f"LR {fmt_num(lr)} (log2 {math.log2(lr):.2f}; tuned {math.log2(carried):.2f})"
        rows.append(("target trains at", f"{text}: {applied['rule']}"))
    if target.get("method"):
        through = "".join(f" → {w}" for w in target.get("stages") or [])
        text = f"{target['method']} from width {target.get('source_width')}{through}"
        if target.get("source_from_transfer"):
            text += " (the source is the transfer check's run: no extra cost)"
        rows.append(("warm start", text))
        if target.get("source_note"):
            rows.append(("warm start source", target["source_note"]))
    for name in ("warm", "cold"):
        run = target.get(name)
        if run:
            rows.append((f"target {name} val loss", fmt_num(run.get("final_val_loss"))))
    if "cold_steps" in target or "warm_steps" in target:

        def step(key: str) -> str:
            return "never" if target.get(key) is None else f"{num(target[key]):.0f}"

        steps = f"cold {step('cold_steps')}, warm {step('warm_steps')}"
        rows.append(("steps to the cold final loss", steps))
    if "speedup" in target:
        text = fmt_speedup(target["speedup"])
        if target.get("speedup_with_source") is not None:
            text += f"; {fmt_speedup(target['speedup_with_source'])} counting the warm start's cost"
        if target.get("speedup_with_tuning") is not None:
            text += f"; {fmt_speedup(target['speedup_with_tuning'])} counting tuning too"
        rows.append(("speedup (cold ÷ warm steps)", text))
    if target.get("reason"):
        rows.append(("speedup note", str(target["reason"])))
    return rows


def _cost_rows(cost: Mapping[str, float], vs_target: Mapping[str, float]) -> list[tuple[str, str]]:
    """FLOPs per stage and in all, each also in target runs where the summary gives it."""

    def runs(key: str) -> str:
        value = vs_target.get(key)
        return "" if value is None else f" ({value:.2f} target runs)"

    rows, total = [], 0.0
    for key, value in cost.items():
        name = key.removesuffix("_flops")
        rows.append((f"FLOPs {name.replace('_', ' ')}", fmt_flops(value) + runs(name)))
        total += num(value) if math.isfinite(num(value)) else 0.0
    rows.append(("FLOPs total", fmt_flops(total) + runs("total")))
    if "besides_target" in vs_target:
        rows.append(
            ("spent besides the target's run", f"{vs_target['besides_target']:.2f} target runs")
        )
    return rows


def _hardware_rows(
    hardware: HardwareSection, target: TargetSection | TargetComparison | Mapping
) -> list[tuple[str, str]]:
    text = f"{hardware.get('device')}, {hardware.get('precision')}"
    text += ", compiled" if hardware.get("compile") else ""
    processes = hardware.get("processes", 1)
    if processes > 1:
        text += f"; target-size runs on {processes} processes ({hardware.get('data_parallel')})"
    rows = [("hardware", text)]
    for kind in ("warm", "cold"):
        rate = num((target.get(kind) or {}).get("tokens_per_s"))
        if math.isfinite(rate):
            mfu = (target.get(kind) or {}).get("mfu")
            extra = f", MFU {100 * num(mfu):.1f}%" if mfu is not None else ""
            rows.append((f"target {kind} throughput", f"{rate:,.0f} tokens/s{extra}"))
    return rows


def summary_rows(summary: Summary) -> list[tuple[str, str]]:
    """Every key figure of the summary, in reading order: verdict, tuning, transfer, coordinate
    check, the joint fit of the LR optimum, the check at the target, the warm and cold target
    runs, cost."""
    rows: list[tuple[str, str]] = []
    if verdict := summary.get("verdict"):
        rows.append(("verdict", Verdict.from_dict(verdict).text))
    if summary.get("tune"):
        rows += _tune_rows(summary["tune"])
    if summary.get("transfer"):
        rows += _transfer_rows(summary["transfer"])
    for kind, check in (summary.get("coord_check") or {}).items():
        if kind in PARAM_LABELS:
            rows.append((f"{PARAM_LABELS[kind]} coord check worst slope", coord_check_text(check)))
    if summary.get("axes"):
        rows += _axes_rows(summary["axes"])
    if summary.get("verify"):
        rows += _verify_rows(summary["verify"])
    if summary.get("target"):
        rows += _target_rows(summary["target"])
    if summary.get("hardware"):
        rows += _hardware_rows(summary["hardware"], summary.get("target") or {})
    if summary.get("cost"):
        rows += _cost_rows(summary["cost"], summary.get("cost_vs_target") or {})
    return rows
