"""Hydra: the schemas registered, the config composed from `conf/`, and `--help`."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

from sweep.config.schema import (
    RUN_STAGES,
    DataSection,
    LadderConfig,
    LauncherConfig,
    LoggerConfig,
    ModelSection,
    PipelineConfig,
    TuneConfig,
    WarmstartConfig,
)


def register_configs() -> None:
    OmegaConf.register_new_resolver("musweep_help", help_text, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="pipeline_schema", node=PipelineConfig)
    for group, node in (
        ("ladder", LadderConfig),
        ("model", ModelSection),
        ("data", DataSection),
        ("tune", TuneConfig),
        ("launcher", LauncherConfig),
        ("logger", LoggerConfig),
        ("warmstart", WarmstartConfig),
    ):
        # at the root, not in the group: a schema is no option a user can pick or complete
        cs.store(name=f"{group}_schema", node=node)


def compose_config(*overrides: str) -> DictConfig:
    """The pipeline's config from `conf/` and Hydra overrides, as `python -m sweep.run` composes
    it (for tests and analysis scripts, which call the pipeline without the command line)."""
    register_configs()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def composition_error(overrides: list[str]) -> str:
    """Why the command line's overrides do not compose, in one line ("" when they do): an
    option a group lacks, with the group's options; a key the schema lacks or a value of the
    wrong type, with its full key; a malformed override. Hydra's own report of these is a
    block of lines after the command has started."""
    try:
        compose_config(*overrides)
    except MissingConfigException as e:
        group, _, name = (e.missing_cfg_file or "").rpartition("/")
        if group and e.options:
            return f"{group}={name} is not an option; {group} is one of {', '.join(e.options)}"
        return one_line(e)
    except OverrideParseException as e:
        bad = [o for o in overrides if not parses(o)]
        return f"{bad[0]}: {one_line(e)}" if bad else one_line(e)
    except HydraException as e:
        return one_line(e)
    return ""


def parses(override: str) -> bool:
    try:
        OverridesParser.create().parse_overrides([override])
    except OverrideParseException:
        return False
    return True


def one_line(error: BaseException) -> str:
    """Hydra's message and its cause's (OmegaConf's, which names the full key) in one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = " ".join(line for line in lines if not line.startswith("See https://"))
    cause = error.__cause__
    if cause is not None:
        detail = [line.strip() for line in str(cause).splitlines() if line.strip()]
        keys = [line.split(":", 1)[1].strip() for line in detail if line.startswith("full_key:")]
        text = f"{keys[0]}: {detail[0]}" if keys else f"{text}: {detail[0]}"
    return text


def choices(group: str) -> list[str]:
    """The options of a config group, as `group=option` takes them."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def help_text() -> str:
    """`--help`: what a user can pick, then Hydra's own flags and the composed config."""
    groups = "\n".join(
        f"  {group + ':':<11}{', '.join(choices(group))}"
        for group in sorted(p.name for p in config_dir().iterdir() if p.is_dir())
    )
    return f"""musweep: tune a language model's hyperparameters on a µP proxy with Optuna, check
that they transfer across widths (µP against SP) and at the target, and train the target
warm-started. The model is the built-in GPT or yours (model=custom model.factory=...).

  python -m sweep.run +ladder=NAME [group=option ...] [key=value ...]
  musweep +ladder=NAME ...                      (the same command)
  musweep -m +ladder=NAME seed=0,1              (one run folder per job)
  musweep +ladder=NAME model=custom model.factory=path/to/model.py:build

Config groups (group=option; +ladder= is required):
{groups}
Stages (stages=[...], in this order): {", ".join(RUN_STAGES)}; stages=[plan] prints what
they would run (jobs, FLOPs, time) and stops
Every other key (hardware.*, verify.*, tune.*, launcher.*, out_root, run_name, seed) is
listed below with its value; `--cfg job` prints the composed config alone.

== Flags ==
$FLAGS_HELP
== Config ==
$CONFIG"""


def config_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "conf"


def available_ladders() -> list[str]:
    return choices("ladder")
