"""The corpus's vocabulary, read once in the driver and stored in the config, so that building
a model (`sweep.config.build`) reads no file and every job builds the same one."""

from __future__ import annotations

import copy

from omegaconf import DictConfig, OmegaConf

from sweep.config.build import data_config
from sweep.core.data import BYTE_VOCAB, load_corpus


def resolve_vocabulary(cfg: DictConfig) -> None:
    """Set a null `model.vocab_size` to the corpus's vocabulary (at least the 256 bytes)."""
    if cfg.model.vocab_size is None:
        cfg.model.vocab_size = max(BYTE_VOCAB, load_corpus(data_config(cfg)).vocab_size)


def with_vocabulary(cfg: DictConfig, placeholder: int = BYTE_VOCAB) -> DictConfig:
    """`cfg` itself when its vocabulary is resolved, else a copy with `placeholder` in its place:
    what the checks build their shapes from before the corpus is read (no shape depends on the
    vocabulary's size)."""
    if cfg.model.vocab_size is not None:
        return cfg
    out = copy.deepcopy(cfg)
    OmegaConf.set_readonly(out, False)
    out.model.vocab_size = placeholder
    return out
