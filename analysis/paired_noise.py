"""The paired noise band against the unpaired one, on finished runs: how much narrower it is, and
which verdicts it changes.

    python -m analysis.paired_noise runs/gpt_small/summary.json runs/gpt_small_docs/summary.json

For each run: the seed noise σ of one final loss and σ_d of a same-seed difference between
neighbouring LRs, their correlation, the bands built from each, and the transfer and target
verdicts judged again from the same regrets with each band (the run's own verdicts use the
paired one). Prints a table and, with `--json`, writes the figures there.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from sweep.core.metrics import percent, transfer_verdict
from sweep.stages.verify import one_seed_band, regret_status


def judged(summary: dict[str, Any]) -> dict[str, Any]:
    """One run's noise figures, and its verdicts under the paired and the unpaired band."""
    transfer = summary["transfer"]
    noise = transfer["noise"]
    widen = noise["unpaired_band"] / noise["band"] if noise["band"] > 0 else math.nan
    mup, sp = transfer["mup"], transfer["sp"]
    unbracketed = [
        f"{name} width {w}"
        for name, section in (("µP", mup), ("SP", sp))
        for w, closed in section["bracketed"].items()
        if not closed
    ]
    regrets = {p: {int(w): r for w, r in transfer[p]["regret"].items()} for p in ("mup", "sp")}
    bands = {int(w): b for w, b in mup["regret_band"].items()}
    out: dict[str, Any] = {
        "std": noise["std"],
        "paired_std": noise["paired_std"],
        "correlation": noise["correlation"],
        "relative_band": noise["relative_band"],
        "relative_unpaired_band": noise["relative_unpaired_band"],
        "band_ratio": 1 / widen if math.isfinite(widen) else math.nan,
    }
    for name, scale in (("paired", 1.0), ("unpaired", widen)):
        verdict = transfer_verdict(
            regrets["mup"],
            regrets["sp"],
            unbracketed=unbracketed,
            noise={w: b * scale for w, b in bands.items()},
            tolerance=transfer["tolerance"],
        )
        out[f"transfer_{name}"] = str(verdict.status)
        verify = summary.get("verify")
        if verify and verify["bracketed"]:
            band = one_seed_band(noise) * scale
            out[f"verify_{name}"] = str(
                regret_status(verify["regret"], transfer["tolerance"], band)[0]
            )
            out[f"verify_{name}_band"] = band
    out["verdicts_changed"] = sum(
        out.get(f"{check}_paired") != out.get(f"{check}_unpaired")
        for check in ("transfer", "verify")
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("summaries", type=Path, nargs="+")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    rows = {str(path): judged(json.loads(path.read_text())) for path in args.summaries}
    for path, r in rows.items():
        print(path)
        print(
            f"  σ {r['std']:.4f}, σ_d {r['paired_std']:.4f}, ρ {r['correlation']:.2f}; band "
            f"paired ±{percent(r['relative_band'])}, "
            f"unpaired ±{percent(r['relative_unpaired_band'])} "
            f"(paired/unpaired {r['band_ratio']:.2f})"
        )
        for check in ("transfer", "verify"):
            if f"{check}_paired" in r:
                print(
                    f"  {check}: paired {r[f'{check}_paired']}, unpaired {r[f'{check}_unpaired']}"
                )
        print(f"  verdicts changed: {r['verdicts_changed']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
