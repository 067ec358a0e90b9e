"""The verify stage: is the LR the target trained at right at the target? (docs/methods.md §3,
§12)

Three checks. `full`: the cold target (its width and depth, steps, seed and applied values) trained
at the applied LR × 2^(k·res) for k = ±1, then one step further past a side where the best run
sits at the edge, as long as `verify.max_runs` allows; k = 0 is the target stage's cold run where
it trained. `rung` (under a budget, when it fits): the same grid of runs at the target's length,
depth and batch but a narrower width, centred on the LR the joint fit gives that width; µP carries
its optimum to the target's width, so it measures the target's whole horizon for a fraction of a
target run and rests on µP only across width. `probes`: the same grid at the target's width and
depth but a fraction of its steps, centred on the LR the fitted horizon rule gives that length;
the probes' optimum, carried back to the target's length by the same rule, is where the target's
should be. The optimum is fitted as in the transfer check. The regret at the centre is the figure
the verdict judges; the carried-over LR and the fit's other predictions are read off the same
curve beside it, each with its interval from the paired noise band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from sweep.config import (
    VerifyCheck,
    check_steps,
    check_width,
    cold_baseline,
    job_config,
    plain,
    run_config,
    target_depth,
    verify_check,
)
from sweep.core.lr_curve import (
    bracket,
    fit_optimum,
    fitted_regret,
    optimum_interval,
    relative_regret,
    steps_past_open_sides,
)
from sweep.core.metrics import percent
from sweep.core.records import read_record, write_record
from sweep.core.sections import (
    JUDGED,
    Applied,
    AxesSection,
    JudgedLR,
    NoiseBand,
    Sections,
    VerifySection,
)
from sweep.core.train import RunResult
from sweep.core.verdict import Status, Verdict
from sweep.edges.distributed import process_group
from sweep.stages.plan import StagePlan, StepSeconds, data_parallel_seconds
from sweep.stages.stage import Context, GridStage, Section, hparams_tag, target_run_flops
from sweep.stages.target import target_key, train_target


@dataclass(frozen=True)
class Check:
    """The check's shape: its kind, its runs' steps and width beside the target's, the log2 LR
    its grid's centre lies above the applied LR (the joint fit's move to the check's width and
    length), and that move in words."""

    kind: VerifyCheck
    steps: int
    width: int
    target_steps: int
    target_width: int
    shift: float = 0.0
    rule: str = ""

    @property
    def prefix(self) -> str:
        """What its runs' names start with: `p94_` for probes, `w16_` for a rung."""
        if self.kind == VerifyCheck.probes:
            return f"p{self.steps}_"
        return f"w{self.width}_" if self.kind == VerifyCheck.rung else ""


def verify_key(step: int, tag: str, check: Check) -> str:
    """A run's name: `k+1_<tag>` for a whole target run, `p62_k+1_<tag>` for a probe,
    `w16_k+1_<tag>` for a run of a rung."""
    return f"{check.prefix}k{step:+d}_{tag}"


def check_shift(cfg: DictConfig, axes: AxesSection | None) -> tuple[float, str]:
    """The log2 LR the check's centre lies above the applied LR (the joint fit's move from the
    target to the check's width and length), and that move in words; 0 for the full check and
    where no fit moves it."""
    kind = verify_check(cfg)
    if kind == VerifyCheck.full:
        return 0.0, ""
    rung = kind == VerifyCheck.rung
    joint = (axes or {}).get("joint")
    if not cfg.axes.apply or joint is None or "log2_lr_at_check" not in joint:
        if rung:
            return 0.0, (
                f"µP carries the optimum from width {check_width(cfg)} to "
                f"{cfg.ladder.target} unchanged (no fit across widths is applied)"
            )
        return 0.0, "no horizon rule fitted: the probes are centred on the applied LR itself"
    shift = joint["log2_lr_at_check"] - joint["log2_lr"]
    if rung:
        if shift == 0.0:
            return 0.0, (
                f"µP carries the optimum from width {check_width(cfg)} to {cfg.ladder.target} "
                "unchanged (the joint fit resolves no drift with width beyond its error)"
            )
        return shift, (
            f"the joint fit moves the LR {shift:+.2f} log2 from width {cfg.ladder.target} to "
            f"{check_width(cfg)}"
        )
    if shift == 0.0:
        return 0.0, (
            "the joint fit resolves no horizon slope beyond its error, so the probes are read as "
            "if the optimum did not move with training length"
        )
    return shift, f"the joint fit's horizon rule moves the LR {shift:+.2f} log2 to their length"


