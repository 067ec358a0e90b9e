"""The transfer stage: what does the proxy's tuned LR cost at every width? (docs/methods.md §3)

For each parametrization (µP, and SP for contrast) and ladder width, a series of runs over a grid
of log2 LRs centred on the tuned one, `ladder.lr_resolution` apart, every other HP at its tuned
value. A series starts with `lr_span` points each side and grows, round by round, by one point
past each side where its best point sits at the edge, until the optimum is bracketed or the
series holds `lr_max_points` points: points go where the optimum is, starting from where µP says
it is. A settled series' best point and its better neighbour are then trained at `noise_seeds`
more seeds: the spread of the same-seed differences between the two is the noise a regret (two
LRs at the same seeds) is judged against, the spread at the best point alone that of two
independent runs. Where a µP width's regret at the tuned LR is so close to the tolerance that its
interval (the regret ± its paired band) straddles it, that width's tuned and best points take
more seeds, round by round, until the interval clears the tolerance or `ladder.resolve_budget`
(in target runs' FLOPs) is spent; the verdict says which.

One run is (parametrization, width, grid step k, seed). Runs are dealt to Submitit jobs (one run
per job on SLURM; a few long-lived jobs locally, where each process pays seconds of imports), and
each writes its result file the moment it is done, named by a hash of the tuned HPs: an
interrupted stage reruns only what it lacks, and a study that tuned anew never mixes with older
results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from sweep.config import run_config, sp_widths
from sweep.core.lr_curve import (
    bracket,
    fit_optimum,
    optimum_interval,
    steps_past_open_sides,
)
from sweep.core.metrics import (
    difference_band,
    drift,
    drift_beyond_noise,
    paired_band,
    percent,
    pooled_std,
    transfer_verdict,
    wider_is_better,
)
from sweep.core.parametrization import PARAMETRIZATIONS
from sweep.core.records import read_record
from sweep.core.sections import (
    NoiseBand,
    ParametrizationCurves,
    ResolvedRegret,
    Sections,
    TransferSection,
)
from sweep.core.train import RunConfig
from sweep.stages.plan import StagePlan, StepSeconds, estimated_seconds, parallel_jobs
from sweep.stages.source import shared_checkpoint
from sweep.stages.stage import (
    Context,
    PointGrid,
    Section,
    hparams_tag,
    job_count,
    target_run_flops,
)
from sweep.stages.tune import near_best

MAX_REGRET_SEEDS = 32  # the most seeds resolving a regret brings its two points to


@dataclass(frozen=True)
class Run:
    parametrization: str
    width: int
    step: int  # k: the run's log2 LR is the tuned one + k × ladder.lr_resolution
    seed: int


@dataclass(frozen=True)
class Result:
    loss: float  # final validation loss; NaN when the run diverged
    flops: int


def run_key(run: Run, tag: str) -> str:
    return f"{run.parametrization}_w{run.width}_k{run.step:+d}_s{run.seed}_{tag}"


def series_of(cfg: DictConfig) -> list[tuple[str, int]]:
    """Every (parametrization, width) the check runs: µP at every width, SP at `sp_widths`."""
    return [("mup", w) for w in cfg.ladder.widths] + [("sp", w) for w in sp_widths(cfg)]


def grid_seeds(cfg: DictConfig) -> list[int]:
    return list(range(cfg.seed, cfg.seed + cfg.ladder.transfer_seeds))


def extra_seeds(cfg: DictConfig) -> list[int]:
    first = cfg.seed + cfg.ladder.transfer_seeds
    return list(range(first, first + cfg.ladder.noise_seeds))


def resolve_seeds(cfg: DictConfig) -> list[int]:
    """The seeds only resolving a regret adds, at most `MAX_REGRET_SEEDS` at a point in all."""
    first = cfg.seed + cfg.ladder.transfer_seeds + cfg.ladder.noise_seeds
    return list(range(first, first + MAX_REGRET_SEEDS))


def series_curve(
    results: Mapping[Run, Result], parametrization: str, width: int, seeds: list[int]
) -> dict[int, float]:
    """{grid step: mean final loss over `seeds`} for the steps every seed has finished; NaN
    where a seed diverged."""
    steps = {r.step for r in results if (r.parametrization, r.width) == (parametrization, width)}
    curve = {}
    for k in sorted(steps):
        losses = [results.get(Run(parametrization, width, k, s)) for s in seeds]
        if all(loss is not None for loss in losses):
            values = np.array([loss.loss for loss in losses], dtype=float)
            curve[k] = float(values.mean()) if np.all(np.isfinite(values)) else math.nan
    return curve


def grid_extension(curve: Mapping[int, float], span: int, max_points: int) -> list[int]:
    """The grid steps a series needs next: the first grid (±span) until it is done, then one
    step past each open side of the bracket, while the series has fewer than `max_points`."""
    first = [k for k in range(-span, span + 1) if k not in curve]
    if first:
        return first
    return steps_past_open_sides(dict(curve))[: max(0, max_points - len(curve))]


def best_step(curve: Mapping[int, float]) -> int | None:
    finite = {k: v for k, v in curve.items() if math.isfinite(v)}
    return min(finite, key=lambda k: (finite[k], k)) if finite else None


def next_runs(cfg: DictConfig, results: Mapping[Run, Result]) -> list[Run]:
    """The runs the check still lacks, given those done: grid points of the series that are not
    settled, and the noise seeds at the best point of those that are."""
    ladder, seeds = cfg.ladder, grid_seeds(cfg)
    todo = []
    for p, width in series_of(cfg):
        curve = series_curve(results, p, width, seeds)
        steps = grid_extension(curve, ladder.lr_span, ladder.lr_max_points)
        if not steps and (best := best_step(curve)) is not None:
            steps, seeds_here = noise_steps(curve, best), extra_seeds(cfg)
        else:
            seeds_here = seeds
        todo += [
            run for k in steps for s in seeds_here if (run := Run(p, width, k, s)) not in results
        ]
    return todo or resolving_runs(cfg, results)


@dataclass(frozen=True)
class PairedRegret:
    """The regret at the tuned LR (k = 0) against the series' best grid point, from every seed the
    two points share, and its band: the paired noise of a difference of that many seeds, relative
    to the best point's loss."""

    regret: float  # +inf where a seed diverged at the tuned LR; NaN with nothing to compare
    band: float
    seeds: int
    best: int | None

    def straddles(self, tolerance: float) -> bool:
        """Whether the seeds cannot yet say which side of the tolerance the regret lies on."""
        finite = math.isfinite(self.regret) and self.best not in (None, 0)
        return finite and abs(self.regret - tolerance) < self.band


