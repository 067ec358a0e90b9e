"""Render a sweep summary into PNG figures and one self-contained HTML page.

`write_report(summary, out_dir)` draws what the summary holds (every top-level section is
optional: a stage that has not run yet is skipped with a note):

- transfer.png: the µTransfer figure, µP | SP side by side, mean final validation loss against
  log2 LR, one curve per width, each width's fitted optimum marked, the tuned LR dashed;
- warmstart.png: validation loss against step for the warm-started and cold target runs, the
  cold final loss as a horizontal line and the step where each run first reaches it marked;
- optuna_history.png, optuna_importance.png: from an Optuna study with ≥ 2 complete trials;
- report.html: a table of the key numbers and every figure embedded as base64 PNG (no external
  files, links or scripts).
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np

from sweep.metrics import steps_to_reach

if TYPE_CHECKING:
    import optuna

P = ParamSpec("P")
R = TypeVar("R")

PARAM_LABELS = {"mup": "µP", "sp": "SP"}
Y_SPREAD = 1.5  # transfer.png shows losses up to min + Y_SPREAD × the lowest curve's spread


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _styled(draw: Callable[P, R]) -> Callable[P, R]:
    """Draw in matplotlib's default style and leave the caller's rcParams as they were (Optuna's
    matplotlib plots call plt.style.use("ggplot"), which would otherwise leak process-wide)."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _plt().style.context("default"):
            return draw(*args, **kwargs)

    return wrapper


# ----------------------------------------------------------------------------- formatting


def _num(value: Any) -> float:
    """A summary number as float; None (JSON null for NaN/diverged) becomes NaN."""
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def fmt_flops(value: Any) -> str:
    """1.234e15 → '1.23e15' (no '+', no leading zeros in the exponent)."""
    x = _num(value)
    if not math.isfinite(x):
        return "—"
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def fmt_num(value: Any, digits: int = 4) -> str:
    x = _num(value)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}g}"


def fmt_speedup(value: Any) -> str:
    x = _num(value)
    return "—" if math.isnan(x) else f"{fmt_num(x, 3)}×"


def _width_curves(section: Mapping) -> dict[int, np.ndarray]:
    """{width: losses} with int widths (JSON gives strings) in increasing order."""
    curves = section.get("curves") or {}
    return {
        int(w): np.array([_num(v) for v in losses], dtype=float)
        for w, losses in sorted(curves.items(), key=lambda kv: int(kv[0]))
    }


def _by_width(mapping: Mapping | None) -> dict[int, float]:
    return {int(w): _num(v) for w, v in (mapping or {}).items()}


def _tuned_log2_lr(summary: Mapping) -> float:
    transfer = summary.get("transfer") or {}
    if transfer.get("tuned_log2_lr") is not None:
        return _num(transfer["tuned_log2_lr"])
    lr = _num(((summary.get("tune") or {}).get("best_params") or {}).get("lr"))
    return math.log2(lr) if lr > 0 else math.nan


# ----------------------------------------------------------------------------- figures


def _transfer_ylim(panels: Sequence[dict[int, np.ndarray]]) -> tuple[float, float] | None:
    """Shared y-range: from just below the lowest loss to min + Y_SPREAD × spread of the lowest
    curve, where spread uses the curve's 90th percentile so one blown-up LR does not set it."""
    finite = [c[np.isfinite(c)] for panel in panels for c in panel.values()]
    finite = [c for c in finite if c.size]
    if not finite:
        return None
    lo = min(float(c.min()) for c in finite)
    hi = max(float(c.max()) for c in finite)
    lowest = min(finite, key=lambda c: float(c.min()))
    spread = float(np.percentile(lowest, 90)) - lo
    if spread <= 0:
        spread = max(hi - lo, 0.5)
    top = min(lo + Y_SPREAD * spread, hi + 0.05 * spread)
    top = max(top, lo + 0.1)
    return lo - 0.06 * (top - lo), top


