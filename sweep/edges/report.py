"""The report: every figure the summary supports, and one self-contained HTML page.

`write_report` walks `FIGURES`, a table of (name, alt text, figure function). Each figure function
draws its PNG from the report's inputs and returns its caption, or raises `Skipped` with the
reason it has nothing to draw (a stage not run yet), which becomes a note on the page. The page
holds the summary's key figures (`summary_table.summary_rows`, the same rows as the console)
and every figure embedded as base64 PNG: no external files, links or scripts.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sweep.core.coord_check import CoordCheck
from sweep.edges import figures
from sweep.edges.summary_table import PARAM_LABELS, coord_check_text, summary_rows

if TYPE_CHECKING:
    import optuna


class Skipped(Exception):
    """A figure with nothing to draw; the message says why (a note on the page)."""


@dataclass(frozen=True)
class ReportInputs:
    summary: Mapping
    study: optuna.Study | None = None
    coord_checks: Sequence[CoordCheck] = field(default_factory=tuple)


def _coord_check(inputs: ReportInputs, path: Path) -> str:
    checks = inputs.summary.get("coord_check") or {}
    if not inputs.coord_checks:
        raise Skipped("No coordinate check (the report stage computes it).")
    figures.plot_coord_check(inputs.coord_checks, path, threshold=checks.get("threshold", 0.25))
    measured = "; ".join(
        f"{PARAM_LABELS[kind]} worst slope {coord_check_text(checks[kind])}"
        for kind in ("mup", "sp")
        if kind in checks
    )
    return (
        "Coordinate check (docs/methods.md §2): mean |activation| per module against width at "
        f"each of the first training steps, at a large constant LR. Measured: {measured}."
    )


def _transfer(inputs: ReportInputs, path: Path) -> str:
    if not inputs.summary.get("transfer"):
        raise Skipped("No transfer check in the summary (stage not run yet).")
    if figures.plot_transfer(inputs.summary, path) is None:
        raise Skipped("The transfer section has no loss curves to plot.")
    return (
        "µTransfer check (docs/methods.md §3): final validation loss against log2 LR per width, "
        "µP left, SP right, on grids centred on the LR tuned on the proxy (dashed) and grown "
        "until each optimum is bracketed. Stars: each width's fitted optimum; bars: the LRs "
        "within the seed noise of its best loss; ×: diverged. Regret: what the tuned LR loses "
        "against the width's best loss."
    )


def _verify(inputs: ReportInputs, path: Path) -> str:
    if not inputs.summary.get("verify"):
        raise Skipped("No check at the target in the summary (verify stage not run yet).")
    if figures.plot_verify(inputs.summary, path) is None:
        raise Skipped("The check at the target has no finite loss to plot.")
    return (
        "The direct check at the target (docs/methods.md §3): the cold target trained at the "
        "tuned LR and its neighbours (×2^±resolution, further out until bracketed)."
    )


def _warmstart(inputs: ReportInputs, path: Path) -> str:
    target = inputs.summary.get("target")
    if not target:
        raise Skipped("No target runs in the summary (stage not run yet).")
    if figures.plot_warmstart(inputs.summary, path) is None:
        raise Skipped("The target section has no validation curves to plot.")
    return (
        f"Target model warm-started by {target.get('method', 'a warm start')} from width "
        f"{target.get('source_width')} trained with the tuned HPs, against a cold µP init "
        "(docs/methods.md §4-§7). Dashed: the cold run's final validation loss; diamonds: the "
        "first evaluated step at which each run reaches it. Speedup = cold steps ÷ warm steps."
    )


def _tuning_study(inputs: ReportInputs) -> optuna.Study:
    study = inputs.study
    if study is None:
        raise Skipped("No Optuna study: optimisation history and importances skipped.")
    if len(study.directions) > 1:
        raise Skipped("Multi-objective Optuna study: history and importances skipped.")
    if len(figures.complete_trials(study)) < 2:
        raise Skipped("Fewer than 2 complete Optuna trials: history and importances skipped.")
    return study


def _optuna_history(inputs: ReportInputs, path: Path) -> str:
    figures.plot_optuna_history(_tuning_study(inputs), path)
    return "Optuna optimisation history on the proxy: each complete trial and the best so far."


def _optuna_importance(inputs: ReportInputs, path: Path) -> str:
    try:
        study = _tuning_study(inputs)
    except Skipped:
        raise Skipped("") from None  # the history figure already said why
    importances, reason = figures.param_importances(study)
    if importances is None:
        raise Skipped(f"Hyperparameter importances unavailable ({reason}).")
    figures.plot_importances(importances, path)
    values = ", ".join(f"{k} {v:.2f}" for k, v in importances.items())
    return f"Hyperparameter importances (Optuna's fANOVA over complete trials): {values}."


Figure = Callable[[ReportInputs, Path], str]
FIGURES: tuple[tuple[str, str, Figure], ...] = (
    ("transfer", "µTransfer: loss against LR per width", _transfer),
    ("verify", "the target's loss against LR", _verify),
    ("coord_check", "coordinate check", _coord_check),
    ("warmstart", "warm against cold target runs", _warmstart),
    ("optuna_history", "Optuna optimisation history", _optuna_history),
    ("optuna_importance", "hyperparameter importances", _optuna_importance),
)

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { font-family: ui-monospace, monospace; }
figure { margin: 2em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
p.note { color: #8a6d00; background: #fff8e1; padding: 4px 8px; }
"""