def paired_regret(
    cfg: DictConfig, results: Mapping[Run, Result], p: str, width: int, noise: NoiseBand
) -> PairedRegret:
    curve = series_curve(results, p, width, grid_seeds(cfg))
    best = best_step(curve)
    if best is None or 0 not in curve:
        return PairedRegret(math.nan, math.nan, 0, best)
    seeds = grid_seeds(cfg) + extra_seeds(cfg) + resolve_seeds(cfg)
    pairs = [
        (results[Run(p, width, 0, s)].loss, results[Run(p, width, best, s)].loss)
        for s in seeds
        if Run(p, width, 0, s) in results and Run(p, width, best, s) in results
    ]
    pairs = [(t, b) for t, b in pairs if math.isfinite(b)]  # a seed lost at the best point
    at_best = float(np.mean([b for _, b in pairs]))  # finite: the grid seeds' mean is
    at_tuned = float(np.mean([t for t, _ in pairs]))
    regret = math.inf if not math.isfinite(at_tuned) else (at_tuned - at_best) / at_best
    return PairedRegret(regret, band_of(noise, len(pairs)) / at_best, len(pairs), best)


def band_of(noise: NoiseBand, seeds: int) -> float:
    """The band of a difference of two points of `seeds` seeds each: paired where it was
    measured, else unpaired (0 with no noise measured)."""
    if noise["paired"]:
        return paired_band(noise["paired_std"], seeds)
    return difference_band(noise["std"], seeds)


