"""The real services some tests need: a SLURM controller and a PostgreSQL server.

Each probe answers "reachable?" and returns the reason when not. It catches only what means the
service is not there (no SLURM commands, a controller that does not answer, a refused or timed
out connection); anything else (a missing database driver, bad credentials, a broken
installation) raises with its own message and fails the test run. A test module calls
`require(...)` from an autouse fixture: without the service its tests are skipped on a
developer's machine, and fail under CI (`CI=true`, as `.ci/run` sets), where a skip would let
the suite pass without testing what it claims to.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

POSTGRES_URL = "postgresql+psycopg://musweep:musweep@127.0.0.1:5432/musweep"
UNREACHABLE = ("Connection refused", "could not connect", "timeout expired", "No route to host")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(reachable: bool, why: str) -> None:
    """Skip (on a developer's machine) or fail (under CI) a test whose service is not there."""
    if reachable:
        return
    if in_ci():
        pytest.fail(f"CI=true and {why}", pytrace=False)
    pytest.skip(why)


def slurm_status() -> tuple[bool, str]:
    """(True, "") when SLURM takes jobs: sbatch exists and sinfo shows a usable node."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return False, "no SLURM installed: run `launchers/slurm_local.sh` as root"
    probe = subprocess.run(
        ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        return False, f"SLURM's controller does not answer: {probe.stderr.strip()}"
    states = probe.stdout.split()
    if not any(state.rstrip("*") in ("idle", "mixed", "allocated") for state in states):
        return False, f"no SLURM node takes jobs (states: {', '.join(states) or 'none'})"
    return True, ""


def postgres_status(url: str = POSTGRES_URL) -> tuple[bool, str]:
    """(True, "") when the server at `url` accepts a connection. A missing driver or an
    authentication error raises: those are faults of the setup, not an absent server."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect():
            return True, ""
    except sqlalchemy.exc.OperationalError as e:
        if any(reason in str(e) for reason in UNREACHABLE):
            return False, f"no PostgreSQL at {url}: run `launchers/postgres_local.sh` ({e.orig})"
        raise
    finally:
        engine.dispose()
