"""The report: every figure the summary supports, and one self-contained HTML page.

`write_report` walks `FIGURES`, a table of (name, alt text, figure function). Each figure function
draws its PNG from the report's inputs and returns its caption, or raises `Skipped` with the
reason it has nothing to draw (a stage not run yet), which becomes a note on the page. The page
(a Jinja2 template, `templates/report.html.j2`) opens with the verdict, then the summary's key
figures (`summary_table.summary_rows`, the same rows as the console), every figure embedded as
base64 PNG, and Optuna's interactive plots of the study with plotly.js inline: no external
files, links or requests, so it works offline.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sweep.core.coord_check import DEFAULT_THRESHOLD, CoordCheck
from sweep.core.metrics import coord_verdict
from sweep.core.sections import Summary
from sweep.core.verdict import Status, Verdict
from sweep.edges import figures
from sweep.edges.summary_table import PARAM_LABELS, coord_check_text, summary_rows

if TYPE_CHECKING:
    import optuna


SectionPlot = Callable[[Summary, Path], Path | None]  # None: nothing in the summary to draw


class Skipped(Exception):
    """A figure with nothing to draw; the message says why (a note on the page)."""


@dataclass(frozen=True)
class ReportInputs:
    summary: Summary
    study: optuna.Study | None = None
    coord_checks: Sequence[CoordCheck] = field(default_factory=tuple)


def _coord_check(inputs: ReportInputs, path: Path) -> str:
    checks = inputs.summary.get("coord_check") or {}
    if not inputs.coord_checks:
        raise Skipped("No coordinate check (the report stage computes it).")
    figures.plot_coord_check(
        inputs.coord_checks, path, threshold=checks.get("threshold", DEFAULT_THRESHOLD)
    )
    measured = "; ".join(
        f"{PARAM_LABELS[kind]} worst slope {coord_check_text(checks[kind])}"
        for kind in ("mup", "sp")
        if kind in checks
    )
    return (
        "Coordinate check (docs/methods.md §2): mean |activation| per module against width at "
        f"each of the first training steps, at a large constant LR. Measured: {measured}."
    )


def _plotted(inputs: ReportInputs, path: Path, key: str, plot: SectionPlot) -> Mapping:
    """The summary's `key` section, once `plot` has drawn the figure from it; `Skipped` when the
    summary has no such section (its stage has not run) or nothing in it to draw."""
    section = inputs.summary.get(key)
    if not section:
        raise Skipped(f"No {key} section in the summary: its stage has not run, or was skipped.")
    if plot(inputs.summary, path) is None:
        raise Skipped(f"The {key} section has nothing to plot (no finite loss).")
    return section


def _transfer(inputs: ReportInputs, path: Path) -> str:
    _plotted(inputs, path, "transfer", figures.plot_transfer)
    return (
        "µTransfer check (docs/methods.md §3): final validation loss against log2 LR per width, "
        "µP left, SP right, on grids centred on the LR tuned on the proxy (dashed) and grown "
        "until each optimum is bracketed. Stars: each width's fitted optimum; bars: the LRs "
        "within the seed noise of its best loss; ×: diverged. Regret: what the tuned LR loses "
        "against the width's best loss."
    )


def _verify(inputs: ReportInputs, path: Path) -> str:
    _plotted(inputs, path, "verify", figures.plot_verify)
    return (
        "The check at the target (docs/methods.md §3, §12): cold runs at the LR applied to the "
        "target and its neighbours (×2^±resolution, further out until bracketed): whole target "
        "runs, or under a budget runs of the target's length at a narrower width (a rung) or "
        "short probes at its width, centred where the joint fit moves the LR; the tuned LR "
        "carried over and the fit's other predictions are read off the same curve."
    )


def _axes(inputs: ReportInputs, path: Path) -> str:
    prediction = _plotted(inputs, path, "axes", figures.plot_axes)["prediction"]
    return (
        "Transfer beside width (docs/methods.md §11): at the proxy width, loss against log2 LR "
        "at each rung of training length (or batch), and the optimum against the rung beside "
        f"the rule's line. For the target it predicts log2 LR {prediction['log2_lr']:.2f} "
        f"({prediction['log2_shift_vs_carry']:+.2f} from the tuned LR carried over)."
    )


def _warmstart(inputs: ReportInputs, path: Path) -> str:
    target = _plotted(inputs, path, "target", figures.plot_warmstart)
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
    return (
        f"Hyperparameter importances (Optuna's {figures.IMPORTANCE} over complete trials): "
        f"{values}."
    )


Figure = Callable[[ReportInputs, Path], str]
FIGURES: tuple[tuple[str, str, Figure], ...] = (
    ("transfer", "µTransfer: loss against LR per width", _transfer),
    ("verify", "the check at the target: loss against LR", _verify),
    ("axes", "transfer along training length and batch", _axes),
    ("coord_check", "coordinate check", _coord_check),
    ("warmstart", "warm against cold target runs", _warmstart),
    ("optuna_history", "Optuna optimisation history", _optuna_history),
    ("optuna_importance", "hyperparameter importances", _optuna_importance),
)

STUDY_FIGURES = ("optuna_history", "optuna_importance")  # Optuna's plots draw these interactively
TEMPLATES = Path(__file__).with_name("templates")
# the word the verdict box opens with, and its colour's legend
STATUS_WORDS = {
    Status.passes: "passes",
    Status.within_noise: "within the noise",
    Status.inconclusive: "inconclusive",
    Status.fails: "fails",
}


CHECKS = (("transfer", "across the ladder"), ("verify", "at the target"))


def verdict_parts(summary: Summary) -> list[tuple[str, Verdict]]:
    """The run's verdict check by check, each with its own status: the µP coordinate check, the
    transfer across the ladder, the check at the target (those the summary has)."""
    parts = []
    coord = (summary.get("coord_check") or {}).get("mup")
    if coord is not None:
        parts.append(("µP coordinate check", coord_verdict(coord)))
    for key, label in CHECKS:
        if record := (summary.get(key) or {}).get("verdict"):
            parts.append((label, Verdict.from_dict(record)))
    return parts


def render_html(
    summary: Summary,
    drawn: list[tuple[Path, str, str]],
    notes: list[str],
    interactive: Sequence[tuple[str, str]] = (),
    plotly_js: str = "",
) -> str:
    """The page: the verdict first, the key numbers, the notes, every figure as an embedded PNG,
    then the study's interactive plots (plotly.js inline, so the page works offline)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2"]))
    ladder = summary.get("ladder") or {}
    ladder_line = ""
    if ladder:
        widths = ", ".join(str(w) for w in ladder.get("widths") or []) or "—"
        ladder_line = (
            f"Ladder {ladder.get('name')}: widths {widths}; proxy {ladder.get('proxy', '—')}; "
            f"target {ladder.get('target', '—')}"
        )
    verdict = Verdict.from_dict(summary["verdict"]) if summary.get("verdict") else None
    checks = verdict_parts(summary)
    figures_ = [
        {"alt": alt, "caption": caption, "data": base64.b64encode(path.read_bytes()).decode()}
        for path, alt, caption in drawn
    ]
    return env.get_template("report.html.j2").render(
        name=ladder.get("name", "sweep"),
        verdict=verdict,
        headline=", ".join(f"{label} {STATUS_WORDS[v.status]}" for label, v in checks),
        checks=checks,
        status_words=STATUS_WORDS,
        ladder_line=ladder_line,
        rows=summary_rows(summary),
        notes=notes,
        figures=figures_,
        interactive=[{"title": t, "html": h} for t, h in interactive],
        plotly_js=plotly_js,
    )


