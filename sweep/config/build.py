"""The core's dataclasses built from the config: the data, the model at a width, the run of a
job; and what a model takes (its tunable HPs, its source digest)."""

from __future__ import annotations

import copy

from omegaconf import DictConfig, OmegaConf

from sweep.config.records import plain
from sweep.config.schema import MODEL_HPARAMS, TUNABLE, ModelKind, VerifyCheck
from sweep.core import custom
from sweep.core.axis_rules import Setting
from sweep.core.custom import CustomConfig, frozen_options
from sweep.core.data import BYTE_VOCAB, DataConfig
from sweep.core.model import GPTConfig
from sweep.core.models import ModelConfig, source_digest
from sweep.core.train import OptimConfig, RunConfig
from sweep.grow.choices import SourceModel


def data_config(cfg: DictConfig) -> DataConfig:
    return DataConfig(**plain(cfg.data))


def proxy_setting(cfg: DictConfig) -> Setting:
    """The tuning run's tokens per step and steps (where the axes' ratios start)."""
    ladder = cfg.ladder
    return Setting(ladder.batch_size * ladder.seq_len, ladder.tune_steps)


def target_setting(cfg: DictConfig) -> Setting:
    """The target run's tokens per step and steps."""
    ladder = cfg.ladder
    return Setting(ladder.batch_size * ladder.seq_len, ladder.target_steps)


def budgeted(cfg: DictConfig) -> bool:
    """Whether a budget bounds what the checks spend (`budget`, by default the ladder's)."""
    return OmegaConf.select(cfg, "budget", default=None) is not None


def cold_baseline(cfg: DictConfig) -> bool:
    """Whether the cold target trains beside the warm one: `warmstart.baseline`, by default on
    without a budget and off under one."""
    asked = cfg.warmstart.baseline
    return (not budgeted(cfg)) if asked is None else bool(asked)


DEFAULT_PROBE_FRACTION = 1 / 16  # a probe's steps, of the target's, when no budget sizes them


def verify_check(cfg: DictConfig) -> VerifyCheck:
    """The check at the target: `verify.check`, by default whole target runs without a budget
    and, under one, what the budget's allocation chose (a rung, else probes)."""
    asked = cfg.verify.check
    if asked is not None:
        return VerifyCheck(asked)
    return VerifyCheck.rung if budgeted(cfg) else VerifyCheck.full


def check_steps(cfg: DictConfig) -> int:
    """The steps of one run of the check at the target: the target's, or a probe's."""
    steps = cfg.ladder.target_steps
    if verify_check(cfg) != VerifyCheck.probes:
        return steps
    fraction = cfg.verify.probe_fraction
    return max(1, round(steps * (DEFAULT_PROBE_FRACTION if fraction is None else fraction)))


def probe_steps(cfg: DictConfig) -> int | None:
    """A probe's steps when the check at the target is made of probes; None for whole runs."""
    return check_steps(cfg) if verify_check(cfg) == VerifyCheck.probes else None


def check_width(cfg: DictConfig) -> int:
    """The width the check at the target trains at: the rung's (`verify.width`, by default the
    widest ladder width), else the target's."""
    if verify_check(cfg) != VerifyCheck.rung:
        return int(cfg.ladder.target)
    width = cfg.verify.width
    return int(cfg.ladder.widths[-1] if width is None else width)


def sp_widths(cfg: DictConfig) -> list[int]:
    """The ladder widths the SP contrast runs at (`ladder.sp_widths`; null: every width)."""
    chosen = cfg.ladder.sp_widths
    widths = list(cfg.ladder.widths)
    return widths if chosen is None else [w for w in widths if w in set(chosen)]


def source_width(cfg: DictConfig) -> int:
    """The width of the model the warm start grows: `warmstart.source` read as a ladder width."""
    source, widths = str(cfg.warmstart.source), list(cfg.ladder.widths)
    if source == SourceModel.widest:
        return widths[-1]
    if source == SourceModel.proxy:
        return widths[0]
    return int(source)


def vocab_size(cfg: DictConfig) -> int:
    """`model.vocab_size`, which `resolve_vocabulary` reads from the corpus when it is null."""
    vocab = cfg.model.vocab_size
    if vocab is None:
        raise ValueError(
            "model.vocab_size is not resolved: resolve_vocabulary(cfg) reads it from the corpus "
            "(the pipeline does before any job)"
        )
    return int(vocab)


