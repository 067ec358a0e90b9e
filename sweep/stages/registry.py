"""Every stage, in the order the pipeline runs them and the summary lists them.

A new stage is one module with its `Stage` subclass, registered here (and, for the config to
accept its name, in `sweep.config.StageName`).
"""

from __future__ import annotations

from sweep.stages.axes import AxesStage
from sweep.stages.report import ReportStage
from sweep.stages.stage import Stage
from sweep.stages.target import TargetStage
from sweep.stages.transfer import TransferStage
from sweep.stages.tune import TuneStage
from sweep.stages.verify import VerifyStage

STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        TuneStage(),
        TransferStage(),
        AxesStage(),
        TargetStage(),
        VerifyStage(),
        ReportStage(),
    )
}
