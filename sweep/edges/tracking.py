"""Weights & Biases at the edge: one W&B run per training run, offline unless the user chose online.

Runs are grouped by the ladder run and typed by stage (`job_type`); the API key is never read or
written here: `wandb` finds it itself when the user has logged in, and offline mode needs none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sweep.core.train import RunResult


@contextmanager
def wandb_run(
    logger: dict, run_dir: Path, group: str, job_type: str, name: str, config: dict[str, Any]
) -> Iterator[Any]:
    """A W&B run (or None when logging is off) that is finished whatever happens inside."""
    if logger["kind"] == "none" or logger["mode"] == "disabled":
        yield None
        return
    import wandb

    run = wandb.init(
        project=logger["project"],
        entity=logger.get("entity"),
        mode=logger["mode"],
        dir=str(run_dir),
        group=group,
        job_type=job_type,
        name=name,
        config=config,
        reinit="create_new",
        settings=wandb.Settings(silent=True, console="off"),
    )
    try:
        yield run
    finally:
        run.finish()


def log_result(run: Any, result: RunResult) -> None:
    """Train and validation loss at their steps, and the run's totals in its summary."""
    if run is None:
        return
    by_step: dict[int, dict[str, float]] = {}
    for step, loss in result.train_loss:
        by_step.setdefault(step, {})["train/loss"] = loss
    for step, loss in result.val_loss:
        by_step.setdefault(step, {})["val/loss"] = loss
    for step in sorted(by_step):  # W&B wants steps in increasing order
        run.log(by_step[step], step=step)
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


def log_report(logger: dict, run_dir: Path, summary: dict[str, Any]) -> None:
    """The report run: loss-vs-LR curves per width as W&B line series, and the key figures."""
    import wandb

    transfer = summary.get("transfer")
    with wandb_run(logger, run_dir, run_dir.name, "report", "report", summary["ladder"]) as run:
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
        run.summary.update(_flatten(summary))


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalars of a nested summary as "a.b.c" keys (curves and lists are left out)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, int | float | str | bool):
            flat[f"{prefix}{key}"] = value
    return flat
