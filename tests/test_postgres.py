"""Parallel tuning workers on a real PostgreSQL study (`launchers/postgres_local.sh` starts one)."""

import pytest
from services import POSTGRES_URL as URL
from services import postgres_status, require

from sweep.config import compose_config, resolve_vocabulary
from sweep.pipeline import Pipeline

STATUS = postgres_status(URL)


@pytest.fixture(autouse=True)
def postgres():
    require(*STATUS)


def test_workers_share_a_postgres_study_with_heartbeats(tmp_path):
    import optuna

    name = f"pg-{tmp_path.name}"  # one study per test run in the shared database
    cfg = compose_config(
        f"out_root={tmp_path}",
        "+ladder=gpt_tiny",
        "stages=[tune]",
        "logger=none",
        f"tune.storage={URL}",
        f"tune.study_name={name}",
        "tune.workers=2",
        "launcher.max_parallel=2",
        "tune.n_trials=6",
        "tune.widen_trials=0",
        "tune.n_startup_trials=2",
        "ladder.tune_steps=10",
    )
    summary = Pipeline(cfg).run()
    assert summary["tune"]["n_trials"] == 6
    trials = optuna.load_study(study_name=name, storage=URL).trials
    assert len({t.number for t in trials}) == len(trials)
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 6
    assert len({tuple(sorted(t.params.items())) for t in trials}) == len(trials)
    optuna.delete_study(study_name=name, storage=URL)


def test_a_killed_worker_goes_stale_and_its_trial_resumes_from_the_checkpoint(tmp_path):
    """SIGKILL a worker mid-trial: it stops beating, and the next worker to start a trial fails
    the stale one through Optuna's heartbeat check, takes its retry and continues from the
    checkpoint to an uninterrupted run's value."""
    import json
    import subprocess
    import sys
    import time

    import optuna

    from sweep.config import data_config, plain, run_config
    from sweep.core.checkpoint import load_checkpoint
    from sweep.core.data import load_corpus
    from sweep.core.train import train
    from sweep.stages.tune import open_or_create_study, tune_worker

    name = f"pg-stale-{tmp_path.name}"
    cfg = compose_config(
        f"out_root={tmp_path}",
        "+ladder=gpt_tiny",
        "logger=none",
        f"tune.storage={URL}",
        f"tune.study_name={name}",
        "tune.heartbeat_s=1",
        "tune.grace_s=3",
        "tune.pruner=none",
        "ladder.tune_steps=200",
        "ladder.eval_every=10",
    )
    run_dir = tmp_path / "gpt_tiny"
    container = plain(cfg)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"cfg": container, "run_dir": str(run_dir), "quota": 1}))
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(spec)], stdout=subprocess.DEVNULL)
    ckpt, step = run_dir / "trials" / "0.ckpt", 0
    deadline = time.time() + 120
    while step < 20 and time.time() < deadline and worker.poll() is None:
        try:
            step = load_checkpoint(ckpt)["step"]
        except Exception:
            time.sleep(0.05)
    worker.kill()
    worker.wait()
    assert step >= 20, "the worker never checkpointed its trial"
    time.sleep(cfg.tune.grace_s + 2 * cfg.tune.heartbeat_s)  # its heartbeat goes stale

    tune_worker({"cfg": container, "run_dir": str(run_dir), "quota": 1, "tag": "second"})
    first, retry = open_or_create_study(cfg, run_dir).get_trials(deepcopy=False)
    assert first.state is optuna.trial.TrialState.FAIL  # failed by the heartbeat check
    assert retry.state is optuna.trial.TrialState.COMPLETE
    assert retry.user_attrs["worker"] == "second"
    assert retry.user_attrs["lineage"] == 0 and retry.user_attrs["resumed_from"] >= 20
    hparams = dict(cfg.ladder.hparams) | retry.params
    resolve_vocabulary(cfg)
    run = run_config(cfg, cfg.ladder.widths[0], "mup", hparams, cfg.ladder.tune_steps, cfg.seed)
    reference, _ = train(run, load_corpus(data_config(cfg)))
    assert retry.value == reference.final_val_loss
    optuna.delete_study(study_name=name, storage=URL)


WORKER = (
    "import json, sys\n"
    "from sweep.stages.tune import tune_worker\n"
    "tune_worker(json.load(open(sys.argv[1])))"
)