def _img(path: Path, alt: str, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def render_html(summary: Mapping, drawn: list[tuple[Path, str, str]], notes: list[str]) -> str:
    ladder = summary.get("ladder") or {}
    name = html.escape(str(ladder.get("name", "sweep")))
    out = io.StringIO()
    out.write("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>")
    out.write(f"<title>µP sweep report: {name}</title><style>{CSS}</style></head><body>\n")
    out.write(f"<h1>µP sweep report: {name}</h1>\n")
    if ladder:
        widths = ", ".join(str(w) for w in ladder.get("widths") or []) or "—"
        line = f"Ladder {ladder.get('name')}: widths {widths}; proxy {ladder.get('proxy', '—')}"
        out.write(f"<p>{html.escape(line)}; target {ladder.get('target', '—')}</p>\n")
    rows = summary_rows(summary)
    if rows:
        out.write("<h2>Key numbers</h2>\n<table>\n")
        for key, value in rows:
            out.write(f"<tr><th>{html.escape(key)}</th><td class='num'>{html.escape(value)}</td>")
            out.write("</tr>\n")
        out.write("</table>\n")
    for note in notes:
        out.write(f"<p class='note'>{html.escape(note)}</p>\n")
    if drawn:
        out.write("<h2>Figures</h2>\n")
        for path, alt, caption in drawn:
            out.write(_img(path, alt, caption) + "\n")
    out.write("</body></html>\n")
    return out.getvalue()


def write_report(
    summary: Mapping,
    out_dir: Path,
    study: optuna.Study | None = None,
    coord_checks: Sequence[CoordCheck] = (),
) -> dict[str, Path]:
    """Draw every figure of `FIGURES` that the inputs support and write report.html into
    out_dir; returns {name: path} of the files written ("report" is the page, always)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = ReportInputs(summary, study, tuple(coord_checks))
    written: dict[str, Path] = {}
    drawn: list[tuple[Path, str, str]] = []
    notes = [
        f"No {what} in the summary (stage not run yet)."
        for section, what in (("tune", "Optuna tuning"), ("cost", "cost accounting"))
        if not summary.get(section)
    ]
    for name, alt, figure in FIGURES:
        path = out_dir / f"{name}.png"
        try:
            caption = figure(inputs, path)
        except Skipped as skipped:
            if str(skipped):
                notes.append(str(skipped))
            continue
        written[name] = path
        drawn.append((path, alt, caption))
    report = out_dir / "report.html"
    report.write_text(render_html(summary, drawn, notes), encoding="utf-8")
    written["report"] = report
    return written
