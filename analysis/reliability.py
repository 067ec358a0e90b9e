"""Reliability figures for RELIABILITY.md: parallel tuning workers, with and without a SIGKILL.

    python -m analysis.reliability workers --workers 4 --trials 100 [--kill-after 20]

Runs the tune stage of `gpt_tiny` (short trials) with N subprocess workers on one journal-file
study; with `--kill-after K`, SIGKILLs one worker process once K trials are counted. Prints and
writes (JSON) the trials requested, counted, lost, duplicated and failed, and the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import optuna

from sweep.config import compose_config
from sweep.edges.launch import local_worker_pids
from sweep.pipeline import Pipeline
from sweep.stages.tune import COUNTED, open_or_create_study


def kill_one_worker_after(
    study_of, k: int, jobs_folder: Path, done: threading.Event, killed: list[int]
) -> None:
    """SIGKILL one worker once the study counts `k` trials (runs in a thread)."""
    while not done.is_set():
        study = study_of()
        if study is not None and len(study.get_trials(deepcopy=False, states=COUNTED)) >= k:
            pids = local_worker_pids(jobs_folder)
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
        time.sleep(0.2)


def workers_check(root: Path, workers: int, trials: int, kill_after: int | None) -> dict:
    overrides = [
        f"out_root={root}",
        "+ladder=gpt_tiny",
        "stages=[tune]",
        "logger=none",
        f"tune.workers={workers}",
        "tune.storage=journal",
        f"launcher.max_parallel={workers}",
        f"tune.n_trials={trials}",
        "tune.widen_trials=0",
        "ladder.tune_steps=10",
        "ladder.eval_every=5",
    ]
    cfg = compose_config(*overrides)
    run_dir = root / "gpt_tiny"
    done, killed = threading.Event(), []

    def study_of():
        return open_or_create_study(cfg, run_dir) if (run_dir / "study.journal").exists() else None

    killer = None
    if kill_after is not None:
        killer = threading.Thread(
            target=kill_one_worker_after,
            args=(study_of, kill_after, run_dir / "jobs" / "tune", done, killed),
            daemon=True,
        )
        killer.start()
    start = time.perf_counter()
    Pipeline(cfg).run()
    wall = time.perf_counter() - start
    done.set()
    all_trials = open_or_create_study(cfg, run_dir).get_trials(deepcopy=False)
    counted = [t for t in all_trials if t.state in COUNTED]
    params = Counter(tuple(sorted(t.params.items())) for t in counted)
    return {
        "workers": workers,
        "trials_requested": trials,
        "trials_counted": len(counted),
        "trials_lost": max(0, trials - len(counted)),
        "trials_duplicated": sum(n - 1 for n in params.values()),
        "trials_failed": sum(t.state is optuna.trial.TrialState.FAIL for t in all_trials),
        "killed_worker_pids": killed,
        "wall_seconds": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="check", required=True)
    w = sub.add_parser("workers")
    w.add_argument("--workers", type=int, default=4)
    w.add_argument("--trials", type=int, default=100)
    w.add_argument("--kill-after", type=int, default=None)
    w.add_argument("--out", default="bench_results/reliability_workers.json")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        result = workers_check(Path(tmp), args.workers, args.trials, args.kill_after)
    for key, value in result.items():
        print(f"{key:<20} {value}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0 if result["trials_lost"] == 0 and result["trials_duplicated"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
