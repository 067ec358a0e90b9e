"""The report stage: the coordinate check (docs/methods.md §2) at the tuned HPs, over every ladder
width and the target, in µP and in SP, then the figures and the page (`sweep.edges.report`).

The result is saved as JSON in the report folder with the HPs it was measured at, so a rerun
draws the figure and the verdict from it instead of training again; a damaged or outdated file
is measured anew.
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from sweep.config import cuda_devices, data_config, model_config, public
from sweep.core.atomic import write_atomic
from sweep.core.coord_check import DEFAULT_THRESHOLD, CoordCheck, coord_check
from sweep.core.data import load_corpus
from sweep.core.parametrization import PARAMETRIZATIONS
from sweep.core.sections import CoordVerdict, Sections
from sweep.core.train import OptimConfig
from sweep.edges.report import write_report
from sweep.edges.tracking import log_report
from sweep.stages.plan import StagePlan, StepSeconds
from sweep.stages.stage import Context, Driver, Section, Stage

COORD_CHECK_LR = 1e-2  # deliberately large: differences between parametrizations show at once
COORD_CHECK_STEPS = 4
COORD_CHECK_FILE = "coord_check.json"


def coordinate_checks(cfg: DictConfig, hparams: dict[str, float]) -> list[CoordCheck]:
    """One check per parametrization over the ladder's widths and the target."""
    widths = [*cfg.ladder.widths, cfg.ladder.target]
    corpus = load_corpus(data_config(cfg))
    optim = OptimConfig(lr=COORD_CHECK_LR, schedule="constant")
    return [
        coord_check(
            model_config(cfg, widths[0], parametrization, hparams),
            widths,
            optim,
            corpus,
            steps=COORD_CHECK_STEPS,
            batch_size=4,
            seeds=(cfg.seed,),
            device=str(cfg.hardware.device) if cuda_devices() else "cpu",
        )
        for parametrization in PARAMETRIZATIONS
    ]


def read_coord_checks(folder: Path, hparams: dict[str, float] | None = None) -> list[CoordCheck]:
    """The saved checks ([] when missing, damaged, or measured at other HPs than `hparams`)."""
    try:
        saved = json.loads((folder / COORD_CHECK_FILE).read_text())
        if hparams is not None and saved["hparams"] != hparams:
            return []
        return [CoordCheck.from_dict(check) for check in saved["checks"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def measured_coord_checks(
    cfg: DictConfig, folder: Path, hparams: dict[str, float]
) -> list[CoordCheck]:
    """The saved checks at these HPs, or new ones (then saved)."""
    checks = read_coord_checks(folder, hparams)
    if not checks:
        checks = coordinate_checks(cfg, hparams)
        record = {"hparams": hparams, "checks": [check.to_dict() for check in checks]}
        write_atomic(folder / COORD_CHECK_FILE, json.dumps(record).encode())
    return checks


def coord_check_summary(
    checks: list[CoordCheck], threshold: float = DEFAULT_THRESHOLD
) -> dict[str, CoordVerdict]:
    """What was measured per parametrization: worst slope, where, and pass or fail."""
    return {check.parametrization: check.verdict(threshold) for check in checks}


class ReportStage(Stage):
    """The coordinate check, then the report from the summary, logged to W&B."""

    name = "report"

    def run(self, ctx: Context, driver: Driver) -> None:
        task = driver.progress.add_task(self.name, total=2, msg="coordinate check")
        folder = ctx.run_dir / self.name
        # a report before tuning: at the ladder's default HPs
        checks = measured_coord_checks(ctx.cfg, folder, ctx.tuned_or_default())
        driver.progress.update(task, completed=1, msg="figures")
        summary = driver.summary()
        write_report(summary, folder, study=ctx.study, coord_checks=checks)
        driver.write_summary(summary)
        log_report(ctx.cfg.logger, ctx.run_dir, summary, folder, public(ctx.cfg))
        driver.progress.update(task, completed=2, msg=str(folder / "report.html"))

    def plan(self, ctx: Context, step_seconds: StepSeconds) -> StagePlan:
        return StagePlan(self.name, 0, 0, 0.0, 0, 0.0, 0.0, "coordinate check")

    def summary(self, ctx: Context, so_far: Sections) -> Section | None:
        checks = read_coord_checks(ctx.run_dir / self.name)
        return Section("coord_check", coord_check_summary(checks)) if checks else None
