"""The run's summary as (label, value) rows: one table for the console and the HTML report.

Numbers are formatted here once; the console (`sweep.edges.console`) and the page
(`sweep.edges.report`) only lay the rows out. Every section of the summary is optional: a stage
that has not run yet has no rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

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


def tuned_log2_lr(summary: Mapping) -> float:
    """log2 of the proxy-tuned LR, from the transfer section or else the tuned values."""
    transfer = summary.get("transfer") or {}
    if transfer.get("tuned_log2_lr") is not None:
        return num(transfer["tuned_log2_lr"])
    lr = num(((summary.get("tune") or {}).get("best_params") or {}).get("lr"))
    return math.log2(lr) if lr > 0 else math.nan


def coord_check_text(check: Mapping) -> str:
    """'0.098 at block1.attn, step 1 ≤ 0.25: pass' from a coordinate check's verdict."""
    slope, threshold = num(check.get("worst_slope")), num(check.get("threshold"))
    sign = "≤" if check.get("passes") else ">"
    where = f"{check.get('module')}, step {check.get('step')}"
    verdict = "pass" if check.get("passes") else "FAIL"
    return f"{slope:.3f} at {where} {sign} {threshold:g}: {verdict}"


def _tune_rows(tune: Mapping) -> list[tuple[str, str]]:
    rows = []
    for name, value in (tune.get("best_params") or {}).items():
        text = fmt_num(value)
        if name == "lr" and num(value) > 0:
            text += f" (log2 {math.log2(num(value)):.2f})"
        rows.append((f"tuned {name}", text))
    rows.append(("best proxy val loss", fmt_num(tune.get("best_value"))))
    trials = f"{tune.get('n_trials', '—')} ({tune.get('n_pruned', 0)} pruned, "
    trials += f"{tune.get('n_diverged', 0)} diverged, {tune.get('n_failed', 0)} failed)"
    rows.append(("trials", trials))
    return rows


def _transfer_rows(transfer: Mapping) -> list[tuple[str, str]]:
    rows = []
    for kind in ("mup", "sp"):
        section = transfer.get(kind)
        if section:
            text = f"{num(section.get('drift_log2')):.2f} log2"
            wib = section.get("wider_is_better")
            if wib is not None:
                text += f"; wider is better: {'yes' if wib else 'no'}"
            rows.append((f"{PARAM_LABELS[kind]} optimum drift", text))
    return rows


def _target_rows(target: Mapping) -> list[tuple[str, str]]:
    rows = []
    if target.get("method"):
        rows.append(("warm start", f"{target['method']} from width {target.get('source_width')}"))
    for name in ("warm", "cold"):
        run = target.get(name)
        if run:
            rows.append((f"target {name} val loss", fmt_num(run.get("final_val_loss"))))
    if "cold_steps" in target or "warm_steps" in target:

        def step(key: str) -> str:
            return "never" if target.get(key) is None else str(target[key])

        steps = f"cold {step('cold_steps')}, warm {step('warm_steps')}"
        rows.append(("steps to the cold final loss", steps))
    if "speedup" in target:
        text = fmt_speedup(target["speedup"])
        if target.get("speedup_with_source") is not None:
            text += f" ({fmt_speedup(target['speedup_with_source'])} counting the source)"
        rows.append(("speedup (cold ÷ warm steps)", text))
    if target.get("reason"):
        rows.append(("speedup note", str(target["reason"])))
    return rows


def _cost_rows(cost: Mapping) -> list[tuple[str, str]]:
    rows, total = [], 0.0
    for key, value in cost.items():
        rows.append((f"FLOPs {key.removesuffix('_flops').replace('_', ' ')}", fmt_flops(value)))
        total += num(value) if math.isfinite(num(value)) else 0.0
    rows.append(("FLOPs total", fmt_flops(total)))
    return rows


def summary_rows(summary: Mapping) -> list[tuple[str, str]]:
    """Every key figure of the summary, in reading order: verdict, tuning, transfer, coordinate
    check, target, cost."""
    rows: list[tuple[str, str]] = []
    if summary.get("verdict"):
        rows.append(("verdict", str(summary["verdict"])))
    if summary.get("tune"):
        rows += _tune_rows(summary["tune"])
    if summary.get("transfer"):
        rows += _transfer_rows(summary["transfer"])
    for kind, check in (summary.get("coord_check") or {}).items():
        if kind in PARAM_LABELS:
            rows.append((f"{PARAM_LABELS[kind]} coord check worst slope", coord_check_text(check)))
    if summary.get("target"):
        rows += _target_rows(summary["target"])
    if summary.get("cost"):
        rows += _cost_rows(summary["cost"])
    return rows
