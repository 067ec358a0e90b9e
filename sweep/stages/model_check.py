"""Before the first job: does the ladder's model keep its µP? A coordinate check (docs/methods.md
§2) of the model in µP over four widths from the proxy's, two seeds, at the ladder's fixed HPs.

A model whose outputs grow with width (a plain linear readout, an init that ignores fan-in, ...)
is refused in one line naming the modules, their slopes and the fix, before any trial is
spent on it. The verdict is saved in the run folder with the model and widths it judged, so a
rerun reads it instead of measuring again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from sweep.config import data_config, model_config
from sweep.core.atomic import write_atomic
from sweep.core.coord_check import DEFAULT_THRESHOLD, CoordCheck, coord_check
from sweep.core.data import load_corpus
from sweep.core.models import ModelConfig, refusal_hint, source_digest, unread_layouts
from sweep.core.train import OptimConfig
from sweep.stages.report import COORD_CHECK_LR

REFUSE_SLOPE = DEFAULT_THRESHOLD  # the report's coordinate check judges by the same slope
CHECK_STEPS = 6
CHECK_FILE = "model_check.json"


def layout_warning(cfg: DictConfig) -> str | None:
    """One line naming the model's matrices whose fan-in the tool assumes, or None."""
    unread = unread_layouts(
        model_config(cfg, cfg.ladder.widths[0], "mup", dict(cfg.ladder.hparams))
    )
    if not unread:
        return None
    listed = ", ".join(unread[:4]) + (f" and {len(unread) - 4} more" if len(unread) > 4 else "")
    return (
        f"model: no layer says the layout of {listed}: musweep reads each as (out, in), its "
        "fan-in the second axis, for its init and LR; if it is stored (in, out), wrap it in an "
        "nn.Linear"
    )


def check_widths(cfg: DictConfig) -> list[int]:
    """The ladder's first four widths, doubled past its widest if it has fewer."""
    widths = list(cfg.ladder.widths)[:4]
    while len(widths) < 4:
        widths.append(2 * widths[-1])
    return widths


def offenders(check: CoordCheck, threshold: float = REFUSE_SLOPE) -> list[dict[str, Any]]:
    """Modules whose slope exceeds `threshold` at some step, steepest first."""
    found = []
    for i, module in enumerate(check.modules):
        step = int(check.slopes[i].argmax())
        slope = float(check.slopes[i, step])
        if slope > threshold:
            found.append({"module": module, "step": step, "slope": slope})
    return sorted(found, key=lambda o: -o["slope"])


GENERIC_FIX = (
    "check that hidden matrices are drawn with std ∝ 1/sqrt(fan_in), that attention logits "
    "are scaled by 1/head_dim where the head size grows with width, and that the readout is a "
    "mup.MuReadout (or named in model.readout)"
)


def when(step: int) -> str:
    if step == 0:
        return "at init"
    return f"after {step} update{'s' if step > 1 else ''}"


def refusal(model: ModelConfig, record: dict[str, Any]) -> str:
    bad = record["offenders"]
    listed = ", ".join(f"{o['module']} {o['slope']:.2f} ({when(o['step'])})" for o in bad[:3])
    return (
        f"model: µP does not hold, outputs grow with width {record['widths']} (slope of "
        f"log mean |x| against log width, above {record['threshold']}: {listed}); "
        f"{refusal_hint(model, bad) or GENERIC_FIX}"
    )


def check_model(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The saved or a new verdict on the ladder's model; ValueError when µP does not hold."""
    widths = check_widths(cfg)
    model = model_config(cfg, widths[0], "mup", dict(cfg.ladder.hparams))
    path = run_dir / CHECK_FILE
    key = {"model": model.to_dict(), "widths": widths, "seed": cfg.seed}
    if source := source_digest(model):  # a fixed model file is measured again
        key["source"] = source
    try:
        record = json.loads(path.read_text())
        if {k: record[k] for k in key} != json.loads(json.dumps(key)):
            record = None
    except (OSError, ValueError, KeyError, TypeError):
        record = None
    if record is None:
        check = coord_check(
            model,
            widths,
            OptimConfig(lr=COORD_CHECK_LR, schedule="constant"),
            load_corpus(data_config(cfg)),
            steps=CHECK_STEPS,
            batch_size=4,
            seeds=(cfg.seed, cfg.seed + 1),
        )
        record = key | {
            "threshold": REFUSE_SLOPE,
            "worst": check.verdict(REFUSE_SLOPE),
            "offenders": offenders(check),
        }
        write_atomic(path, json.dumps(record, indent=1).encode())
    if record["offenders"]:
        raise ValueError(refusal(model, record))
    return record
