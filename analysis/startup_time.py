"""Benchmark: how long the command takes to answer before any run: `--help`, a tab completion of
a ladder and of a key, and a command line refused at composition; each the median of
`--repeats` fresh processes, with the heavy libraries each one loaded.

    python -m analysis.startup_time --out bench_results/startup_time.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HEAVY = ("torch", "optuna", "submitit", "wandb", "matplotlib")
CASES = {  # name → (arguments, extra environment)
    "--help": (["--help"], {}),
    "TAB after +ladder=": (["-sc", "query=bash"], {"COMP_LINE": "musweep +ladder="}),
    "TAB after a key's start": (
        ["-sc", "query=bash"],
        {"COMP_LINE": "musweep +ladder=gpt_tiny lad"},
    ),
    "a ladder misspelt": (["+ladder=gpt_smal"], {}),
}
PROBE = (  # the command as a user runs it, reporting at exit which heavy libraries it loaded
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: print('LOADED', *[m for m in {heavy!r} if m in sys.modules], "
    "file=sys.stderr))\n"
    "sys.argv = ['musweep', *{argv!r}]\n"
    "runpy.run_module('sweep.run', run_name='__main__')\n"
)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, list[str], str]:
    """Seconds one fresh process takes, the heavy libraries it loaded, and its output."""
    code = PROBE.format(heavy=HEAVY, argv=argv)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ | env
    )
    seconds = time.perf_counter() - start
    loaded = [line for line in proc.stderr.splitlines() if line.startswith("LOADED")]
    return seconds, loaded[-1].split()[1:] if loaded else ["?"], proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="bench_results/startup_time.json")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    print(f"{'case':26s} {'median s':>9s} {'min s':>7s}  heavy libraries loaded")
    for name, (arguments, env) in CASES.items():
        runs = [timed(arguments, env) for _ in range(args.repeats)]
        seconds = [run[0] for run in runs]
        row = {
            "case": name,
            "median_s": statistics.median(seconds),
            "min_s": min(seconds),
            "loaded": runs[-1][1],
        }
        rows.append(row)
        loaded = ", ".join(row["loaded"]) or "none"
        print(f"{name:26s} {row['median_s']:9.2f} {row['min_s']:7.2f}  {loaded}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python -m analysis.startup_time", *(argv or sys.argv[1:])])
    out.write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
