"""Compare two runs' `summary.json`: every value that differs, and every key only one has.

    python -m analysis.compare_summaries runs/a/summary.json runs/b/summary.json

Throughput and hardware figures (tokens/s, MFU, devices, wall times) are left out with
`--results-only`: what remains is what the runs computed, which the same config and seed must
reproduce exactly. Exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

MACHINE_KEYS = ("tokens_per_s", "mfu", "devices", "seconds", "hardware")


def differences(old: Any, new: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, what differs) for every leaf that differs; NaN equals NaN."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}/{key}"
            if key not in new or key not in old:
                out.append((where, "only in the first" if key in old else "only in the second"))
            else:
                out += differences(old[key], new[key], where)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            d
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    both_nan = all(isinstance(v, float) and math.isnan(v) for v in (old, new))
    return [] if old == new or both_nan else [(path, f"{old!r} -> {new!r}")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--results-only", action="store_true", help="leave out machine figures")
    args = parser.parse_args(argv)
    found = differences(json.loads(args.first.read_text()), json.loads(args.second.read_text()))
    if args.results_only:
        found = [(p, d) for p, d in found if not any(f"/{k}" in p for k in MACHINE_KEYS)]
    for path, what in found:
        print(f"{path}: {what}")
    print(f"{len(found)} difference(s)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
