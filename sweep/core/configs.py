"""The core's plain configs: the GPT's shape and scales, the optimizer, a run, the data source,
and the choices they name. Free of torch, like a transformers `configuration_*.py` beside its
`modeling_*.py`, so the pipeline's config schema, its `--help` and its tab completion load in
a blink; the modules that build and train from them import them from here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum, auto
from typing import TYPE_CHECKING

from sweep.core.mup_rules import PARAMETRIZATIONS

if TYPE_CHECKING:
    from sweep.core.models import ModelConfig


HEAD_SCALINGS = ("count", "size")


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 256  # byte-level by default; a token file sets its own
    seq_len: int = 128  # context length: rows of the position embedding
    n_layer: int = 2
    d_model: int = 64  # the width this model is built at
    d_head: int = 16  # head size at the base width
    mlp_ratio: float = 4.0  # MLP width = mlp_ratio * d_model
    head_scaling: str = "count"  # width grows the number of heads ("count") or the head size
    tie_embeddings: bool = False  # readout reuses the token embedding matrix
    parametrization: str = "mup"  # "mup" or "sp" (standard, PyTorch-style) for contrast
    base_d_model: int | None = None  # µP base width (the ladder's smallest); None: d_model
    # Initialisation (docs/methods.md §1): normal, std by role (`parametrization.init_std`).
    init_std: float = 1.0  # σ of hidden matrices: std = σ / sqrt(fan_in)
    input_std: float = 1.0  # σ_in: the std of token and position embeddings
    output_std: float = 1.0  # σ_out of the readout: std = σ_out / sqrt(d_base) (SP: / sqrt(d))
    zero_query: bool = True  # µP recommends zero query weights (uniform attention at init)
    zero_readout: bool = False  # zero readout: logits start at exactly 0
    # Forward multipliers, tuned on the proxy and carried unchanged to every width.
    alpha_in: float = 1.0  # embedding output multiplier
    alpha_out: float = 1.0  # readout multiplier (µP divides it by the width multiplier)
    alpha_attn: float = 1.0  # attention logit multiplier
    # Explicit dimensions off the µP ladder, for models grown by `sweep.grow.function_preserving`;
    # None: the ladder's value (d_mlp = mlp_ratio·d_model, n_heads and head size from head_scaling).
    mlp_width: int | None = None  # MLP hidden width
    head_count: int | None = None  # number of attention heads
    key_size: int | None = None  # per-head size of queries and keys
    value_size: int | None = None  # per-head size of values (attn.proj reads heads × this)
    # CompleteP depth parametrization (docs/methods.md §1): residual branches × (L_base/L)^α.
    base_n_layer: int | None = None  # depth of the tuned proxy; None: n_layer (multiplier 1)
    depth_alpha: float = 1.0  # α in [0.5, 1]; CompleteP's choice is 1

    def __post_init__(self) -> None:
        base = self.base_width
        for name in ("vocab_size", "seq_len", "n_layer", "d_model", "d_head"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"model.{name} must be a positive integer, got {getattr(self, name)}"
                )
        for name in ("mlp_width", "head_count", "key_size", "value_size", "base_n_layer"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value <= 0):
                raise ValueError(f"model.{name} must be a positive integer or None, got {value!r}")
        if not 0.5 <= self.depth_alpha <= 1.0:
            raise ValueError(f"model.depth_alpha must be in [0.5, 1], got {self.depth_alpha}")
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(
                f"model.parametrization must be one of {PARAMETRIZATIONS}, "
                f"got {self.parametrization!r}"
            )
        if self.head_scaling not in HEAD_SCALINGS:
            raise ValueError(
                f"model.head_scaling must be one of {HEAD_SCALINGS}, got {self.head_scaling!r}"
            )
        if base <= 0 or self.d_model < base:
            raise ValueError(
                f"model.d_model ({self.d_model}) must be at least model.base_d_model ({base}): "
                "the µP base is the smallest width of the ladder"
            )
        if base % self.d_head:
            raise ValueError(
                f"model.base_d_model ({base}) must be divisible by model.d_head ({self.d_head})"
            )
        divisor = self.d_head if self.head_scaling == "count" else base // self.d_head
        derived = (  # does a dimension still follow from d_model through this divisor?
            self.head_count is None
            if self.head_scaling == "count"
            else self.key_size is None or self.value_size is None
        )
        if derived and self.d_model % divisor:
            what = "model.d_head" if self.head_scaling == "count" else "the number of heads"
            raise ValueError(
                f"model.d_model ({self.d_model}) must be divisible by {what} ({divisor}) "
                f"with head_scaling={self.head_scaling!r}"
            )
        if self.mlp_width is None and (self.mlp_ratio <= 0 or (self.mlp_ratio * self.d_model) % 1):
            raise ValueError(
                f"model.mlp_ratio ({self.mlp_ratio}) times d_model ({self.d_model}) "
                "must be a positive integer"
            )
        for name in ("init_std", "input_std", "output_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"model.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def base_width(self) -> int:
        return self.d_model if self.base_d_model is None else self.base_d_model

    @property
    def head_size(self) -> int:
        """The ladder's head size at this width (the default of `d_key` and `d_value`)."""
        if self.head_scaling == "count":
            return self.d_head
        return self.d_model // (self.base_width // self.d_head)

    @property
    def n_heads(self) -> int:
        if self.head_count is not None:
            return self.head_count
        if self.head_scaling == "count":
            return self.d_model // self.d_head
        return self.base_width // self.d_head

    @property
    def d_key(self) -> int:
        return self.head_size if self.key_size is None else self.key_size

    @property
    def d_value(self) -> int:
        return self.head_size if self.value_size is None else self.value_size

    @property
    def d_mlp(self) -> int:
        return int(self.mlp_ratio * self.d_model) if self.mlp_width is None else self.mlp_width

    @property
    def depth_base(self) -> int:
        return self.n_layer if self.base_n_layer is None else self.base_n_layer

    def at_width(self, d_model: int) -> GPTConfig:
        """The ladder's model at another width, keeping the µP base and the depth settings.

        The explicit dimensions (`mlp_width`, `head_count`, `key_size`, `value_size`) are
        dropped: they pin one grown model's shape, which does not scale with the ladder.
        """
        return replace(
            self,
            d_model=d_model,
            base_d_model=self.base_width,
            mlp_width=None,
            head_count=None,
            key_size=None,
            value_size=None,
        )

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Schedule(StrEnum):
    """The LR after warmup: held constant, cosine-decayed to `min_lr_ratio`·η, or
    warmup-stable-decay: held, then decayed linearly to `min_lr_ratio`·η over the run's last
    `decay_fraction` (a WSD run branched from a longer one's stable phase is a run of its own
    length: `train(..., branch_from=...)`)."""

    constant = auto()
    cosine = auto()
    wsd = auto()


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3e-3  # η: the base-width Adam LR; µP divides it by m for hidden matrices
    weight_decay: float = 0.0  # decoupled (AdamW); µP keeps lr·wd constant across widths
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    scale_eps: bool = False  # µP refinement: hidden-matrix ε divided by m
    warmup_steps: int = 0
    schedule: str = "cosine"  # after warmup: "constant" or cosine decay to min_lr_ratio·η
    min_lr_ratio: float = 0.1
    grad_clip: float = 0.0  # global gradient-norm clip; 0 disables
    decay_fraction: float = 0.2  # wsd: the share of the run's steps spent decaying
    warmup_from: float = 0.0  # the LR factor warmup rises from (a warm start: its source's last)

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if self.schedule not in set(Schedule):
            choices = ", ".join(Schedule)
            raise ValueError(f"optim.schedule must be one of {choices}, got {self.schedule!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        for name in ("weight_decay", "eps", "grad_clip", "min_lr_ratio"):
            if getattr(self, name) < 0:
                raise ValueError(f"optim.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.decay_fraction <= 1.0:
            raise ValueError(f"optim.decay_fraction must be in (0, 1], got {self.decay_fraction}")
        if not 0.0 <= self.warmup_from <= 1.0:
            raise ValueError(f"optim.warmup_from must be in [0, 1], got {self.warmup_from}")


@dataclass(frozen=True)
class RunConfig:
    """What a run computes. Where and how it runs (device, precision, processes) is the
    `sweep.core.hardware.Execution` and `World` handed to `train` beside it."""

    model: ModelConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    steps: int = 200
    batch_size: int = 16  # the global batch: split over processes, then into micro-batches
    seed: int = 0  # seeds the init and the batch order
    eval_every: int = 50  # validation every this many steps, and at the end
    eval_batches: int = 4
    diverge_factor: float = 2.0  # a loss above this × the first loss counts as divergence

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "eval_batches"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"run.{name} must be a positive integer, got {getattr(self, name)}"
                )
        if self.diverge_factor <= 1:
            raise ValueError(f"run.diverge_factor must be > 1, got {self.diverge_factor}")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.model.seq_len

    @property
    def flops(self) -> int:
        """Its training FLOPs (docs/methods.md §7)."""
        from sweep.core.flops import training_flops  # reads the models: not at import

        return training_flops(self.model, self.steps * self.tokens_per_step)

    def to_dict(self) -> dict:
        return asdict(self)


class Source(StrEnum):
    """Where the tokens come from: this Python's stdlib source (code), its documentation's topic
    pages (English prose), a text file, or a token file."""

    stdlib = auto()
    docs = auto()
    text = auto()
    tokens = auto()


@dataclass(frozen=True)
class DataConfig:
    source: str = "stdlib"  # "stdlib" | "text" | "tokens"
    path: str | None = None  # required for text/tokens
    val_fraction: float = 0.1  # share of files/blocks held out for validation
    vocab_size: int | None = None  # tokens only; None = max token + 1
    cache_dir: str | None = None  # None = $MUSWEEP_CACHE or ~/.cache/musweep
