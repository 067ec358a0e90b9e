"""The report's figures, each a pure function of the summary (or the study, or the coordinate
check) that writes one PNG and returns its path, or None when there is nothing to draw.

- `plot_transfer`: the µTransfer figure, µP | SP side by side, mean final validation loss against
  log2 LR, one curve per width, each width's fitted optimum marked, the tuned LR dashed;
- `plot_warmstart`: validation loss against step for the warm-started and cold target runs, the
  cold final loss as a horizontal line and the step where each run first reaches it marked;
- `plot_optuna_history`, `plot_importances`: the tuning study;
- `plot_coord_check`: mean |x| per module against width at every step, one row per
  parametrization, each row titled with its measured worst slope against the threshold.
"""

from __future__ import annotations

import functools
import math
import textwrap
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import numpy as np

from sweep.core.coord_check import DEFAULT_THRESHOLD, CoordCheck
from sweep.core.lr_curve import fit_optimum
from sweep.core.sections import Summary
from sweep.core.speedup import steps_to_reach
from sweep.core.verdict import Verdict
from sweep.edges.summary_table import PARAM_LABELS, fmt_speedup, num, tuned_log2_lr

if TYPE_CHECKING:
    import optuna

P = ParamSpec("P")
R = TypeVar("R")


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


def _finish(fig, ax, path: Path) -> Path:
    """One-panel figures' common end: small title, grid, legend, saved and closed."""
    ax.title.set_fontsize(10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def _xy(curve: Sequence | None) -> tuple[np.ndarray, np.ndarray]:
    """A [[log2 LR, loss], ...] curve as sorted x and y arrays (None, for diverged, as NaN)."""
    pairs = sorted((num(x), num(y)) for x, y in curve or [])
    return np.array([x for x, _ in pairs], float), np.array([y for _, y in pairs], float)


def _width_curves(section: Mapping) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{width: (log2 LRs, losses)} with int widths (JSON gives strings) in increasing order."""
    curves = section.get("curves") or {}
    return {int(w): _xy(c) for w, c in sorted(curves.items(), key=lambda kv: int(kv[0]))}


def _by_width(mapping: Mapping | None) -> dict[int, float]:
    return {int(w): num(v) for w, v in (mapping or {}).items()}


def _transfer_ylim(panels: Sequence[Sequence[np.ndarray]]) -> tuple[float, float] | None:
    """Shared y-range showing every curve's basin: from just below the lowest loss to the
    highest of the curves' third-lowest losses (the minimum and its two neighbours), so one
    blown-up LR does not flatten the rest."""
    finite = [c[np.isfinite(c)] for panel in panels for c in panel]
    finite = [np.sort(c) for c in finite if c.size]
    if not finite:
        return None
    lo = min(float(c[0]) for c in finite)
    hi = max(float(c[-1]) for c in finite)
    top = max(float(c[min(2, c.size - 1)]) for c in finite)
    top = min(hi, top + 0.1 * (top - lo)) if top > lo else lo + 0.1
    return lo - 0.06 * (top - lo), top


@_styled
def plot_transfer(summary: Summary, path: Path) -> Path | None:
    """The µTransfer figure; None (nothing written) when there is no curve to draw. µP | SP
    side by side: each width's loss against log2 LR, its fitted optimum (star), the LRs within
    the noise of its best loss (a bar under the curve), the tuned LR dashed, each width's regret
    there in the legend."""
    plt = _plt()
    from matplotlib.lines import Line2D

    transfer = summary.get("transfer") or {}
    kinds = [k for k in ("mup", "sp") if _width_curves(transfer.get(k) or {})]
    if not kinds:
        return None
    panels = [_width_curves(transfer[k]) for k in kinds]
    widths = sorted({w for panel in panels for w in panel})
    cmap = plt.get_cmap("viridis")
    colour = {w: cmap(0.85 * i / max(len(widths) - 1, 1)) for i, w in enumerate(widths)}
    ladder = summary.get("ladder") or {}
    proxy = ladder.get("proxy")
    ylim = _transfer_ylim([[ys for _, ys in panel.values()] for panel in panels])
    tuned = tuned_log2_lr(summary)

    fig, axes = plt.subplots(
        1, len(kinds), figsize=(5.2 * len(kinds) + 1.8, 4.6), sharey=True, squeeze=False
    )
    any_diverged = any_clipped = False
    for ax, kind, panel in zip(axes[0], kinds, panels, strict=True):
        section = transfer[kind]
        optima = _by_width(section.get("optimum_log2_lr"))
        intervals = section.get("optimum_interval") or {}
        regrets = _by_width(section.get("regret"))
        handles = []
        for w, (xs, ys) in panel.items():
            diverged, clipped = _draw_width(
                ax, xs, ys, colour[w], optima.get(w, math.nan),
                intervals.get(str(w), [math.nan, math.nan]), ylim,
            )  # fmt: skip
            any_diverged, any_clipped = any_diverged or diverged, any_clipped or clipped
            role = " (proxy)" if w == proxy else ""
            label = f"{w}{role}: regret {_percent(regrets.get(w, math.nan))}"
            handles.append(Line2D([], [], marker="o", ms=3.5, color=colour[w], label=label))
        if math.isfinite(tuned):
            ax.axvline(tuned, color="0.3", ls="--", lw=1.2)
        ax.set(xlabel="log2 learning rate")
        ax.set_title(_transfer_title(kind, section), fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, title="width", fontsize=7, title_fontsize=7, loc="best")
        if ylim is not None:
            ax.set_ylim(*ylim)
    axes[0, 0].set_ylabel("final validation loss (mean over seeds)")

    if verdict := transfer.get("verdict"):
        fig.suptitle(textwrap.fill(Verdict.from_dict(verdict).text, 140), fontsize=9)
    right = 5.2 * len(kinds) / (5.2 * len(kinds) + 1.8)  # the panels' share; legend beyond
    fig.tight_layout(rect=(0, 0, right, 1))
    legend = _transfer_legend(tuned, any_diverged, any_clipped)
    place = {"loc": "center left", "bbox_to_anchor": (right, 0.5), "frameon": False}
    fig.legend(handles=legend, fontsize=8, **place)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _transfer_legend(tuned: float, diverged: bool, clipped: bool) -> list:
    """The transfer figure's shared legend: the star, the noise bar, the tuned LR, and the
    diverged and clipped marks where the panels have them."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="*", ls="", color="0.6", mec="black", ms=10, label="fitted optimum"),
        Line2D([], [], color="0.6", lw=5, alpha=0.35, label="within the noise\nof the best"),
    ]
    if math.isfinite(tuned):
        handles.append(Line2D([], [], ls="--", color="0.3", label=f"tuned LR ({tuned:.2f})"))
    if diverged:
        handles.append(Line2D([], [], marker="x", ls="", color="0.3", mew=1.8, label="diverged"))
    if clipped:
        handles.append(Line2D([], [], ls="", label="(higher losses\n off the top)"))
    return handles


