"""The report stage's own measurement: the coordinate check (docs/methods.md §2) at the tuned HPs,
over every ladder width and the target, in µP and in SP.

The result is saved as JSON in the report folder with the HPs it was measured at, so a rerun
draws the figure and the verdict from it instead of training again; a damaged or outdated file
is measured anew.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sweep.config import cuda_devices, data_config, model_config
from sweep.core.atomic import write_atomic
from sweep.core.coord_check import DEFAULT_THRESHOLD, CoordCheck, coord_check
from sweep.core.data import load_corpus
from sweep.core.parametrization import PARAMETRIZATIONS
from sweep.core.train import OptimConfig

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
) -> dict[str, Any]:
    """What was measured per parametrization: worst slope, where, and pass or fail."""
    return {check.parametrization: check.verdict(threshold) for check in checks}
