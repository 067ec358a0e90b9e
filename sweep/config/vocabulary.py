"""The corpus's vocabulary, read once in the driver and stored in the config, so that building
a model (`sweep.config.build`) reads no file and every job builds the same one."""

from __future__ import annotations

from omegaconf import DictConfig

from sweep.config.build import data_config
from sweep.core.data import BYTE_VOCAB, load_corpus


def resolve_vocabulary(cfg: DictConfig) -> None:
    """Set a null `model.vocab_size` to the corpus's vocabulary (at least the 256 bytes)."""
    if cfg.model.vocab_size is None:
        cfg.model.vocab_size = max(BYTE_VOCAB, load_corpus(data_config(cfg)).vocab_size)