def vertex_loss(xs: np.ndarray, ys: np.ndarray, optimum: float) -> float:
    """Where a fitted optimum's star sits: the loss of the parabola's vertex (the curve the
    optimum was fitted on, `fit_optimum`), or on the measured curve where none was fitted."""
    fit = fit_optimum(xs.tolist(), ys.tolist())
    if fit.fitted and math.isclose(fit.log2_lr, optimum, abs_tol=1e-9):
        return fit.loss
    ok = np.isfinite(ys)
    return float(np.interp(optimum, xs[ok], ys[ok]))


def _draw_width(ax, xs, ys, colour, optimum: float, interval, ylim) -> tuple[bool, bool]:
    """One width's curve on a transfer panel: the finite points, the fitted optimum (star),
    the LRs within the noise (a bar at the best loss), diverged points (× at the top); whether
    it had diverged points, and points above the top."""
    ok = np.isfinite(ys)
    ax.plot(xs[ok], ys[ok], "-o", color=colour, ms=3.5, lw=1.5)
    if math.isfinite(optimum) and ok.any():
        y_opt = vertex_loss(xs, ys, optimum)
        ax.plot([optimum], [y_opt], "*", ms=13, color=colour, mec="black", mew=0.8, zorder=5)
    lo, hi = (num(v) for v in interval)
    if math.isfinite(lo) and math.isfinite(hi) and ok.any():
        best = float(ys[ok].min())
        ax.plot([lo, hi], [best] * 2, color=colour, lw=5, alpha=0.35, solid_capstyle="butt")
    diverged = ylim is not None and bool((~ok).any())
    if diverged:
        top = np.full(int((~ok).sum()), ylim[1])
        ax.plot(xs[~ok], top, "x", color=colour, ms=7, mew=1.8, clip_on=False, zorder=6)
    clipped = ylim is not None and bool((ys[ok] > ylim[1]).any())
    return diverged, clipped


