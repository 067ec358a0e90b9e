"""The driver: runs the chosen stages in order, each resumable from what is already on disk.

Run folder (`out_root/run_name`): `study.db` (the Optuna study), `transfer/<run>.json` (one per
transfer run), `target/{warm,cold}.json` and checkpoints, `verify/<run>.json`, `jobs/` (Submitit
logs), `wandb/`, `report/`, and `summary.json`, rebuilt from those files at the end of every
invocation (`sweep.summary`).
"""

from __future__ import annotations

import copy
import json
import math
import time
import uuid
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from sweep.config import (
    LauncherKind,
    Stage,
    check_slurm_present,
    cuda_devices,
    model_source,
    plain,
    public,
    public_url,
    resolve_hardware,
    unused_search,
    validate,
    with_defaults,
)
from sweep.core.atomic import write_atomic
from sweep.core.records import read_record, write_record
from sweep.edges.console import StageDisplay, print_plan, print_summary
from sweep.edges.launch import cancel_leftover_jobs, run_jobs
from sweep.edges.report import write_report
from sweep.edges.tracking import latest_steps, log_report, wandb_settings
from sweep.stages import axes
from sweep.stages.handoff import tuned_record, tuned_yaml
from sweep.stages.model_check import check_model, check_widths
from sweep.stages.plan import measured_step_seconds, plan, plan_record
from sweep.stages.report import measured_coord_checks
from sweep.stages.target import target_job, target_specs
from sweep.stages.transfer import job_specs, next_runs, read_results, transfer_job
from sweep.stages.tune import (
    COUNTED,
    open_or_create_study,
    retry_running_trials,
    storage_url,
    trial_budget,
    tune_worker,
    tuned_hparams,
    widen_at_bounds,
)
from sweep.stages.verify import (
    final_loss,
    next_steps,
    read_curve,
    verify_job,
    verify_specs,
)
from sweep.summary import build_summary

# what the results on disk depend on
EXPERIMENT_KEYS = ("ladder", "model", "data", "seed", "warmstart")
TUNE_ROUNDS = 3


class StageError(RuntimeError):
    """A stage that cannot run (e.g. its inputs are missing); its message says what to do."""


def run_dir_of(cfg: DictConfig) -> Path:
    return Path(cfg.out_root) / (cfg.run_name or cfg.ladder.name)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=1, default=float).encode())