def check_shape(cfg: DictConfig, axes: AxesSection | None = None) -> Check:
    """The check `cfg` asks for, moved by the joint fit in `axes` (None: not moved)."""
    shift, rule = check_shift(cfg, axes)
    ladder = cfg.ladder
    return Check(
        verify_check(cfg), check_steps(cfg), check_width(cfg), ladder.target_steps, ladder.target,
        shift, rule,
    )  # fmt: skip


def next_steps(curve: Mapping[int, float], max_runs: int, cover: float = 0.0) -> list[int]:
    """The LR steps still to train: 0 (the cold target) and ±1 first, then one past each open
    side of the bracket, then one toward `cover` (the carried-over LR, in grid steps from the
    applied one) while it lies off the grid, while the runs beside k = 0 number fewer than
    `max_runs`."""
    first = [k for k in (0, -1, 1) if k not in curve]
    if first:
        return first
    left = max(0, max_runs - (len(curve) - 1))  # beside k = 0, the target stage's cold run
    steps = steps_past_open_sides(dict(curve))
    if not steps and math.isfinite(cover):
        low, high = min(curve), max(curve)
        steps = [low - 1] if cover < low - 1e-9 else [high + 1] if cover > high + 1e-9 else []
    return steps[:left]


def read_curve(run_dir: Path, hparams: Mapping[str, float], check: Check) -> dict[int, dict]:
    """{k: run record}: the check's runs made around these values; for the full check the target
    stage's cold run at them as k = 0 where it trained (marked `from_target`: the target stage
    paid for it)."""
    tag, prefix = hparams_tag(hparams), check.prefix
    records = {}
    for path in sorted((run_dir / "verify").glob(f"{prefix}k*_{tag}.json")):
        if (record := read_record(path)) is not None:  # damaged: moved aside, redone
            records[int(path.stem.removeprefix(prefix).split("_")[0][1:])] = record
    cold = run_dir / "target" / f"{target_key('cold', hparams)}.json"
    full = check.kind == VerifyCheck.full
    if full and 0 not in records and (record := read_record(cold)) is not None:
        records[0] = record | {"from_target": True}
    return records


def final_loss(record: Mapping[str, Any]) -> float:
    result = RunResult(**record["result"])
    return result.final_val_loss if result.status == "completed" else math.nan


def verify_specs(
    cfg: DictConfig, run_dir: Path, hparams: dict, steps: list[int], shift: float = 0.0
) -> list[dict]:
    """One job per run; `shift` the log2 LR of the grid's centre above the applied LR."""
    container = plain(cfg)
    return [
        {"cfg": container, "run_dir": str(run_dir), "hparams": hparams, "step": k, "shift": shift}
        for k in steps
    ]


def verify_job(spec: dict[str, Any]) -> str:
    """Submitit job: one cold run of the check at the applied LR × 2^(shift + k·res), a whole
    target run, a run of a rung or a probe; writes its record."""
    cfg = job_config(spec["cfg"])
    run_dir, hparams, k = Path(spec["run_dir"]), spec["hparams"], spec["step"]
    torch.set_num_threads(cfg.launcher.cpus_per_task)
    check = check_shape(cfg)
    key = verify_key(k, hparams_tag(hparams), check)
    checkpoint = run_dir / "verify" / f"{key}.ckpt"
    name = {VerifyCheck.probes: f"probe{check.steps}", VerifyCheck.rung: f"rung{check.width}"}
    with process_group(cfg.hardware.device, cfg.hardware.data_parallel) as world:
        record = train_target(
            cfg,
            run_dir,
            hparams,
            warm=False,
            checkpoint=checkpoint,
            seed=cfg.seed,
            steps=check.steps,
            lr_scale=2.0 ** (spec.get("shift", 0.0) + k * cfg.ladder.lr_resolution),
            wandb_name=f"{name.get(check.kind, 'verify')}-k{k:+d}",
            job_type="verify",
            world=world,
            width=check.width,
        )
    if world.main:
        write_record(run_dir / "verify" / f"{key}.json", record)
        checkpoint.unlink()  # the record is what the check needs; the weights are a target's
    return key


def verify_flops(records: Mapping[int, Mapping[str, Any]]) -> int:
    """What the check's own runs cost: all but the target stage's cold run."""
    return sum(r["result"]["flops"] for r in records.values() if not r.get("from_target"))