@_styled
def plot_transfer(summary: Mapping, path: Path) -> Path | None:
    """The µTransfer figure; None (nothing written) when there is no curve to draw."""
    plt = _plt()
    from matplotlib.lines import Line2D

    transfer = summary.get("transfer") or {}
    log2_lrs = np.array([_num(x) for x in transfer.get("log2_lrs") or []], dtype=float)
    kinds = [k for k in ("mup", "sp") if _width_curves(transfer.get(k) or {})]
    if not kinds or log2_lrs.size == 0:
        return None
    panels = [_width_curves(transfer[k]) for k in kinds]
    for kind, panel in zip(kinds, panels, strict=True):
        for w, c in panel.items():
            if c.shape != log2_lrs.shape:
                raise ValueError(f"{kind} width {w}: {c.size} losses for {log2_lrs.size} LRs")
    widths = sorted({w for panel in panels for w in panel})
    cmap = plt.get_cmap("viridis")
    colour = {w: cmap(0.85 * i / max(len(widths) - 1, 1)) for i, w in enumerate(widths)}
    ladder = summary.get("ladder") or {}
    proxy, target = ladder.get("proxy"), ladder.get("target")
    ylim = _transfer_ylim(panels)
    tuned = _tuned_log2_lr(summary)

    fig, axes = plt.subplots(
        1, len(kinds), figsize=(4.8 * len(kinds) + 1.6, 4.2), sharey=True, squeeze=False
    )
    any_diverged = any_clipped = False
    for ax, kind, panel in zip(axes[0], kinds, panels, strict=True):
        section = transfer[kind]
        optima = _by_width(section.get("optimum_log2_lr"))
        for w, losses in panel.items():
            ok = np.isfinite(losses)
            ax.plot(log2_lrs[ok], losses[ok], "-o", color=colour[w], ms=3.5, lw=1.5)
            opt = optima.get(w, math.nan)
            if math.isfinite(opt) and ok.any():
                order = np.argsort(log2_lrs[ok])
                y_opt = float(np.interp(opt, log2_lrs[ok][order], losses[ok][order]))
                ax.plot([opt], [y_opt], "*", ms=14, color=colour[w], mec="black", mew=0.8, zorder=5)
            if ylim is not None and (~ok).any():
                any_diverged = True
                x_div = log2_lrs[~ok]
                ax.plot(x_div, np.full(x_div.size, ylim[1]), "x", color=colour[w], ms=7, mew=1.8,
                        clip_on=False, zorder=6)  # fmt: skip
            if ylim is not None and (losses[ok] > ylim[1]).any():
                any_clipped = True
        if math.isfinite(tuned):
            ax.axvline(tuned, color="0.3", ls="--", lw=1.2)
        title = f"{PARAM_LABELS[kind]}: optimum drift {_num(section.get('drift_log2')):.2f} log2"
        wib = section.get("wider_is_better")
        if wib is not None:
            title += f"\nwider is better: {'yes' if wib else 'no'}"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("log2 learning rate")
        ax.grid(alpha=0.3)
        if ylim is not None:
            ax.set_ylim(*ylim)
    axes[0, 0].set_ylabel("final validation loss (mean over seeds)")

    def role(w: int) -> str:
        return " (proxy)" if w == proxy else " (target)" if w == target else ""

    handles = [Line2D([], [], marker="o", ms=3.5, color=colour[w], label=f"{w}{role(w)}")
               for w in widths]  # fmt: skip
    handles.append(Line2D([], [], marker="*", ls="", color="0.6", mec="black", ms=10,
                          label="fitted optimum"))  # fmt: skip
    if math.isfinite(tuned):
        handles.append(Line2D([], [], ls="--", color="0.3", label=f"tuned LR ({tuned:.2f})"))
    if any_diverged:
        handles.append(Line2D([], [], marker="x", ls="", color="0.3", mew=1.8, label="diverged"))
    if any_clipped:
        handles.append(Line2D([], [], ls="", label="(higher losses\n off the top)"))
    verdict = transfer.get("verdict")
    if verdict:
        fig.suptitle(verdict, fontsize=10)
    right = 4.8 * len(kinds) / (4.8 * len(kinds) + 1.6)  # the panels' share; legend beyond
    fig.tight_layout(rect=(0, 0, right, 1))
    fig.legend(handles=handles, title="width", fontsize=8, title_fontsize=8, loc="center left",
               bbox_to_anchor=(right, 0.5), frameon=False)  # fmt: skip
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _curve(run: Mapping | None) -> tuple[np.ndarray, np.ndarray]:
    points = sorted(((int(s), _num(v)) for s, v in (run or {}).get("val_curve") or []))
    steps = np.array([p[0] for p in points], dtype=float)
    return steps, np.array([p[1] for p in points], dtype=float)