class Pipeline:
    def __init__(self, cfg: DictConfig, console: Console | None = None):
        validate(cfg)
        check_slurm_present(cfg)
        self.cfg = copy.deepcopy(cfg)
        resolve_hardware(self.cfg, cuda_devices())  # every job trains on what is decided here
        self.run_dir = run_dir_of(cfg)
        wandb_settings(self.cfg.logger, self.run_dir)  # a WANDB_MODE it cannot use: one line
        self.console = console or Console()
        self.container = plain(self.cfg)
        self.progress = StageDisplay(self.console)
        self.started = False  # a stage has begun (before that, a failure is a refusal)

    def run(self) -> dict[str, Any]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._check_writable()
        self._check_same_experiment()
        self._check_model()
        self.study()  # an unreachable tune.storage fails here, before any job
        if self.cfg.launcher.kind == LauncherKind.slurm:
            cancelled = cancel_leftover_jobs(self.run_dir / "jobs")
            if cancelled:
                self.console.print(
                    f"cancelled {cancelled} SLURM job(s) left by an earlier driver of this run; "
                    "their work resumes from what they saved"
                )
        if Stage.plan in self.cfg.stages:
            record = plan_record(
                plan(self.cfg, self.run_dir, self.study(), measured_step_seconds(self.cfg)),
                self.run_dir,
            )
            write_json(self.run_dir / "plan.json", record)
            print_plan(self.console, record)
            return record
        with self.progress:
            for stage in self.cfg.stages:
                self.started = True
                getattr(self, f"stage_{stage}")()
        summary = self.summary()
        write_json(self.run_dir / "summary.json", summary)
        if summary.get("tune", {}).get("best_params"):
            record = tuned_record(self.cfg, self.tuned())
            write_atomic(self.run_dir / "tuned.yaml", tuned_yaml(record).encode())
        print_summary(self.console, summary, self.run_dir)
        url = public_url(storage_url(self.cfg, self.run_dir))
        if url == "journal":
            url = str(self.run_dir / "study.journal")
        self.console.print(
            f"study    {url}  (optuna-dashboard {url})", markup=False, soft_wrap=True
        )
        return summary

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
        unused = unused_search(self.cfg)
        if unused:
            self.console.print(
                f"the search leaves out {', '.join(unused)}: the model does not take "
                f"{'it' if len(unused) == 1 else 'them'} (docs/methods.md §10)"
            )

    def _check_same_experiment(self) -> None:
        """Refuse to mix results: a run folder holds one ladder, data, seed and warm start.

        Stages, launcher, logger and the number of trials may change between invocations
        (that is how a run is resumed or extended); what the stored results depend on may not.
        """
        saved = self.run_dir / "experiment.yaml"
        current = {k: self.container[k] for k in EXPERIMENT_KEYS}
        if source := model_source(self.cfg):  # a custom model's code, not only its name
            current["model_source"] = source
        if not saved.exists():
            write_atomic(saved, OmegaConf.to_yaml(current).encode())
            (self.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(public(self.cfg)))
            return
        try:
            stored = with_defaults(OmegaConf.to_container(OmegaConf.load(saved)))
        except Exception:  # a field this version no longer has, or an unreadable file
            stored = None
        if stored != current:
            source = "model_source"
            edited = stored is not None and {**stored, source: None} == {**current, source: None}
            what = (
                f"results of the model {self.cfg.model.factory} before its source file changed"
                if edited
                else f"results of a different experiment (see {saved})"
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

    # --- stages ------------------------------------------------------------------------------
    def study(self) -> optuna.Study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            return open_or_create_study(self.cfg, self.run_dir)
        except Exception as e:  # an unreachable server, bad credentials, a damaged file
            where = public_url(storage_url(self.cfg, self.run_dir))
            cause = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise StageError(
                f"cannot open the Optuna study at {where}: {cause}. If it is damaged, move it "
                "aside and rerun: tuning starts again, and the values tuned so far stay in "
                f"{self.run_dir / 'tuned.yaml'} and summary.json"
            ) from e

    def stage_tune(self) -> None:
        """The study's trials, then, while a tuned value sits at a bound of its range, that range
        widened and `tune.widen_trials` more trials (once per bound)."""
        study = self.study()
        retry_running_trials(study)
        task = self.progress.add_task("tune", total=trial_budget(self.cfg, study), msg="")

        def poll() -> None:
            trials = study.get_trials(deepcopy=False, states=COUNTED)
            best = min((t.value for t in trials if t.value is not None), default=math.nan)
            self.progress.update(task, completed=len(trials), msg=f"best val loss {best:.4f}")

        poll()
        self._tune_until(study, trial_budget(self.cfg, study), poll)
        while widened := widen_at_bounds(self.cfg, study):
            self.progress.update(task, total=trial_budget(self.cfg, study))
            self.progress.note(
                f"tuned values at a bound of their range: {', '.join(widened)}; the range is "
                f"widened and {self.cfg.tune.widen_trials} more trials search it"
            )
            self._tune_until(study, trial_budget(self.cfg, study), poll)

    def _tune_until(self, study: optuna.Study, total: int, poll) -> None:
        """Workers on the study until it counts `total` trials; a round whose workers died short
        of it is redone."""
        workers = self.cfg.tune.workers
        invocation = uuid.uuid4().hex[:8]  # tags this driver's workers apart from earlier ones
        for round_ in range(TUNE_ROUNDS):
            remaining = total - len(study.get_trials(deepcopy=False, states=COUNTED))
            if remaining <= 0:
                break
            # quotas that add up to exactly what is owed, so parallel workers cannot overshoot
            quotas = [remaining // workers + (i < remaining % workers) for i in range(workers)]
            specs = [
                {
                    "cfg": self.container,
                    "run_dir": str(self.run_dir),
                    "quota": quota,
                    "worker": round_ * workers + i,
                    "tag": f"{invocation}-{round_}-{i}",
                }
                for i, quota in enumerate(quotas)
                if quota > 0
            ]
            self.launch("tune", tune_worker, specs, self._report_errors(), on_poll=poll)
            retry_running_trials(study)  # every worker has ended: a RUNNING trial is an orphan
        poll()
        counted = len(study.get_trials(deepcopy=False, states=COUNTED))
        if counted < total:
            raise StageError(
                f"tune reached {counted} of {total} trials after {TUNE_ROUNDS} "
                f"rounds of workers; see {self.run_dir / 'jobs' / 'tune'}"
            )

    def tuned(self) -> dict[str, float]:
        study = self.study()
        if not any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
            raise StageError("no completed tuning trial in the study: run the tune stage first")
        return tuned_hparams(self.cfg, study)

    def stage_transfer(self) -> None:
        """Rounds of runs until every series is bracketed (or at its budget) and measured for
        noise; each round's runs depend on the results of the ones before."""
        tuned = self.tuned()
        self._grid_rounds(
            "transfer",
            lambda: read_results(self.run_dir / "transfer", tuned),
            lambda done: next_runs(self.cfg, done),
            lambda todo, n: job_specs(self.cfg, self.run_dir, tuned, todo, n),
            transfer_job,
            self.cfg.ladder.lr_max_points + 3,  # each round adds a point or ends
        )

    def stage_axes(self) -> None:
        """The checks beside width at the proxy: rounds of runs until every rung's LR optimum,
        then its weight-decay optimum, is bracketed (or at its budget)."""
        tuned = self.tuned()
        if not any(axes.rungs(self.cfg, axis) for axis in axes.AXES):
            task = self.progress.add_task("axes", total=None, msg="")
            self.progress.update(task, msg="skipped: no axis asked (axes.horizon, axes.batch)")
            return
        self._grid_rounds(
            "axes",
            lambda: axes.read_results(self.run_dir / "axes", tuned),
            lambda done: axes.next_runs(self.cfg, tuned, done),
            lambda todo, n: job_specs(self.cfg, self.run_dir, tuned, todo, n),
            axes.axes_job,
            2 * (self.cfg.ladder.lr_max_points + 3),  # the LR grids, then the λ grids
        )

    def _grid_rounds(self, name: str, read, next_of, specs_of, job, max_rounds: int) -> None:
        """Rounds of a grid check's jobs: what is still owed, given the results so far, until
        nothing is; a run that fails is retried by the next invocation."""
        task = self.progress.add_task(name, total=None, msg="")

        def poll() -> None:
            done = read()
            self.progress.update(task, completed=len(done), msg=f"{len(done)} runs")

        todo: list = []
        for _ in range(max_rounds):
            todo = next_of(read())
            if not todo:
                break
            self.progress.update(task, total=len(read()) + len(todo))
            local = self.cfg.launcher.kind == LauncherKind.local
            n_jobs = self.cfg.launcher.max_parallel if local else len(todo)
            self.launch(name, job, specs_of(todo, n_jobs), self._report_errors(), poll)
        poll()
        if todo:
            raise StageError(
                f"{len(todo)} {name} runs failed (see {self.run_dir / 'jobs' / name}); "
                "rerun the same command to retry them"
            )

    def stage_target(self) -> None:
        """The warm and cold runs; the bar counts their training steps, read from the jobs'
        logs as they train."""
        folder = self.run_dir / "target"
        specs = target_specs(self.cfg, self.run_dir, self.tuned())
        todo = [s for s in specs if read_record(folder / f"{s['kind']}.json") is None]
        steps = self.cfg.ladder.target_steps
        finished = {s["kind"] for s in specs} - {s["kind"] for s in todo}
        task = self.progress.add_task(
            "target",
            total=len(specs) * steps,
            completed=len(finished) * steps,
            msg="warm + cold" if todo else "",
        )
        started, losses = time.time(), {}

        def poll() -> None:
            done = {kind: steps for kind in finished}
            for log in (self.run_dir / "jobs" / "target").glob("*_0_log.out"):
                if log.stat().st_mtime >= started:  # this invocation's jobs
                    for name, (step, _) in latest_steps(log.read_text(errors="replace")).items():
                        if name.startswith("target-"):  # not the source's or a stage's lines
                            done.setdefault(name.removeprefix("target-"), step)
            parts = [
                f"{kind} val loss {losses[kind]:.4f}"
                if kind in losses
                else f"{kind} {step}/{steps}"
                for kind, step in sorted(done.items())
            ]
            self.progress.update(task, completed=sum(done.values()), msg=", ".join(parts))

        def on_result(spec: dict, result: dict | None, error: BaseException | None) -> None:
            if error is not None:
                raise StageError(f"target run {spec['kind']}: {error}") from error
            write_record(folder / f"{spec['kind']}.json", result)
            finished.add(spec["kind"])
            losses[spec["kind"]] = result["result"]["val_loss"][-1][1]
            poll()

        self.launch("target", target_job, todo, on_result, on_poll=poll, parallel=True)

    def stage_verify(self) -> None:
        """The cold target at the tuned LR's neighbours, in rounds until the optimum is
        bracketed or `verify.max_runs` is spent."""
        tuned, max_runs = self.tuned(), self.cfg.verify.max_runs
        task = self.progress.add_task("verify", total=None, msg="")
        if max_runs < 2:
            self.progress.update(task, msg="skipped: verify.max_runs < 2 cannot bracket")
            return
        for _ in range(max_runs + 1):
            records = read_curve(self.run_dir, tuned)
            curve = {k: final_loss(r) for k, r in records.items()}
            self.progress.update(task, completed=len(curve), msg=f"{len(curve)} target runs")
            steps = next_steps(curve, max_runs)
            if not steps:
                return
            self.progress.update(task, total=len(curve) + len(steps))
            specs = verify_specs(self.cfg, self.run_dir, tuned, steps)
            self.launch("verify", verify_job, specs, self._report_errors(), parallel=True)
        raise StageError(
            f"verify runs failed (see {self.run_dir / 'jobs' / 'verify'}); rerun the same "
            "command to retry them"
        )

    def stage_report(self) -> None:
        task = self.progress.add_task("report", total=2, msg="coordinate check")
        folder = self.run_dir / "report"
        try:
            hparams = self.tuned()
        except StageError:  # a report before tuning: at the ladder's default HPs
            hparams = dict(self.cfg.ladder.hparams)
        checks = measured_coord_checks(self.cfg, folder, hparams)
        self.progress.update(task, completed=1, msg="figures")
        summary = self.summary()
        write_report(summary, folder, study=self.study(), coord_checks=checks)
        write_json(self.run_dir / "summary.json", summary)
        log_report(self.cfg.logger, self.run_dir, summary, folder, public(self.cfg))
        self.progress.update(task, completed=2, msg=str(folder / "report.html"))

    def _report_errors(self):
        """One line per failed job (which, why, where its trace is); the stage carries on."""

        def on_result(_spec: dict, _result: Any, error: BaseException | None) -> None:
            if error is not None:
                self.progress.note(str(error))

        return on_result

    def summary(self) -> dict[str, Any]:
        return build_summary(self.cfg, self.run_dir, self.study())