def check_words(
    check: Check, optimum: float, interval: tuple[float, float], applied: float
) -> tuple[str, str]:
    """Which check ran, and what it found about the target's optimum, in words."""
    lo, hi = interval
    if check.kind == VerifyCheck.full:
        found = f"optimum log2 LR {optimum:.2f} (within noise {lo:.2f} to {hi:.2f}; applied "
        return "at the target", found + f"{applied:.2f})"
    shift = check.shift
    if check.kind == VerifyCheck.rung:
        where = (
            f"a rung of the target's length at width {check.width} ({check.steps} steps; "
            f"1/{check.target_width / check.width:.3g} of the target's width)"
        )
        its = "its"
    else:
        where = (
            f"probes at width {check.width} ({check.steps} steps, 1/"
            f"{check.target_steps / check.steps:.3g} of the target's)"
        )
        its = "their"
    found = (
        f"{its} optimum log2 {optimum:.2f} [{lo:.2f}, {hi:.2f}] puts the target's at log2 "
        f"{optimum - shift:.2f} [{lo - shift:.2f}, {hi - shift:.2f}] (applied {applied:.2f}); "
        f"{check.rule}, so this check rests on that rule"
    )
    return where, found


def unbracketed_verdict(where: str, points: int, regret: float, check: Check) -> Verdict:
    """Not bracketed: a lower bound on the regret at the centre; for probes at their length and
    for a rung at its width, through the move (`check.rule`) that carries them to the target."""
    at = {
        VerifyCheck.probes: " at their length",
        VerifyCheck.rung: f" at width {check.width}",
    }.get(check.kind, "")
    rests = f"{at}; {check.rule}, so this check rests on that rule" if check.rule else at
    return Verdict(
        Status.inconclusive,
        f"{where}: inconclusive, the optimum is not bracketed by {points} LRs "
        f"(verify.max_runs reached); regret at the centre ≥ {percent(regret)}{rests}",
    )


def subject(check: Check, centre: float) -> str:
    """What the verdict judges: the applied LR, or the LR the fit moves it to at the check."""
    if check.kind == VerifyCheck.full or check.shift == 0.0:
        return "the applied LR"
    where = "their length" if check.kind == VerifyCheck.probes else f"width {check.width}"
    return f"the LR for {where} ({centre:.2f})"


def verify_summary(
    records: Mapping[int, Mapping[str, Any]],
    candidates: Mapping[str, float],
    relative_band: float,
    target_flops: float,
    tolerance: float,
    differs: str = "",
    check: Check | None = None,
) -> VerifySection:
    """The loss against LR at the check (the target's own curve, or a rung's or the probes'),
    its fitted optimum and interval, each candidate's regret on that curve (`candidates`: name →
    log2 LR at the target, "applied" the one judged), the cost in target runs, and the verdict.
    With a rung or probes every candidate moves to the check by the joint fit's shift and their
    optimum moves back (`check`; None: the full check); `differs` is added to the line when the
    applied LR misses."""
    ks = sorted(records)
    xs = [records[k]["log2_lr"] for k in ks]
    ys = [final_loss(records[k]) for k in ks]
    full = check is None or check.kind == VerifyCheck.full
    shift = 0.0 if check is None else check.shift
    applied = candidates["applied"]
    centre = applied + shift
    finite = [y for y in ys if math.isfinite(y)]
    band = relative_band * min(finite) if finite else 0.0
    closed = bracket(xs, ys).closed
    optimum = fit_optimum(xs, ys)
    regret = relative_regret(xs, ys, centre)
    interval = list(optimum_interval(xs, ys, band))
    judged = judged_lrs(xs, ys, {k: v + shift for k, v in candidates.items()}, relative_band)
    shape = check or Check(VerifyCheck.full, 0, 0, 0, 0)
    where, found = check_words(shape, optimum.log2_lr, (interval[0], interval[1]), applied)
    if closed:
        status, bound = regret_status(regret, tolerance, relative_band)
        text = f"{where}: {subject(shape, centre)} loses {percent(regret)} ({bound}), {found}"
        text += f"; besides its width, {differs}" if status is Status.fails and differs else ""
        verdict = Verdict(status, text + compared_text(judged))
    else:
        verdict = unbracketed_verdict(where, len(ks), regret, shape)
    steps, runs, cost = check_ran(records, shape, target_flops, full)
    section = VerifySection(
        check=str(shape.kind),
        steps=steps,
        curve=[[x, y] for x, y in zip(xs, ys, strict=True)],
        applied_log2_lr=applied,
        centre_log2_lr=centre,
        optimum_log2_lr=optimum.log2_lr,
        optimum_interval=interval,
        bracketed=closed,
        regret=regret,
        judged=judged,
        runs=runs,
        flops_vs_target=cost,
        verdict=verdict.to_dict(),
    )
    if not full:
        section["width"] = shape.width
        section["target_optimum_log2_lr"] = optimum.log2_lr - shift
        section["target_optimum_interval"] = [v - shift for v in interval]
        section["rule"] = shape.rule
    return section