@_styled
def plot_warmstart(summary: Mapping, path: Path) -> Path | None:
    """Validation loss vs step, warm vs cold; None when neither run has a curve."""
    plt = _plt()
    target = summary.get("target") or {}
    runs = {name: _curve(target.get(name)) for name in ("warm", "cold")}
    if not any(steps.size for steps, _ in runs.values()):
        return None
    cold_final = _num((target.get("cold") or {}).get("final_val_loss"))
    if not math.isfinite(cold_final) and runs["cold"][1].size:
        cold_final = float(runs["cold"][1][-1])
    method = str(target.get("method", "warm start")).replace("_", "-")
    style = {
        "warm": ("tab:orange", f"warm: {method} from width {target.get('source_width', '?')}"),
        "cold": ("tab:blue", "cold (µP init)"),
    }

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, (steps, losses) in runs.items():
        if not steps.size:
            continue
        colour, label = style[name]
        ok = np.isfinite(losses)
        ax.plot(steps[ok], losses[ok], "-o", ms=3, color=colour, label=label)
        if math.isfinite(cold_final):
            reach = steps_to_reach(list(zip(steps, losses, strict=True)), cold_final)
            if reach is not None:
                y = float(losses[steps == reach][0])
                ax.plot([reach], [y], marker="D", ms=8, color=colour, mec="black", zorder=5)
                ax.annotate(
                    f"{name} reaches it: step {reach}",
                    (reach, y),
                    textcoords="offset points",
                    xytext=(6, 10) if name == "warm" else (-6, -16),
                    ha="left" if name == "warm" else "right",
                    fontsize=8,
                    color=colour,
                )
    if math.isfinite(cold_final):
        ax.axhline(
            cold_final, color="0.3", ls="--", lw=1, label=f"cold final loss {cold_final:.4g}"
        )
    finite = np.concatenate([losses[np.isfinite(losses)] for _, losses in runs.values()])
    if math.isfinite(cold_final) and finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        # Early cold losses (≈ ln vocab) dwarf the end game; keep the last stretch readable.
        top = cold_final + 4 * max(cold_final - lo, 0.05 * cold_final)
        warm_losses = runs["warm"][1][np.isfinite(runs["warm"][1])]
        if warm_losses.size:  # show where the warm start begins
            top = max(top, float(warm_losses[0]))
        top = min(hi, top)
        ax.set_ylim(lo - 0.1 * (top - lo), top + 0.03 * (top - lo))
    title = f"target width {target.get('width', '?')}"
    if target.get("speedup") is not None:
        title += f": speedup {fmt_speedup(target['speedup'])}"
        if target.get("speedup_with_proxy") is not None:
            title += f" ({fmt_speedup(target['speedup_with_proxy'])} counting the proxy)"
    elif "speedup" in target:
        title += ": warm never reached the cold final loss"
    ax.set(title=title, xlabel="step", ylabel="validation loss")
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _complete_trials(study: optuna.Study) -> list:
    import optuna

    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


@_styled
def plot_optuna_history(study: optuna.Study, path: Path) -> Path:
    """Optuna's own history plot when it works, else trial number vs value + best so far."""
    plt = _plt()
    try:
        from optuna.visualization import matplotlib as ovm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning
            ax = ovm.plot_optimization_history(study)
        fig = ax.figure
    except Exception:  # optuna's matplotlib backend is experimental: fall back to our own
        plt.close("all")
        fig = _history_figure(study)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _history_figure(study: optuna.Study):
    plt = _plt()
    trials = _complete_trials(study)
    numbers = np.array([t.number for t in trials])
    values = np.array([t.value for t in trials], dtype=float)
    maximize = study.direction.name == "MAXIMIZE"
    best = np.maximum.accumulate(values) if maximize else np.minimum.accumulate(values)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(numbers, values, "o", ms=4, color="tab:blue", alpha=0.7, label="objective value")
    ax.step(numbers, best, where="post", color="tab:red", label="best so far")
    ax.set(title="Optimization history", xlabel="trial", ylabel="objective value")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def param_importances(study: optuna.Study) -> tuple[dict[str, float] | None, str | None]:
    """(importances, None), or (None, reason) when Optuna cannot compute them."""
    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if not found:
        return None, "no parameter varied across the complete trials"
    return {k: float(v) for k, v in found.items()}, None


