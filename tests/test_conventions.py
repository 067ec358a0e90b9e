"""At home in Hydra, W&B and Optuna: multirun, paths, help, a plan before spending, the driver's
log lines, W&B's own environment variables, and the tuned values handed on."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from rich.console import Console

from sweep.config import compose_config, public
from sweep.edges.console import StageDisplay, stage_line
from sweep.edges.tracking import report_run_id, wandb_settings
from sweep.pipeline import Pipeline

TUNE = ["tune.n_trials=4", "tune.n_startup_trials=2", "tune.widen_trials=0"]
FAST = [*TUNE, "ladder.lr_max_points=3", "ladder.noise_seeds=0", "verify.max_runs=2"]
QUIET = ["launcher=debug", "logger=none"]


def sweep_run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweep.run", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[1])},
    )


def test_multirun_gives_every_job_its_own_complete_run_folder(tmp_path):
    proc = sweep_run("-m", "+ladder=gpt_tiny", "seed=0,1", f"out_root={tmp_path}", *QUIET, *FAST)
    assert proc.returncode == 0, proc.stderr[-2000:]
    folders = sorted(p.parent.name for p in tmp_path.glob("gpt_tiny-multirun/*/summary.json"))
    assert folders == ["seed=0", "seed=1"]  # beside the single run's gpt_tiny/, not inside it
    assert not (tmp_path / "gpt_tiny").exists()
    sweep = tmp_path / "gpt_tiny-multirun"
    summaries = [json.loads((sweep / f / "summary.json").read_text()) for f in folders]
    assert all("verify" in s and "target" in s for s in summaries)  # every stage ran in each
    assert summaries[0]["tune"]["best_params"] != summaries[1]["tune"]["best_params"]
    assert (tmp_path / ".hydra" / "multirun").is_dir()  # Hydra's own files under out_root


def test_paths_stay_put_when_hydra_changes_directory(tmp_path):
    proc = sweep_run(
        "+ladder=gpt_tiny", "hydra.job.chdir=true", "out_root=rel", "stages=[plan]", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "rel" / "gpt_tiny" / "plan.json").exists()
    assert not list((tmp_path / "rel" / ".hydra").glob("*/rel"))


def test_a_refused_config_leaves_no_folder_behind(tmp_path):
    proc = sweep_run("+ladder=gpt_tiny", "ladder.lr_resolution=0", f"out_root={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ladder.lr_resolution")
    assert not list(tmp_path.rglob("*")), "a refused run left files"


@pytest.mark.parametrize(
    ("argument", "line"),
    [
        ("+ladder=gpt_smal", "error: ladder=gpt_smal is not an option; ladder is one of gpt_"),
        ("launcher=slurmm", "error: launcher=slurmm is not an option; launcher is one of debug"),
        ("ladder.widthz=3", "error: ladder.widthz: Key 'widthz' not in 'LadderConfig'"),
        ("ladder.n_layer=two", "error: ladder.n_layer: Value 'two' of type 'str' could not be"),
        ("tune.sampler=tp", "error: tune.sampler: Invalid value 'tp', expected one of [tpe"),
        ("seed=[1", "error: seed=[1: "),
    ],
)
def test_a_command_line_that_does_not_compose_is_one_line(tmp_path, argument, line):
    ladder = [] if argument.startswith("+ladder") else ["+ladder=gpt_tiny"]
    proc = sweep_run(*ladder, argument, f"out_root={tmp_path}")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(line), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not list(tmp_path.rglob("*")), "a refused command line left files"


def test_help_lists_what_a_user_can_pick():
    proc = sweep_run("--help")
    assert proc.returncode == 0
    out = proc.stdout
    assert "ladder:    gpt_cluster, gpt_deep, gpt_medium, gpt_small, gpt_tiny, gpt_wide" in out
    assert "launcher:  debug, local, slurm" in out
    assert "warmstart: cold, function_preserving, rc_sampling, shrink_pad_perturb, stack" in out
    assert "_schema" not in out


HEAVY = ("torch", "optuna", "submitit", "wandb", "matplotlib")  # what a run needs, help does not


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, list[str], str]:
    """Seconds the command takes in a fresh process, the HEAVY libraries loaded when it exits,
    and its output."""
    code = (
        "import atexit, runpy, sys\n"
        f"atexit.register(lambda: print('LOADED', *[m for m in {HEAVY!r} if m in sys.modules], "
        "file=sys.stderr))\n"
        f"sys.argv = ['musweep', *{argv!r}]\n"
        "runpy.run_module('sweep.run', run_name='__main__')\n"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[1])} | env,
    )
    seconds = time.perf_counter() - start
    line = [x for x in proc.stderr.splitlines() if x.startswith("LOADED")][-1]
    return seconds, line.split()[1:], proc.stdout


def test_help_and_tab_completion_load_nothing_a_run_needs(tmp_path):
    _, loaded, out = timed(["--help"], {})
    assert "ladder:    gpt_cluster" in out and loaded == []
    _, loaded, out = timed(["-sc", "query=bash"], {"COMP_LINE": "musweep +ladder="})
    assert "+ladder=gpt_small" in out.split() and loaded == []
    _, loaded, out = timed(["-sc", "query=bash"], {"COMP_LINE": "musweep +ladder=gpt_tiny lad"})
    assert "ladder." in out.split() and loaded == []
    refused = ["+ladder=gpt_tiny", "ladder.lr_resolution=0", f"out_root={tmp_path}"]
    _, loaded, _ = timed(refused, {})
    assert "torch" in loaded  # the probe sees what a run loads: the pipeline refuses it


def test_the_console_script_is_the_same_command():
    script = shutil.which("musweep")
    if script is None:
        pytest.skip("the package is not installed with its scripts")
    proc = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "gpt_small" in proc.stdout


def test_the_plan_counts_what_the_run_then_does(tmp_path):
    overrides = ["+ladder=gpt_tiny", *QUIET, *FAST, "tune.pruner=none"]
    planned = Pipeline(compose_config(f"out_root={tmp_path}", *overrides, "stages=[plan]")).run()
    run_dir = tmp_path / "gpt_tiny"
    assert json.loads((run_dir / "plan.json").read_text()) == json.loads(json.dumps(planned))
    assert not (run_dir / "transfer").exists() and not (run_dir / "target").exists()
    stages = {s["stage"]: s for s in planned["stages"]}
    assert all(s["seconds"] > 0 for name, s in stages.items() if name != "report")
    summary = Pipeline(compose_config(f"out_root={tmp_path}", *overrides)).run()
    cost = summary["cost"]
    assert stages["tune"]["runs"] == summary["tune"]["n_trials"] == 4
    assert stages["tune"]["jobs"] == 1  # one worker
    assert cost["tuning_flops"] <= stages["tune"]["flops"]  # equal unless a trial diverged
    # warm and cold; the source is the transfer check's run, priced there
    assert stages["target"]["runs"] == 2 and stages["target"]["jobs"] == 2
    assert cost["target_flops"] == stages["target"]["flops"]
    axes = stages["axes"]  # the proxy's own rung: the others are past the budget here
    assert "left out: horizon ×2, horizon ×4" in axes["note"]
    assert axes["runs"] <= summary["axes"]["runs"] <= axes["max_runs"]
    assert axes["flops"] <= cost["axes_flops"] <= axes["max_flops"]
    transfer = stages["transfer"]
    assert transfer["runs"] <= summary["transfer"]["runs"] <= transfer["max_runs"]
    assert transfer["flops"] <= cost["transfer_flops"] <= transfer["max_flops"]
    verify = stages["verify"]
    assert verify["runs"] == 2 and verify["runs"] <= summary["verify"]["runs"]
    assert cost["verify_flops"] <= verify["max_flops"]
    # both say what the checks cost in target runs: one target run is the warm one
    one_run = stages["target"]["flops"] / 2
    vs_target = summary["cost_vs_target"]
    assert vs_target["target"] == pytest.approx(2.0)
    assert vs_target["total"] == pytest.approx(sum(cost.values()) / one_run)
    assert vs_target["besides_target"] == pytest.approx(vs_target["total"] - 1)
    total = planned["total"]
    assert total["max_flops_vs_target"] == pytest.approx(total["max_flops"] / one_run)
    assert total["max_besides_target"] == pytest.approx(total["max_flops_vs_target"] - 1)
    assert vs_target["besides_target"] <= total["max_besides_target"]


def test_stage_lines_when_not_on_a_terminal(caplog, monkeypatch):
    console = Console(file=io.StringIO(), force_terminal=False)
    display = StageDisplay(console)
    clock = iter(range(0, 1000, 7))  # every poll seconds later: the time alone makes no line
    monkeypatch.setattr("sweep.edges.console.time.monotonic", lambda: float(next(clock)))
    with caplog.at_level(logging.INFO, logger="musweep"), display:
        task = display.add_task("tune", total=20)
        display.update(task, completed=5, msg="best val loss [nan]")
        display.update(task, completed=5, msg="best val loss [nan]")  # nothing new: no line
        display.update(task, completed=6, msg="best val loss 2.5")
        display.note("a [bold]literal[/] note")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4
    # the first move may be work resumed (5 trials done before): no rate, no ETA yet
    assert lines[1] == "tune 5/20 best val loss [nan] (0:07 elapsed)"
    # then the rate since it: 1 more in 14 s, 14 left
    assert lines[2] == "tune 6/20 best val loss 2.5 (0:21 elapsed, ETA 3:16)"
    assert lines[3] == "a [bold]literal[/] note"
    assert stage_line("target", 150, 600, "warm 150/300", 30.0, eta=90.0) == (
        "target 150/600 warm 150/300 (0:30 elapsed, ETA 1:30)"
    )


def test_the_eta_after_a_resume_counts_only_the_work_done_now(caplog, monkeypatch):
    """A target run resuming at step 5300 of 6000 reports it at once: that jump is not a rate
    (the ETA would read 0:01); the steps after it are."""
    console = Console(file=io.StringIO(), force_terminal=False)
    display = StageDisplay(console)
    clock = iter([0.0, 12.0, 72.0])
    monkeypatch.setattr("sweep.edges.console.time.monotonic", lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="musweep"), display:
        task = display.add_task("target", total=6000)
        display.update(task, completed=5300)
        display.update(task, completed=5400)  # 100 steps a minute: 600 left, 6 minutes
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1] == "target 5300/6000 (0:12 elapsed)"
    assert lines[2] == "target 5400/6000 (1:12 elapsed, ETA 6:00)"


def test_the_terminal_bar_reads_the_same_eta_after_a_resume(monkeypatch):
    """On a terminal the bar's ETA is the plain line's: the resumed jump is no rate there
    either (Rich's own column read it as one and showed 0:00)."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    display = StageDisplay(console)
    now = iter([0.0, 12.0, 72.0, 72.0, 72.0, 72.0])
    monkeypatch.setattr("sweep.edges.console.time.monotonic", lambda: next(now, 72.0))
    task = display.add_task("target", total=6000)
    display.update(task, completed=5300)
    column = display.bars.columns[-1]
    assert str(column.render(display.bars.tasks[task])) == "-:--"  # one move: no rate yet
    display.update(task, completed=5400)  # 100 steps a minute: 600 left, 6 minutes
    assert str(column.render(display.bars.tasks[task])) == "6:00"


def test_wandb_settings_follow_the_config_then_the_environment():
    logger = {"kind": "wandb", "project": None, "entity": None, "mode": None, "dir": None}
    run_dir = Path("/runs/x")
    assert wandb_settings(logger, run_dir, {}) == {
        "project": "musweep",
        "entity": None,
        "mode": "offline",
        "dir": "/runs/x",
    }
    env = {"WANDB_PROJECT": "p", "WANDB_ENTITY": "e", "WANDB_MODE": "online", "WANDB_DIR": "/w"}
    assert wandb_settings(logger, run_dir, env) == {
        "project": "p",
        "entity": "e",
        "mode": "online",
        "dir": "/w",
    }
    assert (
        wandb_settings(logger | {"mode": "offline", "project": "mine"}, run_dir, env)["mode"]
        == "offline"
    )
    assert wandb_settings(logger, run_dir, {"WANDB_MODE": "disabled"}) is None
    assert wandb_settings({"kind": "none"}, run_dir, {}) is None
    with pytest.raises(ValueError, match="WANDB_MODE must be one of"):
        wandb_settings(logger, run_dir, {"WANDB_MODE": "sometimes"})


def test_wandb_mode_disabled_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = compose_config(
        f"out_root={tmp_path}", "+ladder=gpt_tiny", "launcher=debug", "stages=[tune]", *TUNE
    )
    Pipeline(cfg).run()
    assert (tmp_path / "gpt_tiny" / "study.db").exists()
    assert not list(tmp_path.rglob("*.wandb"))


def test_the_report_run_keeps_one_id_per_run_folder(tmp_path):
    a, b = tmp_path / "a" / "gpt_tiny", tmp_path / "b" / "gpt_tiny"
    assert report_run_id(a) == report_run_id(a) != report_run_id(b)
    assert len(report_run_id(tmp_path / ("x" * 200))) <= 64


def test_a_storage_password_never_leaves_the_config():
    url = "postgresql+psycopg://alice:s3cret@db.example/studies"
    cfg = compose_config("+ladder=gpt_tiny", f"tune.storage={url}")
    assert public(cfg)["tune"]["storage"] == "postgresql+psycopg://alice:***@db.example/studies"
    assert "s3cret" not in json.dumps(public(cfg))


def test_a_warning_while_the_stages_run_is_one_line_between_them(caplog):
    console, original = Console(file=io.StringIO(), force_terminal=False), warnings.showwarning
    with caplog.at_level(logging.INFO, logger="musweep"), StageDisplay(console):
        warnings.warn("the reported value is ignored\nsecond line", UserWarning, stacklevel=1)
    assert [r.getMessage() for r in caplog.records] == [
        "warning: UserWarning: the reported value is ignored"
    ]
    assert warnings.showwarning is original  # restored on the way out