def check_ran(
    records: Mapping[int, Mapping[str, Any]], shape: Check, target_flops: float, full: bool
) -> tuple[int, int, float]:
    """What the check ran: the steps of each run, the runs, and their cost in target runs (the
    runs borrowed from the target itself cost nothing here)."""
    flops = verify_flops(records)
    steps_done = max((int(r["result"]["steps_done"]) for r in records.values()), default=0)
    return (
        steps_done if full else shape.steps,
        len([r for r in records.values() if not r.get("from_target")]),
        flops / target_flops if target_flops else math.nan,
    )


def judged_lrs(
    xs: list[float], ys: list[float], candidates: Mapping[str, float], band: float
) -> dict[str, JudgedLR]:
    """Each candidate's regret read off the target's fitted curve, against its vertex (so LRs
    between grid points compare fairly with the applied one on the grid), and its interval: ±
    the relative paired band, floored at 0. A candidate equal to the applied LR is left out."""
    out = {}
    for name, log2_lr in candidates.items():
        if name != "applied" and math.isclose(log2_lr, candidates["applied"], abs_tol=1e-9):
            continue
        regret = fitted_regret(xs, ys, log2_lr)
        out[name] = JudgedLR(
            log2_lr=log2_lr, regret=regret, interval=[max(0.0, regret - band), regret + band]
        )
    return out


def compared_text(judged: Mapping[str, JudgedLR]) -> str:
    """'; on the fitted curve, the applied LR (log2 −4.49) loses 0.40% [0.00%, 2.30%], the tuned
    LR carried over (log2 −4.65) 1.20% [0.00%, 3.10%]': nothing when only the applied LR is; a
    candidate beyond the curve's LRs (no regret to read) is said to be off them."""
    parts = [
        f"{JUDGED.get(name, name)} (log2 {j['log2_lr']:.2f}) {percent(j['regret'])} "
        f"[{percent(j['interval'][0])}, {percent(j['interval'][1])}]"
        if math.isfinite(j["regret"])
        else f"{JUDGED.get(name, name)} (log2 {j['log2_lr']:.2f}) off the measured LRs"
        for name, j in judged.items()
    ]
    return f"; on the fitted curve, {', '.join(parts)}" if len(parts) > 1 else ""


def one_seed_band(noise: NoiseBand) -> float:
    """The relative band of two target runs at one seed each: the transfer check's band is for
    points of `seeds_per_point` seeds, and scales as 1/√seeds."""
    return noise["relative_band"] * math.sqrt(noise["seeds_per_point"])


def regret_status(regret: float, tolerance: float, noise: float) -> tuple[Status, str]:
    """A regret judged against the tolerance and the noise band, and the bound it met in words."""
    if regret <= tolerance:
        return Status.passes, f"within the tolerance {percent(tolerance)}"
    if regret <= noise:
        return (
            Status.within_noise,
            f"above the tolerance {percent(tolerance)} but within the noise ±{percent(noise)}",
        )
    beyond = f"beyond the tolerance {percent(tolerance)} and the noise ±{percent(noise)}"
    return Status.fails, beyond


def differs(cfg: DictConfig) -> str:
    """How the target differs from the ladder's transfer check besides its width."""
    ladder, parts = cfg.ladder, []
    if ladder.target_steps != ladder.transfer_steps:
        parts.append(f"{ladder.target_steps} steps against the ladder's {ladder.transfer_steps}")
    if ladder.target_n_layer and ladder.target_n_layer != ladder.n_layer:
        parts.append(f"{ladder.target_n_layer} layers against {ladder.n_layer}")
    return "the target trains " + " and ".join(parts) if parts else ""


def candidates(applied: Applied, axes: AxesSection | None) -> dict[str, float]:
    """The log2 LRs the check judges: the applied one, the carried-over one, and the axes
    stage's other predictions (the joint fit's unshrunk slopes, the one-axis rules)."""
    out = {
        "applied": math.log2(applied["hparams"]["lr"]),
        "carried": math.log2(applied["carried"]["lr"]),
    }
    if axes is not None:
        if "joint" in axes:
            out["unshrunk"] = axes["joint"]["log2_lr_unshrunk"]
        out["one_axis"] = axes["prediction"]["log2_lr"]
    return out