def with_vocabulary(cfg: DictConfig, placeholder: int = BYTE_VOCAB) -> DictConfig:
    """`cfg` itself when its vocabulary is resolved, else a copy with `placeholder` in its place:
    what the checks build their shapes from before the corpus is read (no shape depends on the
    vocabulary's size)."""
    if cfg.model.vocab_size is not None:
        return cfg
    out = copy.deepcopy(cfg)
    OmegaConf.set_readonly(out, False)
    out.model.vocab_size = placeholder
    return out


def target_depth(cfg: DictConfig) -> int:
    ladder = cfg.ladder
    return ladder.n_layer if ladder.target_n_layer is None else ladder.target_n_layer


def model_config(
    cfg: DictConfig, width: int, parametrization: str, hparams: dict, n_layer: int | None = None
) -> ModelConfig:
    """The ladder's model at `width` (and `n_layer`, default the ladder's depth), with the
    vocabulary `model.vocab_size` (resolved from the corpus before building: no I/O here)."""
    ladder = cfg.ladder
    vocab = vocab_size(cfg)
    depth = ladder.n_layer if n_layer is None else n_layer
    base = ladder.n_layer if ladder.base_n_layer is None else ladder.base_n_layer
    if cfg.model.kind == ModelKind.custom:
        model = cfg.model
        if not model.factory:
            raise ValueError(
                "model.factory: model=custom needs the function that builds the model, e.g. "
                "model.factory=my_package.model:build or model.factory=path/to/model.py:build"
            )
        return CustomConfig(
            factory=model.factory,
            vocab_size=vocab,
            seq_len=ladder.seq_len,
            n_layer=depth,
            d_model=width,
            parametrization=parametrization,
            base_d_model=ladder.widths[0],
            base_n_layer=None if base == depth else base,
            depth_alpha=ladder.depth_alpha,
            init=str(model.init),
            readout=model.readout,
            embeddings=tuple(model.embeddings),
            options=frozen_options(OmegaConf.to_container(model.options)),
            **{name: float(hparams[name]) for name in MODEL_HPARAMS},
        )
    return GPTConfig(
        vocab_size=vocab,
        seq_len=ladder.seq_len,
        n_layer=depth,
        d_model=width,
        d_head=ladder.d_head,
        mlp_ratio=ladder.mlp_ratio,
        parametrization=parametrization,
        base_d_model=ladder.widths[0],
        base_n_layer=None if base == depth else base,  # one config per model: None = own depth
        depth_alpha=ladder.depth_alpha,
        **{name: float(hparams[name]) for name in MODEL_HPARAMS},
    )


def run_config(
    cfg: DictConfig,
    width: int,
    parametrization: str,
    hparams: dict,
    steps: int,
    seed: int,
    n_layer: int | None = None,
) -> RunConfig:
    """The training run of one job: the ladder's shapes and schedule, these HPs and steps."""
    ladder = cfg.ladder
    optim = OptimConfig(
        lr=float(hparams["lr"]),
        weight_decay=float(hparams["weight_decay"]),
        warmup_steps=ladder.warmup_steps,
        schedule=str(ladder.schedule),
        decay_fraction=float(ladder.decay_fraction),
    )
    return RunConfig(
        model=model_config(cfg, width, parametrization, hparams, n_layer),
        optim=optim,
        steps=steps,
        batch_size=ladder.batch_size,
        seed=seed,
        eval_every=ladder.eval_every,
        eval_batches=ladder.eval_batches,
    )


def tunable(cfg: DictConfig) -> tuple[str, ...]:
    """The HPs that change the ladder's model: all of TUNABLE for the GPT; for a custom model
    the multipliers its factory takes or the tool applies, the init scales under init=mup."""
    if cfg.model.kind != ModelKind.custom:
        return TUNABLE
    shapes = with_vocabulary(cfg)  # which HPs a model takes does not depend on its vocabulary
    model = model_config(shapes, cfg.ladder.widths[0], "mup", dict(cfg.ladder.hparams))
    changes = custom.tunable(model) | {"lr", "weight_decay"}
    return tuple(name for name in TUNABLE if name in changes)


def model_source(cfg: DictConfig) -> str:
    """A hash of the ladder's model's source file ('' for the built-in GPT)."""
    return source_digest(model_config(cfg, cfg.ladder.widths[0], "mup", dict(cfg.ladder.hparams)))


def unused_search(cfg: DictConfig) -> list[str]:
    """Search ranges of HPs that do not change this model (the search leaves them out)."""
    return [name for name in cfg.ladder.search if name not in tunable(cfg)]
