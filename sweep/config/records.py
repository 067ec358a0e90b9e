"""The config as plain data: what jobs receive, files record and W&B shows (passwords masked),
and experiment records of earlier versions read with the fields added since at their defaults."""

from __future__ import annotations

import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweep.config.schema import (
    DataSection,
    LadderConfig,
    ModelSection,
    PipelineConfig,
    WarmstartConfig,
)


def plain(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain data (choices as their strings): what jobs receive and files record."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def job_config(container: dict[str, Any]) -> DictConfig:
    """What a job trains from: the plain config it received merged back into the schema, so
    its choices are their enums again and a wrong field fails, its vocabulary resolved, and
    read-only, so no job can change what the others see."""
    from sweep.config.vocabulary import resolve_vocabulary  # it builds on this module

    cfg = OmegaConf.merge(OmegaConf.structured(PipelineConfig), container)
    resolve_vocabulary(cfg)  # the driver did; a script handing a job a raw config did not
    OmegaConf.set_readonly(cfg, True)
    return cfg


_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")


def public_url(url: str) -> str:
    """A URL with its password masked (user:***@host)."""
    return _PASSWORD_IN_URL.sub(r"\1***@", url)


def public(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain data with the password of a storage URL masked: what W&B runs, the
    study's attributes and the run folder's `config.yaml` record."""
    container = plain(cfg)
    storage = container["tune"].get("storage")
    if storage:
        container["tune"]["storage"] = public_url(storage)
    return container


EXPERIMENT_SCHEMAS = {
    "ladder": LadderConfig,
    "model": ModelSection,
    "data": DataSection,
    "warmstart": WarmstartConfig,
}


ADDED_SECTIONS = ("model",)  # sections a record of an earlier version may lack: then defaults

# Fields of those sections that say how much to run or how to judge it, not what a run computes
# (each result is kept under its own settings): a run folder may be extended with another
# budget, longer grids, more seeds, more SP widths or the cold baseline, or judged at another
# tolerance, and every result already there is reused
AMOUNTS = {
    "ladder": (
        "budget",
        "sp_widths",
        "lr_span",
        "lr_max_points",
        "transfer_seeds",
        "noise_seeds",
        "resolve_budget",
        "regret_tolerance",
    ),
    "warmstart": ("baseline",),
}


def experiment(sections: dict) -> dict:
    """What a run folder's results depend on: `sections` without the amounts."""
    out = dict(sections)
    for key, names in AMOUNTS.items():
        if isinstance(out.get(key), dict):
            out[key] = {k: v for k, v in out[key].items() if k not in names}
    return out


def differing_keys(stored: Any, current: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two experiment records, in order."""
    if isinstance(stored, dict) and isinstance(current, dict):
        return [
            key
            for name in dict.fromkeys([*stored, *current])
            for key in differing_keys(
                stored.get(name), current.get(name), f"{prefix}{name}." if prefix or name else ""
            )
        ]
    return [] if stored == current else [prefix.rstrip(".")]


def with_defaults(experiment: dict) -> dict:
    """An experiment record (ladder, data, seed, warm start) with every field its schema has
    gained since the record was written set to its default: a run folder of an earlier version
    stays usable as long as nothing its results depend on has changed."""
    out = dict(experiment)
    for key, schema in EXPERIMENT_SCHEMAS.items():
        if key not in out and key in ADDED_SECTIONS:
            out[key] = {}
        if key in out:
            merged = OmegaConf.merge(OmegaConf.structured(schema), out[key])
            out[key] = OmegaConf.to_container(merged, enum_to_str=True)
    return out