@_styled
def plot_importances(importances: Mapping[str, float], path: Path) -> Path:
    plt = _plt()
    names = list(importances)[::-1]  # most important on top
    values = [importances[n] for n in names]
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.45 * len(names)))
    bars = ax.barh(names, values, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize=8)
    ax.set(title="Hyperparameter importance (fANOVA)", xlabel="importance", xlim=(0, 1.1))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- HTML

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


def _rows(summary: Mapping) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    tune = summary.get("tune")
    if tune:
        for name, value in (tune.get("best_params") or {}).items():
            text = fmt_num(value)
            if name == "lr" and _num(value) > 0:
                text += f" (log2 {math.log2(_num(value)):.2f})"
            rows.append((f"best {name}", text))
        rows.append(("best objective (proxy val loss)", fmt_num(tune.get("best_value"))))
        trials = f"{tune.get('n_trials', '—')} trials"
        trials += f", {tune.get('n_pruned', 0)} pruned, {tune.get('n_failed', 0)} failed"
        rows.append(("Optuna trials", trials))
    transfer = summary.get("transfer")
    if transfer:
        for kind in ("mup", "sp"):
            section = transfer.get(kind)
            if section:
                text = f"{_num(section.get('drift_log2')):.2f} log2"
                wib = section.get("wider_is_better")
                if wib is not None:
                    text += f"; wider is better: {'yes' if wib else 'no'}"
                rows.append((f"{PARAM_LABELS[kind]} optimum drift", text))
        if transfer.get("verdict"):
            rows.append(("transfer verdict", str(transfer["verdict"])))
        tuned = _tuned_log2_lr(summary)
        if math.isfinite(tuned):
            rows.append(("tuned log2 LR", f"{tuned:.2f}"))
    target = summary.get("target")
    if target:
        if target.get("method"):
            rows.append(
                ("warm start", f"{target['method']} from width {target.get('source_width')}")
            )
        for name in ("warm", "cold"):
            run = target.get(name)
            if run:
                rows.append((f"{name} final val loss", fmt_num(run.get("final_val_loss"))))
        if "cold_steps" in target or "warm_steps" in target:

            def step(key: str) -> str:
                return "never" if target.get(key) is None else str(target[key])

            steps = f"cold {step('cold_steps')}, warm {step('warm_steps')}"
            rows.append(("steps to reach the cold final loss", steps))
        if "speedup" in target:
            rows.append(("speedup (cold ÷ warm steps)", fmt_speedup(target.get("speedup"))))
        if "speedup_with_proxy" in target:
            rows.append(("speedup counting the proxy", fmt_speedup(target["speedup_with_proxy"])))
        if target.get("reason"):
            rows.append(("speedup note", str(target["reason"])))
    cost = summary.get("cost")
    if cost:
        total = 0.0
        for key, value in cost.items():
            label = key.removesuffix("_flops").replace("_", " ")
            rows.append((f"FLOPs: {label}", fmt_flops(value)))
            total += _num(value) if math.isfinite(_num(value)) else 0.0
        rows.append(("FLOPs: total", fmt_flops(total)))
    return rows


