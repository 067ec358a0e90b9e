"""`launcher=slurm` against a real single-node SLURM (`launchers/slurm_local.sh` starts one)."""

import json
import shutil
import subprocess

import pytest
from hydra import compose, initialize_config_dir

from sweep.config import config_dir, register_configs
from sweep.launch import LaunchError
from sweep.pipeline import Pipeline


def slurm_is_up() -> bool:
    if shutil.which("sbatch") is None:
        return False
    probe = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return probe.returncode == 0 and any(
        state in probe.stdout for state in ("idle", "mixed", "allocated")
    )


pytestmark = pytest.mark.skipif(
    not slurm_is_up(), reason="no running SLURM: run `launchers/slurm_local.sh` as root"
)
register_configs()


def queued_ids() -> set[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True)
    return set(out.stdout.split())


def make_cfg(tmp_path, *overrides):
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose(
            "config",
            overrides=[
                f"out_root={tmp_path}",
                "+ladder=gpt_tiny",
                "launcher=slurm",
                "launcher.cpus_per_task=1",
                "logger=none",
                *overrides,
            ],
        )


def test_pipeline_runs_on_slurm_with_the_transfer_grid_as_one_array(tmp_path):
    cfg = make_cfg(
        tmp_path,
        "tune.n_trials=3",
        "tune.n_startup_trials=2",
        "ladder.lr_grid=[-9,-6]",
        "stages=[tune,transfer,target]",
    )
    summary = Pipeline(cfg).run()
    assert summary["tune"]["n_trials"] == 3
    assert len(list((tmp_path / "gpt_tiny" / "transfer").glob("*.json"))) == 8
    assert {"warm", "cold"} <= set(summary["target"])
    submitted = list((tmp_path / "gpt_tiny" / "jobs" / "transfer").glob("*_submitted.pkl"))
    array_ids = {p.name.split("_")[0] for p in submitted}
    assert len(submitted) == 8 and len(array_ids) == 1  # 8 tasks of one job array
    point = json.loads(next((tmp_path / "gpt_tiny" / "transfer").glob("*.json")).read_text())
    assert len(point["losses"]) == 1


def test_unknown_partition_shows_the_sbatch_error_and_submits_nothing(tmp_path):
    before = queued_ids()
    cfg = make_cfg(tmp_path, "launcher.partition=no_such_partition")
    with pytest.raises(LaunchError, match=r"(?i)invalid partition"):
        Pipeline(cfg).run()
    assert queued_ids() <= before  # no new job
