"""Configs for the tests of models written outside musweep: the examples' factories, a ladder
config resolved as the driver resolves it, and the overrides that make a whole pipeline short."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from sweep.config import compose_config, resolve_vocabulary

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LLAMA = f"{EXAMPLES / 'llama.py'}:build"
NANOGPT = f"{EXAMPLES / 'nanogpt.py'}:build"
HF_GPT2 = f"{EXAMPLES / 'hf_gpt2.py'}:build"
HF_LLAMA = f"{EXAMPLES / 'hf_llama.py'}:build"
TUTORIAL = f"{Path(__file__).resolve().parent / 'models' / 'tutorial_lm.py'}:build"
FAST = [
    "tune.n_trials=3",
    "tune.n_startup_trials=2",
    "tune.widen_trials=0",
    "ladder.lr_max_points=3",
    "ladder.noise_seeds=0",
    "verify.max_runs=2",
]


def check_cfg(tmp_path: Path, *overrides: str) -> DictConfig:
    """A custom model's config on `gpt_tiny`, its vocabulary resolved as the driver resolves it."""
    cfg = compose_config(
        f"out_root={tmp_path}", "+ladder=gpt_tiny", "logger=none", "model=custom", *overrides
    )
    resolve_vocabulary(cfg)
    return cfg