def _img(path: Path, alt: str, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _render_html(summary: Mapping, figures: list[tuple[Path, str, str]], notes: list[str]) -> str:
    ladder = summary.get("ladder") or {}
    name = ladder.get("name", "sweep")
    out = io.StringIO()
    out.write("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>")
    out.write(f"<title>µP sweep report: {html.escape(str(name))}</title>")
    out.write(f"<style>{CSS}</style></head><body>\n")
    out.write(f"<h1>µP sweep report: {html.escape(str(name))}</h1>\n")
    if ladder:
        widths = ", ".join(str(w) for w in ladder.get("widths") or [])
        line = f"Ladder {name}: widths {widths or '—'}; proxy {ladder.get('proxy', '—')}"
        line += f"; target {ladder.get('target', '—')}"
        out.write(f"<p>{html.escape(line)}</p>\n")
    rows = _rows(summary)
    if rows:
        out.write("<h2>Key numbers</h2>\n<table>\n")
        for key, value in rows:
            out.write(
                f"<tr><th>{html.escape(key)}</th><td class='num'>{html.escape(value)}</td></tr>\n"
            )
        out.write("</table>\n")
    for note in notes:
        out.write(f"<p class='note'>{html.escape(note)}</p>\n")
    if figures:
        out.write("<h2>Figures</h2>\n")
        for path, alt, caption in figures:
            out.write(_img(path, alt, caption) + "\n")
    out.write("</body></html>\n")
    return out.getvalue()


def write_report(
    summary: dict,
    out_dir: Path,
    coord_check_png: Path | None = None,
    study: optuna.Study | None = None,
) -> dict[str, Path]:
    """Write the figures and report.html into out_dir; returns {name: path} of files written.

    Names: "transfer", "warmstart", "optuna_history", "optuna_importance" (each only when its
    data is there) and "report" (the HTML, always). A given coord_check_png is embedded too
    (not copied). Missing summary sections are skipped with a note in the page.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    figures: list[tuple[Path, str, str]] = []
    notes: list[str] = []
    for section, what in (
        ("ladder", "ladder"),
        ("tune", "Optuna tuning"),
        ("transfer", "transfer check"),
        ("target", "target warm vs cold runs"),
        ("cost", "cost accounting"),
    ):
        if not summary.get(section):
            notes.append(f"No {what} in the summary (stage not run yet): skipped.")

    if coord_check_png is not None:
        if Path(coord_check_png).is_file():
            figures.append(
                (
                    Path(coord_check_png),
                    "coordinate check",
                    "Coordinate check (METHODS §2): mean |activation| per module vs width, by "
                    "training step. µP: flat in width; SP: grows with width as training proceeds.",
                )
            )
        else:
            notes.append(f"Coordinate-check figure {Path(coord_check_png).name} not found.")

    if summary.get("transfer"):
        path = plot_transfer(summary, out_dir / "transfer.png")
        if path is None:
            notes.append("Transfer section has no loss curves to plot.")
        else:
            written["transfer"] = path
            figures.append(
                (
                    path,
                    "transfer",
                    "µTransfer check (METHODS §3): mean final validation loss vs log2 LR per "
                    "width, µP left, SP right. Stars: each width's fitted optimum (parabola "
                    "through the grid argmin and its neighbours); dashed: the LR tuned on the "
                    "proxy; ×: diverged. Drift = max − min of the optima across widths.",
                )
            )
    if summary.get("target"):
        path = plot_warmstart(summary, out_dir / "warmstart.png")
        if path is None:
            notes.append("Target section has no validation curves to plot.")
        else:
            written["warmstart"] = path
            figures.append(
                (
                    path,
                    "warmstart",
                    "Target model, warm-started from a smaller model trained with the tuned HPs "
                    f"({summary['target'].get('method', 'warm start')}), vs cold µP init "
                    "(METHODS §4-§7). "
                    "Dashed: the cold run's final validation loss; diamonds: the first evaluated "
                    "step at which each run reaches it. Speedup = cold steps ÷ warm steps.",
                )
            )

    if study is None:
        notes.append("No Optuna study given: optimisation history and importances skipped.")
    elif len(study.directions) > 1:
        notes.append("Multi-objective Optuna study: history and importance plots skipped.")
    elif len(_complete_trials(study)) < 2:
        notes.append("Fewer than 2 complete Optuna trials: history and importances skipped.")
    else:
        written["optuna_history"] = plot_optuna_history(study, out_dir / "optuna_history.png")
        figures.append(
            (
                written["optuna_history"],
                "optuna history",
                "Optuna optimisation history on the proxy: objective of each complete trial and "
                "the best so far.",
            )
        )
        importances, reason = param_importances(study)
        if importances is None:
            notes.append(f"Hyperparameter importances unavailable ({reason}).")
        else:
            path = plot_importances(importances, out_dir / "optuna_importance.png")
            written["optuna_importance"] = path
            figures.append(
                (
                    path,
                    "optuna importance",
                    "Hyperparameter importances (Optuna's fANOVA over complete trials): "
                    + ", ".join(f"{k} {v:.2f}" for k, v in importances.items())
                    + ".",
                )
            )

    report = out_dir / "report.html"
    report.write_text(_render_html(summary, figures, notes), encoding="utf-8")
    written["report"] = report
    return written
