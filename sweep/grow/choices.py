"""The growth choices a config names: how the target starts, from which trained model, and how
RC sampling picks source units. Free of torch, so the config schema loads without it."""

from __future__ import annotations

from enum import StrEnum, auto


class Method(StrEnum):
    """How the target starts (`warmstart.method`)."""

    shrink_pad_perturb = auto()
    function_preserving = auto()
    rc_sampling = auto()
    stack = auto()
    cold = auto()


class SourceModel(StrEnum):
    """Which trained model is grown: the widest ladder width, or the proxy itself."""

    widest = auto()
    proxy = auto()


class Sampling(StrEnum):
    """How source units are picked: each N/n times (exact) or i.i.d. (the mean-field draw)."""

    stratified = auto()
    iid = auto()