def resolving_runs(cfg: DictConfig, results: Mapping[Run, Result]) -> list[Run]:
    """Once every series is settled: for each bracketed µP width whose regret interval straddles
    the tolerance, more seeds at its tuned and best points: as many as would clear the tolerance
    at today's regret and noise, but at least double and at most four times the seeds it has (the
    regret moves as seeds come in), at most `MAX_REGRET_SEEDS` in all, while their FLOPs fit in
    what `ladder.resolve_budget` has left."""
    ladder, left = cfg.ladder, None
    noise, todo = seed_noise(cfg, results), []
    for width in ladder.widths:
        curve = series_curve(results, "mup", width, grid_seeds(cfg))
        xs = sorted(curve)
        regret = paired_regret(cfg, results, "mup", width, noise)
        if not (
            bracket(xs, [curve[k] for k in xs]).closed and regret.straddles(ladder.regret_tolerance)
        ):
            continue
        if left is None:  # what the budget has left, once something asks for it
            left = ladder.resolve_budget * target_run_flops(cfg) - resolve_flops(cfg, results)
        margin = abs(regret.regret - ladder.regret_tolerance)
        clearing = (
            math.ceil(regret.seeds * (regret.band / margin) ** 2) + 1
            if margin > 1e-3 * regret.band
            else MAX_REGRET_SEEDS
        )
        wanted = min(max(2 * regret.seeds, clearing), 4 * regret.seeds, MAX_REGRET_SEEDS)
        wanted -= regret.seeds
        cost = point_config(cfg, dict(ladder.hparams), Run("mup", width, 0, cfg.seed)).flops
        fresh = [
            s
            for s in resolve_seeds(cfg)
            if not {Run("mup", width, 0, s), Run("mup", width, regret.best, s)} <= results.keys()
        ]
        for s in fresh[: max(0, wanted)]:
            pair = (Run("mup", width, 0, s), Run("mup", width, regret.best, s))
            owed = [r for r in pair if r not in results]
            if len(owed) * cost > left:
                break
            left -= len(owed) * cost
            todo += owed
    return todo


def resolve_flops(cfg: DictConfig, results: Mapping[Run, Result]) -> int:
    """What the runs at the resolving seeds cost."""
    seeds = set(resolve_seeds(cfg))
    return sum(r.flops for run, r in results.items() if run.seed in seeds)


def neighbour_step(curve: Mapping[int, float], best: int) -> int | None:
    """The best point's better finite neighbour on the grid (None: it has none)."""
    around = [k for k in (best - 1, best + 1) if math.isfinite(curve.get(k, math.nan))]
    return min(around, key=lambda k: (curve[k], k)) if around else None


def noise_steps(curve: Mapping[int, float], best: int) -> list[int]:
    """Where a settled series takes the noise seeds: its best point and that point's neighbour."""
    neighbour = neighbour_step(curve, best)
    return [best] if neighbour is None else [best, neighbour]


def point_config(cfg: DictConfig, tuned: Mapping[str, float], run: Run) -> RunConfig:
    """The training run of one point: the tuned HPs, the LR times 2^(k·lr_resolution) (exactly
    the tuned LR at k = 0, so that point is the run the warm start's source makes)."""
    hparams = dict(tuned) | {"lr": tuned["lr"] * 2.0 ** (run.step * cfg.ladder.lr_resolution)}
    return run_config(
        cfg, run.width, run.parametrization, hparams, cfg.ladder.transfer_steps, run.seed
    )


def read_results(folder: Path, hparams: Mapping[str, float]) -> dict[Run, Result]:
    """The runs on disk made with these tuned values."""
    out = {}
    for path in sorted(folder.glob(f"*_{hparams_tag(hparams)}.json")):
        record = read_record(path)
        if record is None:  # damaged: moved aside, to be trained again
            continue
        loss = math.nan if record["loss"] is None else float(record["loss"])
        out[Run(**record["run"])] = Result(loss, int(record["flops"]))
    return out


