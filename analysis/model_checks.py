"""Benchmark: the pre-flight coordinate check (docs/methods.md §10) on models written outside
musweep, sound and broken, as `python -m sweep.run +ladder=LADDER model=custom ...` runs it.

Each case is a factory and its overrides; the table gives the verdict, the worst slope and its
module, and the first words of the fix for a refused model; then GPT-2's `Conv1D` weights as
drawn at width 128 against 1/√fan_in. Hugging Face's models need
`transformers` importable; where it is not, their rows say why.

    python -m analysis.model_checks --out bench_results/model_checks.json
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from sweep.config import compose_config, resolve_vocabulary, validate
from sweep.stages.model_check import check_model

ROOT = Path(__file__).resolve().parent.parent
READOUT = "model.readout=lm_head"
NO_SQRT = "+model.options.sqrt_embedding=false"


def factory(path: str) -> str:
    return f"model.factory={ROOT / path}:build"


CASES: list[tuple[str, list[str]]] = [
    ("built-in GPT", []),
    ("examples/llama.py (mup's parts)", [factory("examples/llama.py")]),
    ("examples/nanogpt.py, readout named", [factory("examples/nanogpt.py"), READOUT]),
    (
        "tutorial TransformerEncoder, embedding × √d",
        [factory("tests/models/tutorial_lm.py"), READOUT],
    ),
    ("tutorial, no √d", [factory("tests/models/tutorial_lm.py"), READOUT, NO_SQRT]),
    (
        "tutorial, no √d, feed-forward fixed at 96, readout unnamed",
        [factory("tests/models/tutorial_lm.py"), NO_SQRT, "+model.options.feedforward=96"],
    ),
    ("HF GPT-2, tied", [factory("examples/hf_gpt2.py"), READOUT]),
    ("HF GPT-2, tied, readout unnamed", [factory("examples/hf_gpt2.py")]),
    ("HF GPT-2, untied", [factory("examples/hf_gpt2.py"), READOUT, "+model.options.tied=false"]),
    ("HF Llama, GQA, eager", [factory("examples/hf_llama.py"), READOUT]),
    (
        "HF Llama, GQA, SDPA",
        [factory("examples/hf_llama.py"), READOUT, "+model.options.attention=sdpa"],
    ),
]


def check(name: str, overrides: list[str], ladder: str) -> dict[str, Any]:
    custom = ["model=custom"] if overrides else []
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        try:
            cfg = compose_config(
                f"+ladder={ladder}", f"out_root={out}", "logger=none", *custom, *overrides
            )
            resolve_vocabulary(cfg)
            validate(cfg)
            record = check_model(cfg, Path(out))
            worst = record["worst"]
            row = {"verdict": "passes", "slope": worst["worst_slope"], "module": worst["module"]}
        except ValueError as e:
            text = str(e)
            saved = Path(out) / "model_check.json"
            worst = json.loads(saved.read_text())["worst"] if saved.exists() else {}
            row = {
                "verdict": "refused",
                "slope": worst.get("worst_slope"),
                "module": worst.get("module"),
                "message": text,
            }
        row["seconds"] = time.perf_counter() - start
    return {"case": name, "overrides": overrides, **row}


def conv1d_stds(width: int = 128) -> dict[str, tuple[float, float]] | None:
    """GPT-2's `Conv1D` weights in the first block as musweep draws them (σ = 1) against
    1/√fan_in; None where transformers does not import."""
    try:
        from transformers import GPT2LMHeadModel  # noqa: F401
    except Exception:
        return None
    from sweep.core import custom as C

    factory = f"{ROOT / 'examples/hf_gpt2.py'}:build"
    cfg = C.CustomConfig(factory=factory, d_model=width, base_d_model=32, seq_len=32)
    torch.manual_seed(0)
    model = C.build_custom(replace(cfg, readout="lm_head"))
    axes = C.fan_in_axes(model)
    return {
        name: (p.std().item(), 1 / math.sqrt(C.fan_in_of(tuple(p.shape), axes[name])))
        for name, p in model.named_parameters()
        if name.startswith("transformer.h.0.") and p.ndim == 2
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", default="gpt_tiny")
    parser.add_argument("--out", type=Path, default=Path("bench_results/model_checks.json"))
    args = parser.parse_args()
    rows = []
    print(f"{'case':62s} {'verdict':8s} {'slope':>6s}  module / fix")
    for name, overrides in CASES:
        row = check(name, overrides, args.ladder)
        rows.append(row)
        slope = "" if row["slope"] is None else f"{row['slope']:.2f}"
        tail = row["module"] or ""
        if "message" in row:
            tail = row["message"].split("); ", 1)[-1][:110]
        print(f"{name:62s} {row['verdict']:8s} {slope:>6s}  {tail}", flush=True)
    stds = conv1d_stds()
    if stds is None:
        print("GPT-2's Conv1D init: transformers does not import here")
    for name, (drawn, rule) in (stds or {}).items():
        print(f"GPT-2 width 128 {name:36s} std {drawn:.4f}  1/sqrt(fan_in) {rule:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"ladder": args.ladder, "rows": rows, "conv1d_stds": stds}
    args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
