"""Bad commands against a finished run folder: each is refused in one line, and every file
the run computed is byte-for-byte what it was."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweep.config import compose_config
from sweep.pipeline import Pipeline

FAST = ["tune.n_trials=3", "tune.n_startup_trials=2", "tune.widen_trials=0", "verify.max_runs=2"]
FAST += ["ladder.lr_max_points=3", "ladder.noise_seeds=0", "launcher=debug", "logger=none"]
BAD = [
    ("seed=-1", "error: seed must be in [0, 2**32)"),
    ("seed=1", "error: "),  # another experiment in this run folder
    ("run_name=../gpt_tiny", "error: run_name must be a relative folder name"),
    ("ladder.warmup_steps=-1", "error: ladder.warmup_steps must be >= 0"),
    ("warmstart.perturb=nan", "error: warmstart.perturb must be a finite number"),
    ("stages=[]", "error: stages must list each stage"),
    ("hardware.device=cuda", "error: hardware.device=cuda but this machine has no GPU"),
    ("ladder.target_n_layer=0", "error: ladder.target_n_layer must be > 0"),
    ("tune.storage=nodatabase", "error: tune.storage must be null"),
    ("launcher.timeout_min=0", "error: launcher.timeout_min must be > 0"),
]


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    Pipeline(compose_config(f"out_root={root}", "+ladder=gpt_tiny", *FAST)).run()
    return root


@pytest.mark.parametrize(("override", "first_words"), BAD)
def test_a_bad_command_loses_nothing_computed(finished, override, first_words):
    if override == "hardware.device=cuda" and _has_gpu():
        pytest.skip("needs a machine without a GPU")
    before = digest(finished)
    command = ["-m", "sweep.run", "+ladder=gpt_tiny", f"out_root={finished}", *FAST, override]
    proc = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.returncode == 2, proc.stdout[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(first_words), proc.stderr[-2000:]
    assert digest(finished) == before  # every result, checkpoint, study and log untouched


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()