def seed_noise(cfg: DictConfig, results: Mapping[Run, Result]) -> NoiseBand:
    """The seed-to-seed spread of the final loss at each series' best point, and of the
    same-seed difference between that point and its neighbour, each pooled over the series;
    the difference two grid points must exceed to be told apart, paired where it was measured
    (`relative_band` is set once the best losses are known)."""
    groups, differences = [], []
    seeds = grid_seeds(cfg) + extra_seeds(cfg)
    for p, width in series_of(cfg):
        curve = series_curve(results, p, width, grid_seeds(cfg))
        best = best_step(curve)
        at_best = {s: r.loss for s in seeds if (r := results.get(Run(p, width, best, s)))}
        groups.append(list(at_best.values()))
        if best is not None and (neighbour := neighbour_step(curve, best)) is not None:
            beside = {s: results.get(Run(p, width, neighbour, s)) for s in at_best}
            differences.append([r.loss - at_best[s] for s, r in beside.items() if r])
    std, dof = pooled_std(groups)
    paired_std, paired_dof = pooled_std(differences)
    n = cfg.ladder.transfer_seeds
    paired = paired_dof > 0
    noise = NoiseBand(
        std=std,
        dof=dof,
        paired_std=paired_std,
        paired_dof=paired_dof,
        correlation=1 - paired_std**2 / (2 * std**2) if paired and std > 0 else math.nan,
        paired=paired,
        band=math.nan,
        unpaired_band=difference_band(std, n),
        seeds_per_point=n,
        relative_band=math.nan,
        relative_unpaired_band=math.nan,
    )
    noise["band"] = band_of(noise, n)
    return noise


def parametrization_curves(
    cfg: DictConfig, results: Mapping[Run, Result], p: str, tuned_log2: float, noise: NoiseBand
) -> ParametrizationCurves:
    """One parametrization across the ladder: per width the curve, its fitted optimum and
    interval, whether the grid brackets it and the regret at the tuned LR (from every seed its
    two points share, with its band); then the drifts."""
    curves, optima, intervals, bracketed, regrets = {}, {}, {}, {}, {}
    regret_bands, regret_seeds = {}, {}
    for width in cfg.ladder.widths:
        curve = series_curve(results, p, width, grid_seeds(cfg))
        if not curve:
            continue
        xs = [tuned_log2 + k * cfg.ladder.lr_resolution for k in sorted(curve)]
        ys = [curve[k] for k in sorted(curve)]
        key = str(width)
        curves[key] = [[x, y] for x, y in zip(xs, ys, strict=True)]
        optima[key] = fit_optimum(xs, ys).log2_lr
        intervals[key] = list(optimum_interval(xs, ys, noise["band"]))
        bracketed[key] = bracket(xs, ys).closed
        paired = paired_regret(cfg, results, p, width, noise)
        regrets[key], regret_bands[key], regret_seeds[key] = (
            paired.regret,
            paired.band,
            paired.seeds,
        )
    return ParametrizationCurves(
        curves=curves,
        optimum_log2_lr=optima,
        optimum_interval=intervals,
        bracketed=bracketed,
        regret=regrets,
        regret_band=regret_bands,
        regret_seeds=regret_seeds,
        drift_log2=drift(optima),
        drift_beyond_noise_log2=drift_beyond_noise({w: tuple(v) for w, v in intervals.items()}),
        worst_regret=max(regrets.values(), default=math.nan),
        wider_is_better=wider_is_better(
            {int(w): dict(map(tuple, c)) for w, c in curves.items()}, up_to=tuned_log2
        ),
    )