def _transfer_title(kind: str, section: Mapping) -> str:
    """A transfer panel's title: worst regret, drift (and beyond the noise), wider is better."""
    title = f"{PARAM_LABELS[kind]}: worst regret {_percent(num(section.get('worst_regret')))}"
    title += f"; optima drift {num(section.get('drift_log2')):.2f} log2"
    beyond = num(section.get("drift_beyond_noise_log2"))
    if math.isfinite(beyond):
        title += f"\n({beyond:.2f} beyond the noise)"
    wib = section.get("wider_is_better")
    if wib is not None:
        title += f"; wider is better: {'yes' if wib else 'no'}"
    return title


def _percent(fraction: float) -> str:
    if math.isnan(fraction):
        return "—"
    return "diverges" if math.isinf(fraction) else f"{100 * fraction:.2f}%"


def check_label(verify: Mapping, target: object) -> tuple[str, str]:
    """What the check's runs were, for the legend and the title: the target's own runs, a
    rung's at its width, or probes of their steps."""
    check, steps = verify.get("check", "full"), verify.get("steps", "?")
    if check == "rung":
        width = verify.get("width", "?")
        return f"cold run at width {width}", f"a rung of the target's {steps} steps, width {width}"
    if check == "probes":
        return f"probe of {steps} steps", f"probes of {steps} steps at target width {target}"
    return "cold target run", f"target width {target}"


@_styled
def plot_verify(summary: Summary, path: Path) -> Path | None:
    """The check's loss against log2 LR around the LR it judges (dashed: the applied LR, moved
    to the check's width or length where a rung or probes ran; the tuned LR carried over dotted
    where it differs): the target's own curve, a rung's or the probes'."""
    plt = _plt()
    verify = summary.get("verify") or {}
    xs, ys = _xy(verify.get("curve"))
    ok = np.isfinite(ys)
    if not ok.any():
        return None
    runs, where = check_label(verify, summary.get("ladder", {}).get("target", "?"))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(xs[ok], ys[ok], "-o", color="tab:blue", ms=4, label=runs)
    if (~ok).any():
        ax.plot(
            xs[~ok],
            np.full(int((~ok).sum()), float(ys[ok].max())),
            "x",
            color="tab:red",
            ms=8,
            mew=2,
            label="diverged",
        )
    opt = num(verify.get("optimum_log2_lr"))
    if math.isfinite(opt):
        ax.plot(
            [opt],
            [vertex_loss(xs, ys, opt)],
            "*",
            ms=14,
            color="tab:blue",
            mec="black",
            label=f"fitted optimum ({opt:.2f})",
        )
    lo, hi = (num(v) for v in verify.get("optimum_interval") or [math.nan, math.nan])
    if math.isfinite(lo) and math.isfinite(hi):
        ax.plot(
            [lo, hi],
            [float(ys[ok].min())] * 2,
            color="tab:blue",
            lw=6,
            alpha=0.3,
            solid_capstyle="butt",
            label="within the noise of the best",
        )
    applied = num(verify.get("applied_log2_lr"))
    centre = num(verify.get("centre_log2_lr", applied))
    judged = "applied LR" if math.isclose(centre, applied) else "applied LR, moved here"
    ax.axvline(centre, color="0.3", ls="--", label=f"{judged} ({centre:.2f})")
    carried = (verify.get("judged") or {}).get("carried")
    if carried:
        x = num(carried["log2_lr"])
        ax.axvline(x, color="tab:orange", ls=":", label=f"tuned LR carried over ({x:.2f})")
    regret = _percent(num(verify.get("regret")))
    ax.set(
        title=f"{where}: regret at the {judged} {regret}",
        xlabel="log2 learning rate",
        ylabel="final validation loss",
    )
    return _finish(fig, ax, path)


