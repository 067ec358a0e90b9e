"""`python -m sweep.run +ladder=gpt_small` (or `musweep +ladder=gpt_small`): tune the proxy, check
transfer, warm-start the target.

A thin Hydra entry point: compose and validate the config, run the pipeline, print the summary.
Bad input is one line on stderr and exit status 2, before any job is submitted, and leaves no
folder behind. Paths are taken from where the command was run, whatever `hydra.job.chdir` says;
under `-m` each job gets its own run folder, `out_root/<ladder>-multirun/<its overrides>`, beside
the single run's `out_root/<ladder>`, not inside it.
"""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf, open_dict

from sweep.config import composition_error, config_dir, register_configs

register_configs()


def settle_paths(cfg: DictConfig, hydra_cfg: DictConfig) -> None:
    """Paths against the directory the command ran in; a multirun job's own run folder."""
    with open_dict(cfg):
        cfg.out_root = to_absolute_path(cfg.out_root)
        for section, key in (("data", "path"), ("data", "cache_dir"), ("logger", "dir")):
            if cfg[section].get(key):
                cfg[section][key] = to_absolute_path(cfg[section][key])
        factory = cfg.model.get("factory")
        if factory and factory.rpartition(":")[0].endswith(".py"):  # a file: found from any job
            path, _, name = factory.rpartition(":")
            cfg.model.factory = f"{to_absolute_path(path)}:{name}"
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        if multirun and cfg.run_name is None and not OmegaConf.is_missing(cfg, "ladder"):
            cfg.run_name = f"{cfg.ladder.name}-multirun/{job_folder(hydra_cfg)}"


def job_folder(hydra_cfg: DictConfig) -> str:
    """A multirun job's folder name: the values of the keys the command sweeps (`seed=1`, or
    `seed=1,tune.n_trials=8`), else the job's number."""
    arguments = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
    swept = {
        o.key_or_group
        for o in OverridesParser.create().parse_overrides(arguments)
        if o.is_sweep_override()
    }
    parts = [t for t in hydra_cfg.overrides.task if t.split("=")[0].lstrip("+~") in swept]
    return ",".join(parts) or f"job{hydra_cfg.job.num}"


def remove_log_folder(folder: Path, root: Path) -> None:
    """Hydra's folder of a refused run, and the folders above it up to `root` that it leaves
    empty."""
    shutil.rmtree(folder, ignore_errors=True)
    for parent in [folder.parent, *folder.parent.parents]:
        if not parent.is_relative_to(root.parent) or parent == root.parent:
            break
        try:
            parent.rmdir()  # only when empty
        except OSError:
            break


def prints_only(argv: list[str]) -> bool:
    """Help, completion, --cfg, --info: Hydra prints and runs nothing, writes no log folder."""
    return any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv)


def asked_out_root(argv: list[str]) -> Path | None:
    """The out_root a command line asks for (its last `out_root=`, else the config's default),
    where Hydra will make its log folder before the config is validated; None when Hydra only
    prints (help, completion, a config) or the value is swept or interpolated."""
    if prints_only(argv):
        return None
    given = [a.split("=", 1)[1] for a in argv if a.startswith("out_root=")]
    value = given[-1] if given else str(OmegaConf.load(config_dir() / "config.yaml").out_root)
    if not value or any(c in value for c in ",${}*()[]"):
        return None
    return Path(value.strip("'\"")).expanduser()


def check_out_root(argv: list[str]) -> None:
    """One line and exit status 2 when out_root cannot hold the runs (a file, a folder that
    cannot be made or written to), before Hydra makes its log folder there."""
    out_root = asked_out_root(argv)
    if out_root is None:
        return
    from sweep.config import writable_folder  # the checks load torch: not for help, completion

    try:
        writable_folder("out_root", out_root)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def check_composes(argv: list[str]) -> None:
    """One line and exit status 2 when a single run's command line does not compose (an option
    a group lacks, an unknown key, a value of the wrong type), before Hydra starts; a multirun's
    sweeps are Hydra's to expand and report."""
    if prints_only(argv) or any(a in ("-m", "--multirun") for a in argv):
        return
    if error := composition_error(argv):
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


class Interrupted(BaseException):
    """SIGTERM (a scheduler's, `kill`'s), raised where the driver is, so that it stops its jobs
    on the way out as Ctrl-C's KeyboardInterrupt does."""


def on_sigterm(signum: int, _frame: object) -> None:
    raise Interrupted(signal.Signals(signum).name)


def cli() -> None:
    """The command: its command line composed and out_root checked, then the Hydra app (its
    completion and help included)."""
    check_composes(sys.argv[1:])
    check_out_root(sys.argv[1:])
    signal.signal(signal.SIGTERM, on_sigterm)
    main()


@hydra.main(config_path=str(config_dir()), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    # the pipeline (optuna, submitit, wandb, matplotlib) only for a run: help and tab
    # completion never get here
    from sweep.edges.launch import LaunchError
    from sweep.pipeline import Pipeline, StageError

    hydra_cfg = HydraConfig.get()
    settle_paths(cfg, hydra_cfg)
    pipeline = None
    try:
        pipeline = Pipeline(cfg)
        pipeline.run()
    except (ValueError, StageError, LaunchError) as e:
        if pipeline is None or not pipeline.started:  # refused before any stage: no log folder
            remove_log_folder(Path(hydra_cfg.runtime.output_dir), Path(cfg.out_root) / ".hydra")
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, Interrupted) as e:  # the jobs were stopped on the way out
        name = "SIGINT" if isinstance(e, KeyboardInterrupt) else str(e)
        print(
            f"interrupted ({name}): this run's jobs are stopped; rerun the same command to "
            "resume, nothing finished is lost",
            file=sys.stderr,
        )
        sys.exit(128 + getattr(signal, name, signal.SIGINT))


if __name__ == "__main__":
    cli()
