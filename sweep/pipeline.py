"""The driver: runs the chosen stages in order, each resumable from what is already on disk.

Run folder (`out_root/run_name`): `study.db` (the Optuna study), `transfer/<run>.json` (one per
transfer run), `target/{warm,cold}.json` and checkpoints, `verify/<run>.json`, `jobs/` (Submitit
logs), `wandb/`, `report/`, and `summary.json`, rebuilt from those files at the end of every
invocation (`sweep.summary`).
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from sweep.config import (
    LauncherKind,
    StageName,
    check_slurm_present,
    cuda_devices,
    differing_keys,
    execution,
    experiment,
    model_source,
    plain,
    public,
    public_url,
    resolve_hardware,
    resolve_vocabulary,
    unused_search,
    validate,
    with_defaults,
)
from sweep.core.atomic import write_atomic
from sweep.edges.console import StageDisplay, print_budget, print_plan, print_summary
from sweep.edges.launch import cancel_leftover_jobs, run_jobs
from sweep.edges.throughput import plan_throughput
from sweep.edges.tracking import wandb_settings
from sweep.stages.budget import apply_budget
from sweep.stages.handoff import tuned_record, tuned_yaml
from sweep.stages.model_check import check_model, check_widths, layout_warning
from sweep.stages.plan import plan, plan_record
from sweep.stages.registry import STAGES
from sweep.stages.stage import Context, Stage, StageError, target_run_flops
from sweep.stages.tune import check_study_file, open_or_create_study, storage_url, study_name
from sweep.summary import build_summary

# what the results on disk depend on
EXPERIMENT_KEYS = ("ladder", "model", "data", "seed", "warmstart")
__all__ = ["Pipeline", "StageError"]


def run_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.out_root) / (cfg.run_name or cfg.ladder.name)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=1, default=float).encode())


def changed_keys(stored: dict | None, current: dict, most: int = 3) -> str:
    """What differs between a run folder's experiment and this one, in words: the keys that
    change what is trained, each with its value there and here."""
    if stored is None:
        return "its experiment.yaml is unreadable"

    def at(record: dict, key: str) -> object:
        for part in key.split("."):
            record = record.get(part) if isinstance(record, dict) else None
        return record

    keys = differing_keys(stored, current)
    parts = [f"{k} is {at(stored, k)!r} there, {at(current, k)!r} here" for k in keys[:most]]
    more = f" and {len(keys) - most} more" if len(keys) > most else ""
    return "; ".join(parts) + more


class Pipeline:
    """Runs the stages of `registry` that the config lists, in its order (`names` instead of
    the config's list, for a stage registered beside the built-in ones)."""

    def __init__(
        self,
        cfg: DictConfig,
        console: Console | None = None,
        registry: Mapping[str, Stage] = STAGES,
        names: Sequence[str] | None = None,
    ):
        validate(cfg)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line a trial: the bars say it
        self.names = [str(n) for n in (cfg.stages if names is None else names)]
        self.planning = StageName.plan in self.names  # a plan starts nothing: any machine will do
        if not self.planning:
            check_slurm_present(cfg)
        # the experiment as asked for: what the run folder's results are compared by (a value
        # resolved below, such as the vocabulary, follows from it)
        self.asked = plain(cfg)
        self.cfg = copy.deepcopy(cfg)
        resolve_hardware(self.cfg, cuda_devices())  # every job trains on what is decided here
        resolve_vocabulary(self.cfg)  # read once: building a model reads no file
        self.budget = apply_budget(self.cfg)  # what the checks may spend; refused if they cannot
        self.run_dir = run_dir_of(cfg)
        wandb_settings(self.cfg.logger, self.run_dir)  # a WANDB_MODE it cannot use: one line
        self.console = console or Console()
        self.container = plain(self.cfg)
        self.progress = StageDisplay(self.console)
        self.started = False  # a stage has begun (before that, a failure is a refusal)
        self.registry = registry

    def run(self) -> dict[str, Any]:
        fresh = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._check_writable()
            self._check_same_experiment()
            if self.planning:
                return self.plan()
            self._check_model()
            self.study()  # an unreachable tune.storage fails here, before any job
        except BaseException:
            if fresh:  # a refusal leaves no folder behind to block the corrected command
                shutil.rmtree(self.run_dir, ignore_errors=True)
            raise
        if self.cfg.launcher.kind == LauncherKind.slurm:
            cancelled = cancel_leftover_jobs(self.run_dir / "jobs")
            if cancelled:
                self.console.print(
                    f"cancelled {cancelled} SLURM job(s) left by an earlier driver of this run; "
                    "their work resumes from what they saved"
                )
        ctx = self.context()
        stages = [self.registry[name] for name in ctx.planned]
        if self.budget is not None:
            print_budget(self.console, self.budget)
        with self.progress:
            for stage in stages:
                self.started = True
                stage.run(self.context(), self)
        summary = self.summary()
        self.write_summary(summary)
        if (ctx := self.context()).tuned is not None:
            record = tuned_record(self.cfg, ctx.applied)
            write_atomic(self.run_dir / "tuned.yaml", tuned_yaml(record).encode())
        print_summary(self.console, summary, self.run_dir)
        for line in self.where_lines():
            self.console.print(line, markup=False, soft_wrap=True)
        return summary

    def where_lines(self) -> list[str]:
        """Where the rest of the results are: the values handed on, the study, the W&B runs."""
        lines = []
        if (tuned := self.run_dir / "tuned.yaml").exists():
            lines.append(f"tuned    {tuned}  (its format: docs/tuned.md)")
        url = public_url(storage_url(self.cfg, self.run_dir))
        if url == "journal":
            url = str(self.run_dir / "study.journal")
        lines.append(f"study    {url}  (optuna-dashboard {url})")
        settings = wandb_settings(self.container["logger"], self.run_dir)
        if settings is not None and settings["mode"] == "offline":
            runs = Path(settings["dir"]) / "wandb"
            lines.append(f"wandb    {runs}  (offline; to upload: wandb sync {runs}/offline-run-*)")
        elif settings is not None:
            where = "/".join(filter(None, (settings["entity"], settings["project"])))
            lines.append(f"wandb    project {where} (online)")
        return lines

    def plan(self) -> dict[str, Any]:
        """What the stages would run, priced from FLOPs and a throughput (`plan_throughput`):
        no job, no model check, no SLURM needed."""
        ctx = self.context(planning=True)  # an unreachable tune.storage fails here
        throughput = plan_throughput(self.cfg, self.run_dir, execution(self.cfg))
        stages = plan([self.registry[name] for name in ctx.planned], ctx, throughput.step_seconds)
        record = plan_record(
            stages, self.run_dir, target_run_flops(self.cfg), throughput, self.budget
        )
        write_json(self.run_dir / "plan.json", record)
        print_plan(self.console, record)
        return record

    def _check_writable(self) -> None:
        probe = self.run_dir / ".write-test"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as e:
            raise StageError(f"the run folder {self.run_dir} is not writable: {e}") from e

    def _check_model(self) -> None:
        """The model's µP, judged by a coordinate check before any job (`stages.model_check`)."""
        worst = check_model(self.cfg, self.run_dir)["worst"]
        self.console.print(
            f"model check: µP holds over widths {check_widths(self.cfg)} (largest slope "
            f"{worst['worst_slope']:.2f}, {worst['module']}; refused above {worst['threshold']})"
        )
        if warning := layout_warning(self.cfg):
            self.console.print(warning, markup=False)
        unused = unused_search(self.cfg)
        if unused:
            self.console.print(
                f"the search leaves out {', '.join(unused)}: the model does not take "
                f"{'it' if len(unused) == 1 else 'them'} (docs/methods.md §10)"
            )

    def _check_same_experiment(self) -> None:
        """Refuse to mix results: a run folder holds one ladder, data, seed and warm start.

        Stages, launcher, logger, the number of trials, the budget, the grids' and seeds' sizes
        and the tolerance may change between invocations (that is how a run is resumed, extended
        or judged again); what the stored results depend on may not, and the refusal names it.
        """
        saved = self.run_dir / "experiment.yaml"
        current = experiment({k: self.asked[k] for k in EXPERIMENT_KEYS})
        if source := model_source(self.cfg):  # a custom model's code, not only its name
            current["model_source"] = source
        if not saved.exists():
            write_atomic(saved, OmegaConf.to_yaml(current).encode())
            (self.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(public(self.cfg)))
            return
        try:
            stored = experiment(with_defaults(OmegaConf.to_container(OmegaConf.load(saved))))
        except Exception:  # a field this version no longer has, or an unreadable file
            stored = None
        if stored != current:
            source = "model_source"
            edited = stored is not None and {**stored, source: None} == {**current, source: None}
            what = (
                f"results of the model {self.cfg.model.factory} before its source file changed"
                if edited
                else f"results of a different experiment ({changed_keys(stored, current)}; "
                f"see {saved})"
            )
            raise StageError(
                f"{self.run_dir} holds {what}; choose another run_name or out_root, or delete "
                "that folder"
            )

    def launch(
        self, name: str, fn, specs: list[dict], on_result, on_poll=None, parallel=False
    ) -> None:
        """Submit the stage's jobs; `parallel` ones are data-parallel over the launcher's
        nodes and tasks (the target-size runs), the others take one device each."""
        run_jobs(
            self.container["launcher"],
            self.run_dir / "jobs" / name,
            fn,
            specs,
            on_result,
            name=f"musweep-{name}",
            on_poll=on_poll,
            parallel=parallel,
        )

    def study(self) -> optuna.Study:
        try:
            check_study_file(self.cfg, self.run_dir)
            return open_or_create_study(self.cfg, self.run_dir)
        except Exception as e:  # an unreachable server, bad credentials, a damaged file
            where = public_url(storage_url(self.cfg, self.run_dir))
            cause = (str(e).strip().splitlines() or [type(e).__name__])[0]
            path = self.run_dir / "study.db"
            aside = f" (mv {path} {path}.damaged)" if self.cfg.tune.storage is None else ""
            raise StageError(
                f"cannot open the Optuna study at {where}: {cause}. If it is damaged, move it "
                f"aside{aside} and rerun: tuning starts again, and the values tuned so far stay "
                f"in {self.run_dir / 'tuned.yaml'} and summary.json"
            ) from e

    def context(self, planning: bool = False) -> Context:
        """What a stage reads, as it is now (the study as the stages before left it). A plan
        in a folder with no study yet reads an empty one in memory: it has no trials to read,
        and a plan writes no study."""
        planned = tuple(name for name in self.names if name != StageName.plan)
        local = self.cfg.tune.storage in (None, "journal")  # files in the run folder
        stored = any((self.run_dir / f).exists() for f in ("study.db", "study.journal"))
        if planning and local and not stored:
            study = optuna.create_study(study_name=study_name(self.cfg), direction="minimize")
        else:
            study = self.study()
        return Context(self.cfg, self.run_dir, study, planned or tuple(self.registry), self.summary)

    def report_errors(self):
        """One line per failed job (which, why, where its trace is); the stage carries on."""

        def on_result(_spec: dict, _result: Any, error: BaseException | None) -> None:
            if error is not None:
                self.progress.note(str(error))

        return on_result

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.run_dir / "summary.json", summary)

    def summary(self) -> dict[str, Any]:
        return build_summary(self.cfg, self.run_dir, self.study(), self.registry, self.budget)
