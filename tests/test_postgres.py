"""Parallel tuning workers on a real PostgreSQL study (`launchers/postgres_local.sh` starts one)."""

import pytest
from hydra import compose, initialize_config_dir

from sweep.config import config_dir, register_configs
from sweep.pipeline import Pipeline

URL = "postgresql://musweep:musweep@127.0.0.1:5432/musweep"


def postgres_is_up() -> bool:
    try:
        import sqlalchemy

        with sqlalchemy.create_engine(URL).connect():
            return True
    except Exception:
        return False


pytestmark = pytest.mark.skipif(
    not postgres_is_up(), reason=f"no PostgreSQL at {URL}: run `launchers/postgres_local.sh`"
)
register_configs()


def test_workers_share_a_postgres_study_with_heartbeats(tmp_path):
    import optuna

    name = f"pg-{tmp_path.name}"  # one study per test run in the shared database
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                f"out_root={tmp_path}",
                "+ladder=gpt_tiny",
                "stages=[tune]",
                "logger=none",
                f"tune.storage={URL}",
                f"tune.study_name={name}",
                "tune.workers=2",
                "launcher.max_parallel=2",
                "tune.n_trials=6",
                "tune.n_startup_trials=2",
                "ladder.tune_steps=10",
            ],
        )
    summary = Pipeline(cfg).run()
    assert summary["tune"]["n_trials"] == 6
    trials = optuna.load_study(study_name=name, storage=URL).trials
    assert len({t.number for t in trials}) == len(trials)
    assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) == 6
    assert len({tuple(sorted(t.params.items())) for t in trials}) == len(trials)
    optuna.delete_study(study_name=name, storage=URL)