def interactive_study(study: optuna.Study | None) -> tuple[list[tuple[str, str]], str]:
    """Optuna's own interactive plots of the study (history, learning curves with the pruned
    trials, importances, parallel coordinates) as HTML fragments, and plotly.js to embed once;
    nothing when there is no study to plot or plotly is missing."""
    try:
        _tuning_study(ReportInputs({}, study))
        import plotly.offline
        from optuna import visualization as vis
    except (Skipped, ImportError):
        return [], ""
    plots = [
        ("Optimisation history", vis.plot_optimization_history),
        ("Learning curves, pruned trials included", vis.plot_intermediate_values),
        ("Parallel coordinates", vis.plot_parallel_coordinate),
        (
            f"Hyperparameter importances ({figures.IMPORTANCE})",
            lambda s: vis.plot_param_importances(s, evaluator=figures.importance_evaluator()),
        ),
    ]
    out = []
    for title, plot in plots:
        try:
            figure = plot(study)
        except (ValueError, RuntimeError):  # e.g. importances of a constant study
            continue
        out.append((title, figure.to_html(full_html=False, include_plotlyjs=False)))
    return out, plotly.offline.get_plotlyjs() if out else ""


def write_report(
    summary: Summary,
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
    interactive, plotly_js = interactive_study(study)
    for name, alt, figure in FIGURES:
        path = out_dir / f"{name}.png"
        try:
            caption = figure(inputs, path)
        except Skipped as skipped:
            if str(skipped):
                notes.append(str(skipped))
            continue
        written[name] = path
        if not (interactive and name in STUDY_FIGURES):  # once, interactive; the PNG for W&B
            drawn.append((path, alt, caption))
    report = out_dir / "report.html"
    report.write_text(render_html(summary, drawn, notes, interactive, plotly_js), encoding="utf-8")
    written["report"] = report
    return written