def resolved_regrets(
    cfg: DictConfig, results: Mapping[Run, Result], mup: ParametrizationCurves, noise: NoiseBand
) -> dict[str, ResolvedRegret]:
    """The bracketed µP widths whose regret took resolving seeds or still straddles the
    tolerance: how many seeds it rests on, and whether its interval now clears the tolerance."""
    tolerance, seeds = cfg.ladder.regret_tolerance, set(resolve_seeds(cfg))
    out = {}
    for key in mup["regret"]:
        paired = paired_regret(cfg, results, "mup", int(key), noise)
        added = {
            r.seed
            for r in results
            if (r.parametrization, r.width) == ("mup", int(key)) and r.seed in seeds
        }
        straddles = paired.straddles(tolerance)
        if mup["bracketed"][key] and (added or straddles):
            outcome = "settled" if not straddles else "budget"
            if straddles and paired.seeds >= MAX_REGRET_SEEDS:
                outcome = "seeds"
            if not math.isfinite(paired.regret):
                outcome = "diverged"
            out[key] = ResolvedRegret(
                regret=paired.regret,
                band=paired.band,
                seeds=paired.seeds,
                added=len(added),
                outcome=outcome,
            )
    return out


def resolve_text(resolved: Mapping[str, ResolvedRegret], tolerance: float, budget: float) -> str:
    """What resolving the regrets near the tolerance did, in a clause ("" when none was)."""
    parts = []
    for width, r in resolved.items():
        where = f"width {width}: {percent(r['regret'])} ± {percent(r['band'])}, {r['seeds']} seeds"
        if r["outcome"] == "diverged":
            parts.append(f"width {width}: a seed added diverged at the tuned LR")
        elif r["outcome"] == "settled":
            side = "within" if r["regret"] <= tolerance else "beyond"
            parts.append(f"{where} ({r['added']} added) settle it {side} the tolerance")
        elif r["outcome"] == "seeds":
            parts.append(f"{where} (the most it takes) still straddle it")
        elif r["added"]:
            parts.append(
                f"{where} ({r['added']} added) still straddle it: ladder.resolve_budget "
                f"({budget:g} target runs) spent"
            )
        else:
            parts.append(f"{where} straddle it; ladder.resolve_budget ({budget:g}) adds no seed")
    return "; ".join(parts)


def grid_flops(results: Mapping[Run, Result]) -> int:
    return sum(r.flops for r in results.values())


def transfer_summary(
    cfg: DictConfig, results: Mapping[Run, Result], tuned_lr: float, target_flops: float
) -> TransferSection:
    """Per parametrization and width: the curve, the fitted optimum and its interval, whether
    the grid brackets it, and the relative regret at the tuned LR; then the noise, the drifts,
    the verdict and what the check cost next to one target run."""
    tuned_log2 = math.log2(tuned_lr)
    noise = seed_noise(cfg, results)
    series = {
        p: parametrization_curves(cfg, results, p, tuned_log2, noise) for p in PARAMETRIZATIONS
    }
    best_losses = [
        min(finite)
        for section in series.values()
        for curve in section["curves"].values()
        if (finite := [y for _, y in curve if math.isfinite(y)])
    ]
    unbracketed = [
        f"{'µP' if p == 'mup' else 'SP'} width {width}"
        for p, section in series.items()
        for width, closed in section["bracketed"].items()
        if not closed
    ]
    mean_best = float(np.mean(best_losses)) if best_losses else math.inf
    noise["relative_band"] = noise["band"] / mean_best
    noise["relative_unpaired_band"] = noise["unpaired_band"] / mean_best
    regrets = {p: {int(w): r for w, r in series[p]["regret"].items()} for p in series}
    tolerance = cfg.ladder.regret_tolerance
    resolved = resolved_regrets(cfg, results, series["mup"], noise)
    verdict = transfer_verdict(
        regrets["mup"],
        regrets["sp"],
        unbracketed=unbracketed,
        noise={int(w): b for w, b in series["mup"]["regret_band"].items()},
        tolerance=tolerance,
        resolved=resolve_text(resolved, tolerance, cfg.ladder.resolve_budget),
        optima={int(w): i for w, i in series["mup"]["optimum_interval"].items()},
        tuned_log2_lr=tuned_log2,
    )
    flops = grid_flops(results)
    return TransferSection(
        resolved=resolved,
        resolve_flops_vs_target=resolve_flops(cfg, results) / target_flops
        if target_flops
        else math.nan,
        tuned_log2_lr=tuned_log2,
        noise=noise,
        mup=series["mup"],
        sp=series["sp"],
        tolerance=cfg.ladder.regret_tolerance,
        conclusive=not unbracketed,
        verdict=verdict.to_dict(),
        runs=len(results),
        flops_vs_target=flops / target_flops if target_flops else math.nan,
    )