class VerifyStage(GridStage):
    """Runs around the applied LR (whole target runs, a rung of the target's length at a
    narrower width, or probes at the target's width; the last two centred where the joint fit
    moves the LR), in rounds until the optimum is bracketed or `verify.max_runs` is spent."""

    name = "verify"
    parallel = True

    def skipped(self, ctx: Context) -> str | None:
        if ctx.cfg.verify.max_runs < 2:
            return "verify.max_runs < 2 cannot bracket (or the budget left no check)"
        return None

    def max_rounds(self, ctx: Context) -> int:
        return ctx.cfg.verify.max_runs + 2

    def axes(self, ctx: Context) -> AxesSection | None:
        return ctx.sections().get("axes") if ctx.sections is not None else None

    def read(self, ctx: Context) -> dict[int, dict[str, Any]]:
        return read_curve(ctx.run_dir, ctx.applied["hparams"], check_shape(ctx.cfg))

    def todo(self, ctx: Context, done: Mapping[int, Mapping[str, Any]]) -> list[int]:
        curve = {k: final_loss(record) for k, record in done.items()}
        applied = ctx.applied
        carried = math.log2(applied["carried"]["lr"] / applied["hparams"]["lr"])
        return next_steps(curve, ctx.cfg.verify.max_runs, carried / ctx.cfg.ladder.lr_resolution)

    def specs(self, ctx: Context, todo: list[int]) -> list[dict]:
        shift, _ = check_shift(ctx.cfg, self.axes(ctx))
        return verify_specs(ctx.cfg, ctx.run_dir, ctx.applied["hparams"], todo, shift)

    def job(self, spec: dict[str, Any]) -> str:
        return verify_job(spec)

    def run_steps(self, ctx: Context) -> int:
        return check_steps(ctx.cfg)  # whole target runs, a rung's, or probes: the bar counts steps

    def progress(self, ctx: Context, done: Mapping) -> str:
        kind = verify_check(ctx.cfg)
        noun = {VerifyCheck.probes: "probes", VerifyCheck.rung: "rung runs"}
        return f"{len(done)} {noun.get(kind, 'target runs')}"

    def plan(self, ctx: Context, step_seconds: StepSeconds) -> StagePlan:
        if reason := self.skipped(ctx):
            return StagePlan(self.name, 0, 0, 0.0, 0, 0.0, 0.0, f"skipped: {reason}")
        cfg, hparams, max_runs = ctx.cfg, ctx.applied_or_default(), ctx.cfg.verify.max_runs
        check = check_shape(cfg)
        full = check.kind == VerifyCheck.full
        curve = {k: 0.0 for k in read_curve(ctx.run_dir, hparams, check)}
        cold = full and cold_baseline(cfg) and "target" in ctx.planned
        assumed = curve | ({0: 0.0} if cold else {})  # the target stage's cold run, as k = 0
        first = next_steps(assumed, max_runs)
        done = len([k for k in curve if k != 0])
        run = run_config(cfg, check.width, "mup", hparams, check.steps, cfg.seed, target_depth(cfg))
        most = max(0, max_runs - done) + (0 in first)
        note = {
            VerifyCheck.full: f"the target at the applied LR × 2^±{cfg.ladder.lr_resolution:g}",
            VerifyCheck.rung: f"the target's {check.steps} steps at width {check.width}, around "
            "the joint fit's LR for that width",
            VerifyCheck.probes: f"probes of {check.steps} steps at width {check.width} around "
            "the horizon rule's LR for that length",
        }[check.kind]
        return StagePlan(
            self.name,
            len(first),
            len(first),
            len(first) * run.flops,
            most,
            most * run.flops,
            data_parallel_seconds([run] * len(first), step_seconds, cfg, len(first)),
            note,
        )

    def summary(self, ctx: Context, so_far: Sections) -> Section | None:
        if ctx.tuned is None or not self.complete(ctx, records := self.read(ctx)):
            return None
        noise = so_far.get("transfer", {}).get("noise")
        cfg = ctx.cfg
        section = verify_summary(
            records,
            candidates(ctx.applied, so_far.get("axes")),
            one_seed_band(noise) if noise else 0.0,
            target_run_flops(cfg),
            cfg.ladder.regret_tolerance,
            differs(cfg),
            check_shape(cfg, so_far.get("axes")),
        )
        return Section(self.name, section, verify_flops(records), "verify_flops")
