"""The pipeline's configuration, by concern: `schema` (the structured configs and their enums),
`hydra` (registration, composition, help), `records` (plain data for jobs and files),
`hardware` (devices and processes, resolved once), `build` (the core's dataclasses from a config)
`vocabulary` (the corpus's, read once) and `checks` (every field's check and `validate`, before
any job).

The names load with their module on first use (PEP 562), so the command's help and tab
completion, which need only `hydra` and `schema`, never load the checks' torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {  # name → the module it lives in
    "ADDED_SECTIONS": "records",
    "AxesConfig": "schema",
    "Check": "checks",
    "DataSection": "schema",
    "Domain": "checks",
    "EXEMPT": "checks",
    "EXPERIMENT_SCHEMAS": "records",
    "FIELD_CHECKS": "checks",
    "HPARAM_DOMAINS": "checks",
    "HardwareConfig": "schema",
    "HyperParams": "schema",
    "InitKind": "schema",
    "LadderConfig": "schema",
    "LauncherConfig": "schema",
    "LauncherKind": "schema",
    "LoggerConfig": "schema",
    "LoggerKind": "schema",
    "MODEL_HPARAMS": "schema",
    "ModelKind": "schema",
    "ModelSection": "schema",
    "ParamRange": "schema",
    "PipelineConfig": "schema",
    "Pruner": "schema",
    "RUN_STAGES": "schema",
    "SEED": "checks",
    "Sampler": "schema",
    "StageName": "schema",
    "TUNABLE": "schema",
    "TuneConfig": "schema",
    "VerifyCheck": "schema",
    "VerifyConfig": "schema",
    "WANDB_FORBIDDEN": "checks",
    "WandbMode": "schema",
    "WarmstartConfig": "schema",
    "at_least": "checks",
    "available_ladders": "hydra",
    "budgeted": "build",
    "check_hardware": "hardware",
    "check_slurm_present": "hardware",
    "check_steps": "build",
    "check_warmstart": "checks",
    "check_width": "build",
    "choices": "hydra",
    "cold_baseline": "build",
    "compose_config": "hydra",
    "composition_error": "hydra",
    "config_dir": "hydra",
    "cuda_devices": "hardware",
    "data_config": "build",
    "differing_keys": "records",
    "execution": "hardware",
    "experiment": "records",
    "help_text": "hydra",
    "job_config": "records",
    "model_config": "build",
    "model_source": "build",
    "plain": "records",
    "positive": "checks",
    "probe_steps": "build",
    "proxy_setting": "build",
    "public": "records",
    "public_url": "records",
    "register_configs": "hydra",
    "resolve_hardware": "hardware",
    "resolve_vocabulary": "vocabulary",
    "run_config": "build",
    "source_width": "build",
    "sp_widths": "build",
    "target_depth": "build",
    "target_setting": "build",
    "tunable": "build",
    "unused_search": "build",
    "validate": "checks",
    "verify_check": "build",
    "vocab_size": "build",
    "with_defaults": "records",
    "with_vocabulary": "build",
    "within": "checks",
    "world_size": "hardware",
    "writable_folder": "checks",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'sweep.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sweep.config.{_HOMES[name]}"), name)
    globals()[name] = value  # once: later lookups find it directly
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
