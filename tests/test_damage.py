"""Damaged results are found, named and redone, never used and never a crash; a damaged study
is one line saying what to do. Nothing else already computed is touched."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

from sweep.config import compose_config
from sweep.core.records import read_record, write_record
from sweep.pipeline import Pipeline

QUIET = ["logger=none", "stages=[tune]"]
FAST = ["tune.n_trials=3", "tune.n_startup_trials=2", "tune.widen_trials=0"]
FAST += ["ladder.lr_max_points=3", "ladder.noise_seeds=0", "launcher=debug", "logger=none"]


def test_a_record_reads_back_only_when_whole(tmp_path, caplog):
    path = tmp_path / "point.json"
    record = {"loss": math.nan, "run": {"width": 64}, "curve": [(1, 2.5)]}
    write_record(path, record)
    back = read_record(path)
    assert back["run"] == {"width": 64} and back["curve"] == [[1, 2.5]]
    assert math.isnan(back["loss"])
    assert read_record(tmp_path / "missing.json") is None

    text = path.read_text()
    path.write_text(text.replace("64", "65"))  # a flipped digit: valid JSON, wrong content
    with caplog.at_level(logging.WARNING, logger="musweep"):
        assert read_record(path) is None
    assert not path.exists() and (tmp_path / "point.json.damaged").exists()
    assert str(path) in caplog.text and "checksum" in caplog.text

    path.write_text(text[:40])  # truncated mid-write by a crash of another tool
    assert read_record(path) is None and "not valid JSON" in caplog.text

    path.write_text(json.dumps({"loss": 2.0}))  # written before records had checksums
    assert read_record(path) == {"loss": 2.0}


def folder_state(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "jobs" not in p.parts and p.suffix != ".damaged"
    }


def test_a_damaged_transfer_point_is_redone_and_nothing_else_is(tmp_path):
    cfg = compose_config(
        f"out_root={tmp_path}", "+ladder=gpt_tiny", "stages=[tune,transfer]", *FAST
    )
    first = Pipeline(cfg).run()
    run_dir = tmp_path / "gpt_tiny"
    points = sorted((run_dir / "transfer").glob("*.json"))
    victim = points[len(points) // 2]
    intact = victim.read_bytes()
    victim.write_bytes(intact[: len(intact) // 2])  # truncated
    others = {p: p.read_bytes() for p in points if p != victim}
    again = Pipeline(cfg).run()
    redone, before = read_record(victim), json.loads(intact)
    for key in ("run", "log2_lr", "loss", "flops"):  # the same point, to the last digit
        assert redone[key] == before[key], key
    assert (victim.parent / (victim.name + ".damaged")).exists()
    assert {p: p.read_bytes() for p in others} == others  # the rest untouched
    assert again["transfer"] == first["transfer"]


def test_a_damaged_study_is_one_line_saying_what_to_do(tmp_path):
    run_dir = tmp_path / "gpt_tiny"
    run_dir.mkdir()
    (run_dir / "study.db").write_bytes(b"this is not a database" * 100)
    before = folder_state(run_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "sweep.run", "+ladder=gpt_tiny", f"out_root={tmp_path}", *QUIET],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("error: cannot open the Optuna study at sqlite:///")
    assert "move it aside (mv " in lines[0] and ".damaged) and rerun" in lines[0]
    assert (run_dir / "study.db").read_bytes() == before["study.db"]  # left for the user


def test_a_study_damaged_past_its_header_is_the_same_one_line(tmp_path):
    """SQLite opens a file damaged in its middle and Optuna fails later, inside a stage: the
    whole file is checked when the study is opened, so this too is one line before any job."""
    cfg = compose_config(f"out_root={tmp_path}", "+ladder=gpt_tiny", "stages=[tune]", *FAST)
    Pipeline(cfg).run()
    study = tmp_path / "gpt_tiny" / "study.db"
    data = bytearray(study.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = b"\xab" * 4096
    study.write_bytes(bytes(data))
    proc = subprocess.run(
        [sys.executable, "-m", "sweep.run", "+ladder=gpt_tiny", f"out_root={tmp_path}", *QUIET],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert f"{study} is damaged" in lines[0]
    assert f"(mv {study} {study}.damaged) and rerun" in lines[0]
    assert study.read_bytes() == bytes(data)  # left for the user


def test_a_damaged_checkpoint_a_run_must_resume_from_is_set_aside_and_the_run_redone(
    tmp_path, caplog
):
    """The warm target's result is missing, so its run resumes from its checkpoint, which is
    truncated: the checkpoint is moved aside and named, the run trains again from its start to
    the same losses, and the pipeline goes on."""
    cfg = compose_config(
        f"out_root={tmp_path}", "+ladder=gpt_tiny", "stages=[tune,transfer,target]", *FAST
    )
    first = Pipeline(cfg).run()
    folder = tmp_path / "gpt_tiny" / "target"
    (record,) = folder.glob("warm_*.json")
    checkpoint = record.with_suffix(".ckpt")
    before = json.loads(record.read_text())["result"]["val_loss"]
    record.unlink()
    checkpoint.write_bytes(checkpoint.read_bytes()[:-100])
    with caplog.at_level(logging.WARNING, logger="musweep"):
        again = Pipeline(cfg).run()
    assert f"{checkpoint} fails its checksum" in caplog.text and "starts again" in caplog.text
    assert checkpoint.with_name(checkpoint.name + ".damaged").exists()
    assert json.loads(record.read_text())["result"]["val_loss"] == before
    for key in ("final_val_loss", "flops"):  # the same run again (its throughput aside)
        assert again["target"]["warm"][key] == first["target"]["warm"][key]