class TransferStage(PointGrid):
    """Every ladder width × {µP, SP}: LR grids grown until bracketed, then the noise seeds."""

    name = folder = "transfer"
    run_type = Run

    def key(self, run: Run, tag: str) -> str:
        return run_key(run, tag)

    def point(self, cfg: DictConfig, tuned: Mapping[str, float], run: Run) -> RunConfig:
        return point_config(cfg, tuned, run)

    def wandb_name(self, cfg: DictConfig, run: Run, config: RunConfig) -> str:
        log2_lr = math.log2(config.optim.lr)
        return f"{run.parametrization}_w{run.width}_lr{log2_lr:+.2f}_s{run.seed}"

    def checkpoint(
        self, cfg: DictConfig, run_dir: Path, tuned: Mapping[str, float], config: RunConfig
    ) -> Path | None:
        return shared_checkpoint(cfg, run_dir, dict(tuned), config)

    def max_rounds(self, ctx: Context) -> int:
        # each round adds a point or ends; then resolving at least doubles a regret's seeds
        return ctx.cfg.ladder.lr_max_points + 3 + math.ceil(math.log2(MAX_REGRET_SEEDS))

    def read(self, ctx: Context) -> dict[Run, Result]:
        return read_results(ctx.run_dir / self.folder, ctx.require_tuned())

    def todo(self, ctx: Context, done: Mapping[Run, Result]) -> list[Run]:
        return next_runs(ctx.cfg, done)

    def plan(self, ctx: Context, step_seconds: StepSeconds) -> StagePlan:
        """The first round and the noise seeds every series ends with; at most, every series
        at `lr_max_points`."""
        cfg, ladder, tuned = ctx.cfg, ctx.cfg.ladder, ctx.tuned_or_default()
        done = read_results(ctx.run_dir / self.folder, tuned)
        first = next_runs(cfg, done)
        noise_seeds = set(extra_seeds(cfg))
        noise = [
            (p, w)
            for p, w in series_of(cfg)
            for _ in range(2 * ladder.noise_seeds)  # the best point and its neighbour
            if not any(
                (r.parametrization, r.width) == (p, w) and r.seed in noise_seeds
                for r in [*done, *first]
            )
        ]
        per_series = ladder.lr_max_points * len(grid_seeds(cfg)) + 2 * ladder.noise_seeds
        left = {
            (p, w): max(0, per_series - sum((r.parametrization, r.width) == (p, w) for r in done))
            for p, w in series_of(cfg)
        }

        def config(width: int, p: str) -> RunConfig:
            return run_config(cfg, width, p, tuned, ladder.transfer_steps, cfg.seed)

        runs = [config(r.width, r.parametrization) for r in first]
        runs += [config(w, p) for p, w in noise]
        flops = sum(r.flops for r in runs)
        resolving = ladder.resolve_budget * target_run_flops(cfg)
        notes = [f"{len(done)} runs done"] if done else []
        if resolving:
            notes.append(
                f"at most {ladder.resolve_budget:g} target runs more resolve regrets near the "
                "tolerance"
            )
        return StagePlan(
            self.name,
            job_count(cfg, len(first)),
            len(runs),
            flops,
            sum(left.values()),
            sum(n * config(w, p).flops for (p, w), n in left.items()) + resolving,
            estimated_seconds(runs, step_seconds, parallel_jobs(cfg)),
            "; ".join(notes),
        )

    def summary(self, ctx: Context, so_far: Sections) -> Section | None:
        if ctx.tuned is None or not self.complete(ctx, results := self.read(ctx)):
            return None
        section = transfer_summary(ctx.cfg, results, ctx.tuned["lr"], target_run_flops(ctx.cfg))
        amends = {"tune": {"near_best": near_best(ctx.study, section["noise"]["band"])}}
        return Section(self.name, section, grid_flops(results), "transfer_flops", amends)