def _curve(run: Mapping | None) -> tuple[np.ndarray, np.ndarray]:
    points = sorted(((int(s), num(v)) for s, v in (run or {}).get("val_curve") or []))
    steps = np.array([p[0] for p in points], dtype=float)
    return steps, np.array([p[1] for p in points], dtype=float)


@_styled
def plot_axes(summary: Summary, path: Path) -> Path | None:
    """The checks beside width: per axis, the proxy's loss against log2 LR at each rung (the
    tuned LR dashed, each rung's rule LR a triangle), and the optimum against the rung with the
    rule's line; None when no axis was checked."""
    plt = _plt()
    checked = {
        a: s
        for a, s in (summary.get("axes") or {}).items()
        if isinstance(s, Mapping) and s.get("curves")
    }
    checked.pop("prediction", None)
    if not checked:
        return None
    fig, grid = plt.subplots(len(checked), 2, figsize=(11, 4.2 * len(checked)), squeeze=False)
    tuned = tuned_log2_lr(summary)
    for (curves, optima), (axis, section) in zip(grid, checked.items(), strict=True):
        cmap = plt.get_cmap("viridis")
        rungs = sorted(section["curves"], key=float)
        for i, rung in enumerate(rungs):
            colour = cmap(0.85 * i / max(len(rungs) - 1, 1))
            xs, ys = (np.array(v, dtype=float) for v in zip(*section["curves"][rung], strict=True))
            ok = np.isfinite(ys)
            curves.plot(xs[ok], ys[ok], "-o", ms=3.5, color=colour, label=f"×{rung}")
            rule = num((section.get("rule_log2_lr") or {}).get(rung))
            if math.isfinite(rule) and ok.any() and xs[ok].min() <= rule <= xs[ok].max():
                y = float(np.interp(rule, xs[ok], ys[ok]))
                curves.plot([rule], [y], "^", ms=9, color=colour, mec="black")
        if math.isfinite(tuned):
            curves.axvline(tuned, color="grey", ls="--", lw=1)
        curves.set(
            xlabel="log2 LR",
            ylabel="final validation loss",
            title=f"{axis}: the proxy at each rung (▲ the rule's LR)",
        )
        curves.legend(fontsize=8)
        points = sorted((float(r), num(v)) for r, v in section["optimum_log2_lr"].items())
        rx, ry = zip(*points, strict=True)
        optima.plot(rx, ry, "o", ms=7, color="black", label="fitted optimum")
        optima.set_xscale("log")
        optima.set_xticks(rx, [f"×{r:g}" for r in rx])
        optima.minorticks_off()
        rules = sorted((float(r), num(v)) for r, v in (section.get("rule_log2_lr") or {}).items())
        if rules:
            x, y = zip(*rules, strict=True)
            name = "β" if axis == "horizon" else "κ"
            value = section.get("beta" if axis == "horizon" else "kappa")
            optima.plot(x, y, "-", color="tab:blue", label=f"rule ({name} = {num(value):.2f})")
        if math.isfinite(tuned):
            optima.axhline(tuned, color="grey", ls="--", lw=1, label="carried over (tuned)")
        optima.set(
            xlabel=f"rung (× the proxy's {'tokens' if axis == 'horizon' else 'batch'})",
            ylabel="log2 LR",
            title=f"{axis}: where the optimum goes",
        )
        optima.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_warmstart(summary: Summary, path: Path) -> Path | None:
    """Validation loss vs step, warm vs cold; None when neither run has a curve."""
    plt = _plt()
    target = summary.get("target") or {}
    runs = {name: _curve(target.get(name)) for name in ("warm", "cold")}
    if not any(steps.size for steps, _ in runs.values()):
        return None
    cold_final = num((target.get("cold") or {}).get("final_val_loss"))
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
            if reach is not None:  # interpolated between evaluations: on the dashed line
                y = cold_final
                ax.plot([reach], [y], marker="D", ms=8, color=colour, mec="black", zorder=5)
                ax.annotate(
                    f"{name} reaches it: step {reach:.0f}",
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
    title = _warmstart_title(target)
    ax.set(title=title, xlabel="step", ylabel="validation loss")
    return _finish(fig, ax, path)


def _warmstart_title(target: Mapping) -> str:
    """The warm-vs-cold figure's title: the target width and the speedups measured."""
    title = f"target width {target.get('width', '?')}"
    if target.get("speedup") is not None:
        title += f": speedup {fmt_speedup(target['speedup'])}"
        if target.get("speedup_with_source") is not None:
            title += (
                f"\n{fmt_speedup(target['speedup_with_source'])} counting the warm start's cost"
            )
        if target.get("speedup_with_tuning") is not None:
            title += f", {fmt_speedup(target['speedup_with_tuning'])} counting tuning too"
    elif "speedup" in target:
        title += ": warm never reached the cold final loss"
    return title


def complete_trials(study: optuna.Study) -> list:
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
    trials = complete_trials(study)
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


IMPORTANCE = "PED-ANOVA"  # the evaluator the report computes importances with, in words


def importance_evaluator() -> optuna.importance.BaseImportanceEvaluator:
    """The one evaluator behind every importance the report shows (figure and interactive
    plot alike): Optuna's PED-ANOVA, its default since 4.x."""
    import optuna

    return optuna.importance.PedAnovaImportanceEvaluator()


def param_importances(study: optuna.Study) -> tuple[dict[str, float] | None, str | None]:
    """(importances, None), or (None, reason) when Optuna cannot compute them."""
    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = optuna.importance.get_param_importances(study, evaluator=importance_evaluator())
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
    ax.set(title=f"Hyperparameter importance ({IMPORTANCE})", xlabel="importance", xlim=(0, 1.1))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@_styled
def plot_coord_check(
    checks: Sequence[CoordCheck], path: Path, threshold: float = DEFAULT_THRESHOLD
) -> Path:
    """One row per parametrization, one panel per step: mean |x| vs width for every module.
    Each row's first title states the measured worst slope against `threshold`."""
    plt = _plt()
    steps = checks[0].scales.shape[1]
    fig, axes = plt.subplots(  # one y-axis for all panels: µP's flat lines beside SP's growth
        len(checks),
        steps,
        figsize=(3 * steps, 3 * len(checks)),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    verdicts = []
    for row, check in zip(axes, checks, strict=True):
        module, worst_step, slope = check.worst()
        label = PARAM_LABELS.get(check.parametrization, check.parametrization)
        for t, ax in enumerate(row):
            for i, name in enumerate(check.modules):
                ax.plot(check.widths, check.scales[i, t], marker="o", ms=3, label=name)
            ax.set(xscale="log", yscale="log", title=f"{label}  step {t}")
            ax.minorticks_off()
            ax.set_xticks(check.widths, [str(w) for w in check.widths])
        row[0].set_ylabel("mean |x|")
        worst = check.modules.index(module)
        row[worst_step].plot(
            check.widths, check.scales[worst, worst_step], color="red", lw=2.5, zorder=5
        )
        row[worst_step].annotate(
            f"worst: {module}\nslope {slope:.2f}",
            xy=(0.03, 0.97),
            xycoords="axes fraction",
            va="top",
            fontsize=7,
            color="red",
        )
        passes = slope <= threshold
        verdicts.append(
            f"{label}: worst slope {slope:.2f} ({module}, step {worst_step}) "
            f"{'≤' if passes else '>'} {threshold:g}: {'pass' if passes else 'FAIL'}"
        )
    fig.suptitle("    ".join(verdicts), fontsize=10)
    axes[0, -1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    for ax in axes[-1]:
        ax.set_xlabel("width")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
