"""Weights & Biases at the edge: one W&B run per training run, offline unless the user chose online.

Runs are grouped by the ladder run and typed by stage (`job_type`); the API key is never read or
written here: `wandb` finds it itself when the user has logged in, and offline mode needs none.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sweep.core.sections import Summary
from sweep.core.train import ProgressCallback, RunResult

WANDB_MODES = ("online", "offline", "disabled", "dryrun")  # what WANDB_MODE may say


def wandb_settings(
    logger: dict, run_dir: Path, environ: Mapping[str, str] = os.environ
) -> dict[str, Any] | None:
    """Project, entity, mode and folder of the W&B runs, or None when logging is off.

    A value the config names wins; then `WANDB_PROJECT`, `WANDB_ENTITY`, `WANDB_MODE`,
    `WANDB_DIR`, as W&B's users set them; then musweep's defaults: project "musweep", offline,
    the run folder. `WANDB_MODE=disabled` (or `logger=none`) writes nothing.
    """
    if logger["kind"] == "none":
        return None
    mode = logger.get("mode") or environ.get("WANDB_MODE") or "offline"
    if mode not in WANDB_MODES:
        raise ValueError(f"WANDB_MODE must be one of {', '.join(WANDB_MODES)}; got {mode!r}")
    if mode == "disabled":
        return None
    return {
        "project": logger.get("project") or environ.get("WANDB_PROJECT") or "musweep",
        "entity": logger.get("entity") or environ.get("WANDB_ENTITY"),
        "mode": "offline" if mode == "dryrun" else mode,
        "dir": logger.get("dir") or environ.get("WANDB_DIR") or str(run_dir),
    }


@contextmanager
def wandb_run(
    logger: dict,
    run_dir: Path,
    job_type: str,
    name: str,
    config: dict[str, Any],
    composed: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> Iterator[Any]:
    """A W&B run of the ladder run's group (None when logging is off), finished whatever
    happens inside. Its config is the run's own values, with the whole composed config under
    "musweep"; a `run_id` makes reruns resume one run instead of adding another."""
    settings = wandb_settings(logger, run_dir)
    if settings is None:
        yield None
        return
    import wandb

    Path(settings["dir"]).mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        **settings,
        group=run_dir.name,
        job_type=job_type,
        name=name,
        config=config | ({"musweep": composed} if composed else {}),
        id=run_id,
        resume="allow" if run_id else None,
        reinit="create_new",
        settings=wandb.Settings(silent=True, console="off", **_flush_setting(wandb)),
    )
    try:
        yield run
    finally:
        run.finish()


FLUSH_S = 5  # an offline run's file gets what was logged at least this often (W&B's default: 15)


def _flush_setting(wandb: Any) -> dict[str, float]:
    """W&B writes a running run's `.wandb` file every so often; sooner, so a run being watched
    through its file (`wandb sync`, `wandb leet`, a shared file system) is seconds behind."""
    name = "x_transaction_log_flush_interval"
    return {name: FLUSH_S} if name in type(wandb.Settings()).model_fields else {}


def run_link(run: Any) -> str | None:
    """Where a W&B run can be found: its URL online, its folder offline."""
    if run is None:
        return None
    return run.url or str(Path(run.dir).parent)


def code_version() -> dict[str, str | None]:
    """The package version and, from a source checkout, the git commit (with "+dirty")."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = version("musweep")
    except PackageNotFoundError:
        package = None
    root = Path(__file__).resolve().parents[2]
    try:
        commit = (
            subprocess.run(
                ["git", "-C", str(root), "describe", "--always", "--dirty=+dirty", "--abbrev=12"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"musweep": package, "commit": commit}


def log_result(run: Any, result: RunResult) -> None:
    """The run's totals in its W&B summary (its history went in live, through `live_progress`)."""
    if run is None:
        return
    run.summary.update(
        {
            "status": result.status,
            "final_val_loss": result.final_val_loss,
            "tokens": result.tokens,
            "flops": result.flops,
            "tokens_per_s": result.tokens_per_s,
            "mfu": result.mfu,
            "devices": result.devices,
        }
    )


def live_progress(run: Any, name: str, total_steps: int, echo: bool = True) -> ProgressCallback:
    """A `train` progress callback: every row to the W&B run as it comes (so its curves grow in
    the dashboard), and with `echo` one plain line per evaluation on stdout (so a job's log, a
    SLURM `.out` file or a pipe shows progress): step, losses, tokens/s, ETA."""
    clock: dict[str, float] = {}
    last_train = math.nan

    def on_progress(step: int, metrics: dict[str, float]) -> None:
        nonlocal last_train
        if run is not None:
            run.log(metrics, step=step)
        last_train = metrics.get("train/loss", last_train)
        if not echo or "val/loss" not in metrics:
            return
        now = time.monotonic()
        clock.setdefault("start", now)
        clock.setdefault("first_step", step)
        done = step - clock["first_step"]
        rate = done / (now - clock["start"]) if done > 0 and now > clock["start"] else math.nan
        eta = (total_steps - step) / rate if math.isfinite(rate) and rate > 0 else math.nan
        parts = [f"{name}: step {step}/{total_steps}", f"val loss {metrics['val/loss']:.4f}"]
        if math.isfinite(last_train):
            parts.append(f"train loss {last_train:.4f}")
        if math.isfinite(metrics.get("tokens_per_s", math.nan)):
            parts.append(f"{metrics['tokens_per_s']:,.0f} tok/s")
        if math.isfinite(eta):
            parts.append(f"ETA {format_seconds(eta)}")
        print(" | ".join(parts), flush=True)

    return on_progress


PROGRESS_LINE = re.compile(r"^(?P<name>[^:\n]+): step (?P<step>\d+)/(?P<total>\d+) \|", re.M)


def latest_steps(log_text: str) -> dict[str, tuple[int, int]]:
    """The last (step, total) each run reported in a job log of `live_progress` lines."""
    return {m["name"]: (int(m["step"]), int(m["total"])) for m in PROGRESS_LINE.finditer(log_text)}


def format_seconds(seconds: float) -> str:
    """0:07, 3:25, 1:02:03: a duration the way a progress bar shows it."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def report_run_id(run_dir: Path) -> str:
    """One id per run folder: every rerun of the report resumes the same W&B run."""
    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]
    return f"report-{re.sub(r'[^A-Za-z0-9_-]', '-', run_dir.name)[:40]}-{digest}"


def log_report(
    logger: dict, run_dir: Path, summary: Summary, report_dir: Path, composed: dict
) -> None:
    """The report run: loss-vs-LR curves per width as W&B line series, every figure as an
    image, the page itself, the key figures in its summary, and the page with `summary.json`
    as an artifact."""
    import wandb

    transfer = summary.get("transfer")
    run_id = report_run_id(run_dir)
    with wandb_run(logger, run_dir, "report", "report", summary["ladder"], composed, run_id) as run:
        if run is None:
            return
        if transfer:
            for p in ("mup", "sp"):
                curves = transfer[p]["curves"]
                run.log(
                    {
                        f"transfer/{p}": wandb.plot.line_series(
                            xs=[[x for x, _ in curve] for curve in curves.values()],
                            ys=[[y for _, y in curve] for curve in curves.values()],
                            keys=[f"width {w}" for w in curves],
                            title=f"{p}: loss vs log2 LR",
                            xname="log2 lr",
                        )
                    }
                )
        figures = {
            f"figures/{p.stem}": wandb.Image(str(p)) for p in sorted(report_dir.glob("*.png"))
        }
        page = report_dir / "report.html"
        if page.exists():
            figures["report"] = wandb.Html(page.read_text())
        if figures:
            run.log(figures)
        run.summary.update(_flatten(summary))
        artifact = wandb.Artifact(f"{run_id}-files", type="report")
        for path in (page, run_dir / "summary.json"):
            if path.exists():
                artifact.add_file(str(path))
        run.log_artifact(artifact)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalars of a nested summary as "a.b.c" keys (curves and lists are left out)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, int | float | str | bool):
            flat[f"{prefix}{key}"] = value
    return flat
