"""A user's model, made µP from the shapes `mup` infers (docs/methods.md §10).

The user writes a factory, `build(width, depth, vocab_size, seq_len, **keywords) -> nn.Module`,
mapping token ids (B, T) to logits (B, T, vocab_size). The tool builds it at the µP base width
and at twice that width; `mup`'s `set_base_shapes` compares the two and marks every dimension
that changed as a width dimension. From those shapes each parameter gets a role:

| parameter                                   | role   | init (init=mup)        | Adam LR         |
|---------------------------------------------|--------|------------------------|-----------------|
| two width dimensions                        | hidden | σ / sqrt(fan_in)       | η / m_fan_in    |
| the readout's weight (`mup.MuReadout`, or   | output | σ_out / sqrt(fan_in_b) | η               |
|   `model.readout`, or width fan-in only)    |        |   (SP: / sqrt(fan_in)) |                 |
| one width dimension otherwise (embeddings)  | input  | σ_in                   | η               |
| vectors (gains, biases), fixed-size tensors | vector | the factory's          | η, no decay     |

m_fan_in is the parameter's own fan-in width multiplier (mup's `width_mult`), so the LRs are
`mup.MuAdamW`'s; decoupled weight decay is × m_fan_in on hidden matrices (lr·wd constant), as
there. CompleteP's depth factors multiply the hidden LR and decay as for the built-in GPT.

Forward multipliers: the factory takes `alpha_in`, `alpha_out`, `alpha_attn` and CompleteP's
`residual_multiplier` if its signature names them (not through **kwargs, which may drop them).
Otherwise the tool applies α_in to the embeddings' outputs and α_out to the readout (times a
`MuReadout`'s `output_mult`, or, with µP's 1/m, on the input of the `model.readout` module
through a pre-hook, as MuReadout does); α_attn needs the factory. A `MuReadout`'s
width multiplier is frozen to a number at build time, so `torch.compile` and FSDP, which do not
carry mup's `infshape` attribute, see the same model (microsoft/mup#60).

In SP the same factory is built with every width multiplier 1: no µP rule, the readout at
1/sqrt(fan_in). Pure: building calls only the user's factory.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from mup import MuReadout, make_base_shapes, set_base_shapes
from mup.infshape import InfShape
from torch import nn

from sweep.core import mup_rules as R
from sweep.core.mup_rules import PARAMETRIZATIONS, Role

MULTIPLIERS = ("alpha_in", "alpha_out", "alpha_attn")  # tuned forward multipliers
TOOL_APPLIED = ("alpha_in", "alpha_out")  # applied by the tool when the factory does not take them
INIT_HPARAMS = ("init_std", "input_std", "output_std")  # the tool's init (init=mup) reads them
INITS = ("mup", "own")  # the tool draws every matrix by its role, or keeps the factory's init
DEPTH_KEYWORD = "residual_multiplier"


@dataclass(frozen=True)
class CustomConfig:
    """A user model at one width and depth: the factory, and what the tool passes to it."""

    factory: str  # "package.module:function" or "path/to/file.py:function"
    vocab_size: int = 256
    seq_len: int = 128
    n_layer: int = 2
    d_model: int = 64  # the width passed to the factory
    parametrization: str = "mup"
    base_d_model: int | None = None  # the µP base width; None: d_model
    base_n_layer: int | None = None  # CompleteP's base depth; None: n_layer
    depth_alpha: float = 1.0
    init: str = "mup"
    init_std: float = 1.0
    input_std: float = 1.0
    output_std: float = 1.0
    alpha_in: float = 1.0
    alpha_out: float = 1.0
    alpha_attn: float = 1.0
    readout: str | None = None  # the module whose output is the logits, if not a MuReadout
    embeddings: tuple[str, ...] = ()  # input modules; (): every nn.Embedding
    options: tuple[tuple[str, Any], ...] = ()  # more keyword arguments for the factory

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "n_layer", "d_model"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"model.{name} must be a positive integer, got {getattr(self, name)}"
                )
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(
                f"model.parametrization must be one of {PARAMETRIZATIONS}, "
                f"got {self.parametrization!r}"
            )
        if self.init not in INITS:
            raise ValueError(f"model.init must be one of {INITS}, got {self.init!r}")
        if self.d_model < self.base_width:
            raise ValueError(
                f"model.d_model ({self.d_model}) must be at least the µP base width "
                f"({self.base_width})"
            )

    @property
    def base_width(self) -> int:
        return self.d_model if self.base_d_model is None else self.base_d_model

    @property
    def depth_base(self) -> int:
        return self.n_layer if self.base_n_layer is None else self.base_n_layer

    def at_width(self, d_model: int) -> CustomConfig:
        return replace(self, d_model=d_model, base_d_model=self.base_width)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return out | {"embeddings": list(self.embeddings), "options": dict(self.options)}

    @classmethod
    def from_dict(cls, data: dict) -> CustomConfig:
        data = dict(data)
        data["embeddings"] = tuple(data.get("embeddings") or ())
        data["options"] = frozen_options(data.get("options") or {})
        return cls(**data)


def frozen_options(options: dict | list) -> tuple[tuple[str, Any], ...]:
    """Factory keywords (a dict, or the (key, value) pairs a record stores) as a hashable,
    ordered tuple; list values become tuples."""
    pairs = options.items() if isinstance(options, dict) else options
    out = []
    for key, value in sorted(pairs):
        items = value if isinstance(value, (list, tuple)) else [value]
        if not all(isinstance(v, (bool, int, float, str)) or v is None for v in items):
            raise ValueError(
                f"model.options.{key}: a factory keyword must be a number, a string, a boolean, "
                f"null or a list of them; got {value!r}"
            )
        out.append((str(key), tuple(value) if isinstance(value, (list, tuple)) else value))
    return tuple(out)


# --- the factory ------------------------------------------------------------------------------


@functools.cache
def load_factory(spec: str) -> Callable[..., nn.Module]:
    """The function named by `model.factory`; ValueError saying what to change if it cannot be."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr.isidentifier():
        raise ValueError(
            f"model.factory must be 'package.module:function' or 'path/to/file.py:function', "
            f"got {spec!r}"
        )
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise ValueError(f"model.factory: no file {target}")
            name = "musweep_model_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
            module = sys.modules.get(name)
            if module is None:
                loader = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(loader)
                sys.modules[name] = module
                try:
                    loader.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
        else:
            module = importlib.import_module(target)
    except ValueError:
        raise
    except ModuleNotFoundError as e:
        if e.name is None or not _is_prefix(e.name, target):
            raise ValueError(f"model.factory: importing {target} failed: {import_cause(e)}") from e
        raise ValueError(
            f"model.factory: cannot import {target} (no module {e.name!r}); make it importable "
            "by the jobs (installed, or on PYTHONPATH) or give its file path"
        ) from e
    except Exception as e:  # the module was found and failed while importing: say why
        raise ValueError(f"model.factory: importing {target} failed: {import_cause(e)}") from e
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"model.factory: {target} has no function {attr!r}")
    return factory


def _is_prefix(name: str, target: str) -> bool:
    """Whether the missing module is the factory's own module or a package above it."""
    return target == name or target.startswith(name + ".")


def import_cause(error: BaseException) -> str:
    """The innermost exception behind an import failure, on one line: libraries that import
    lazily (`transformers`) wrap the real cause, which is the part a user can act on."""
    seen = {id(error)}
    while (inner := error.__cause__ or error.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        error = inner
    text = " ".join(str(error).split())
    cause = f"{type(error).__name__}: {text}" if text else type(error).__name__
    if "torchvision" in text:
        cause += (
            f" (torchvision {_version('torchvision')} does not match torch {_version('torch')}; "
            "install a matching pair, as constraints/cpu.txt pins)"
        )
    return cause


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def source_digest(spec: str) -> str:
    """A hash of the source file that defines the factory ('' when it has none): results of a
    model whose code has changed are not mixed with the old model's."""
    factory = load_factory(spec)
    try:
        path = inspect.getsourcefile(factory)
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path else ""
    except (OSError, TypeError):
        return ""


def factory_keywords(spec: str) -> set[str] | None:
    """The keyword names the factory takes; None when it takes any (**kwargs)."""
    parameters = inspect.signature(load_factory(spec)).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def takes(spec: str, keyword: str) -> bool:
    """Whether the factory accepts `keyword` (named, or through **kwargs)."""
    names = factory_keywords(spec)
    return names is None or keyword in names


def names(spec: str, keyword: str) -> bool:
    """Whether the factory names `keyword` in its signature. The tuned multipliers and
    CompleteP's multiplier reach a factory only so: one that passed them on through **kwargs to
    something that ignores them would tune nothing, silently."""
    return keyword in inspect.signature(load_factory(spec)).parameters


def tunable(cfg: CustomConfig) -> set[str]:
    """The model HPs that change this model: what the factory takes, what the tool applies."""
    changed = {m for m in MULTIPLIERS if m in TOOL_APPLIED or names(cfg.factory, m)}
    return changed | (set(INIT_HPARAMS) if cfg.init == "mup" else set())


def depth(cfg: CustomConfig) -> R.Depth:
    """L / L_base and α, for the table's depth rules."""
    return R.Depth(cfg.n_layer / cfg.depth_base, cfg.depth_alpha)


def residual_multiplier(cfg: CustomConfig) -> float:
    """CompleteP's (L_base / L)^α (docs/methods.md §1)."""
    return R.residual_multiplier(depth(cfg))


REQUIRED = ("width", "depth", "vocab_size", "seq_len")  # what every factory is called with


def call_factory(cfg: CustomConfig, width: int) -> nn.Module:
    """The factory's model at `width` and the config's depth, as the factory initialises it."""
    missing = [name for name in REQUIRED if not takes(cfg.factory, name)]
    if missing:
        raise ValueError(
            f"model.factory: {cfg.factory} must take {', '.join(REQUIRED)} as keywords "
            f"(it takes {', '.join(sorted(factory_keywords(cfg.factory))) or 'none'})"
        )
    keywords = dict(cfg.options)
    for name in keywords:
        if name in (*MULTIPLIERS, DEPTH_KEYWORD, *REQUIRED):
            raise ValueError(f"model.options.{name}: musweep sets {name} itself")
        if not takes(cfg.factory, name):
            raise ValueError(
                f"model.options.{name}: the factory {cfg.factory} takes no keyword {name!r} "
                f"(it takes {', '.join(sorted(factory_keywords(cfg.factory)))})"
            )
    keywords |= {m: getattr(cfg, m) for m in MULTIPLIERS if names(cfg.factory, m)}
    if names(cfg.factory, DEPTH_KEYWORD):
        keywords[DEPTH_KEYWORD] = residual_multiplier(cfg)
    elif cfg.n_layer != cfg.depth_base:
        raise ValueError(
            f"model.factory: a model {cfg.n_layer} deep with its HPs tuned at depth "
            f"{cfg.depth_base} needs CompleteP's branch multiplier; let the factory take "
            f"{DEPTH_KEYWORD}= (multiply each residual branch by it)"
        )
    try:
        model = load_factory(cfg.factory)(
            width=width, depth=cfg.n_layer, vocab_size=cfg.vocab_size, seq_len=cfg.seq_len,
            **keywords,
        )  # fmt: skip
    except Exception as e:
        raise ValueError(
            f"model.factory {cfg.factory} raised {type(e).__name__} at width {width}: {e}"
        ) from e
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"model.factory {cfg.factory} returned a {type(model).__name__}, not a torch.nn.Module"
        )
    return model


# --- shapes and roles -------------------------------------------------------------------------


def shape_key(cfg: CustomConfig) -> CustomConfig:
    """`cfg` with every tuned value at its default: what the model's shapes depend on."""
    neutral = {name: 1.0 for name in (*MULTIPLIERS, *INIT_HPARAMS)}
    return replace(cfg, parametrization="mup", **neutral)


def skeleton(build: Callable[[], nn.Module]) -> nn.Module:
    """A model built for its shapes only: on the meta device (no memory, no data), or on the CPU
    for a factory that cannot build there; the global RNG is left as it was either way."""
    with torch.random.fork_rng(devices=[]):
        try:
            with torch.device("meta"):
                return build()
        except ValueError:
            raise
        except Exception:  # e.g. a factory reading a value back (.item()) while it builds
            return build()


@functools.cache
def _shapes_at(cfg: CustomConfig, width: int) -> dict[str, tuple[int, ...]]:
    model = skeleton(lambda: call_factory(cfg, width))
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def check_builds_at(cfg: CustomConfig, widths: list[int]) -> None:
    """ValueError naming the width unless the factory builds the model at each (shapes only)."""
    for width in widths:
        _shapes_at(shape_key(cfg), width)


def base_shapes(cfg: CustomConfig) -> dict[str, InfShape]:
    """mup's base shapes: the model at the base width against the model at twice that width."""
    key = replace(shape_key(cfg), d_model=cfg.base_width, base_d_model=None)
    base, delta = _shapes_at(key, cfg.base_width), _shapes_at(key, 2 * cfg.base_width)
    if base.keys() != delta.keys():
        changed = sorted(base.keys() ^ delta.keys())[:4]
        raise ValueError(
            f"model.factory: the model's parameters are named differently at widths "
            f"{cfg.base_width} and {2 * cfg.base_width} (e.g. {changed}); the same parameters "
            "must exist at every width"
        )
    if base == delta:
        raise ValueError(
            f"model.factory ignores width: every parameter has the same shape at widths "
            f"{cfg.base_width} and {2 * cfg.base_width}; build the model `width` wide"
        )
    return make_base_shapes(base, delta)


def _modules_named(model: nn.Module, names: list[str], field: str) -> list[nn.Module]:
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules:
            near = [n for n in modules if n and n.split(".")[-1] == name.split(".")[-1]][:3]
            hint = f"; did you mean {', '.join(near)}?" if near else ""
            raise ValueError(f"model.{field}: the model has no module {name!r}{hint}")
    return [modules[name] for name in names]


def readout_modules(model: nn.Module, cfg: CustomConfig) -> list[nn.Module]:
    """The readout: every `mup.MuReadout`, or the module `model.readout` names."""
    if cfg.readout is not None:
        (module,) = _modules_named(model, [cfg.readout], "readout")
        if not isinstance(getattr(module, "weight", None), torch.Tensor):
            raise ValueError(f"model.readout: module {cfg.readout!r} has no weight matrix")
        return [module]
    return [m for m in model.modules() if isinstance(m, MuReadout)]


def embedding_modules(model: nn.Module, cfg: CustomConfig) -> list[nn.Module]:
    if cfg.embeddings:
        return _modules_named(model, list(cfg.embeddings), "embeddings")
    return [m for m in model.modules() if isinstance(m, nn.Embedding)]


def is_hf_conv1d(module: nn.Module) -> bool:
    """Hugging Face's `Conv1D` (GPT-2's projections): a linear layer whose weight is stored
    (in, out), recognised without importing transformers."""
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__ == "Conv1D"
        and isinstance(weight, torch.Tensor)
        and weight.ndim == 2
        and weight.shape[1] == getattr(module, "nf", None)
    )


LAID_OUT = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)  # weight (out, in, ...)
LOOKUPS = (nn.Embedding, nn.EmbeddingBag)
UNREAD = -1  # a matrix no layer lays out


def layer_fan_in_axis(module: nn.Module, local: str) -> int | None:
    """The fan-in axis of the matrix `local` of `module`, from what the layer computes: 1 for
    `nn.Linear`, convolutions and attention's projections (out, in, ...), 0 for Hugging Face's
    `Conv1D` weight (in, out), None for an embedding (a lookup: no fan-in), UNREAD otherwise."""
    if isinstance(module, LOOKUPS):
        return None
    if is_hf_conv1d(module):
        return 0 if local == "weight" else 1
    if isinstance(module, (*LAID_OUT, nn.MultiheadAttention)):
        return 1
    return UNREAD


def matrix_layouts(model: nn.Module) -> dict[str, int | None]:
    """Each matrix's `layer_fan_in_axis` by parameter name (a tied one under its first owner)."""
    axes: dict[str, int | None] = {}
    for prefix, module in model.named_modules():
        for local, p in module.named_parameters(recurse=False):
            if p.ndim >= 2:
                axes.setdefault(
                    f"{prefix}.{local}" if prefix else local, layer_fan_in_axis(module, local)
                )
    return axes


def fan_in_axes(model: nn.Module) -> dict[str, int | None]:
    """Each matrix's fan-in axis, by parameter name: `layer_fan_in_axis`, a matrix no layer lays
    out read as (out, in, ...) (axis 1; `unread_layouts` names them)."""
    return {name: 1 if axis == UNREAD else axis for name, axis in matrix_layouts(model).items()}


def unread_layouts(model: nn.Module) -> list[str]:
    """Matrices whose layout the tool assumes (out, in, ...) without a layer that says so: a
    bare parameter multiplied in a forward it cannot read."""
    return [name for name, axis in matrix_layouts(model).items() if axis == UNREAD]


def axis_of(axes: dict[str, int | None], name: str) -> int:
    """A matrix's fan-in axis for the width test: (out, in, ...) where no layer says."""
    axis = axes.get(name, 1)
    return 1 if axis is None else axis


def fan_in_of(shape: tuple[int, ...], axis: int | None) -> int:
    """The inputs one output coordinate sums over: the fan-in axis times any kernel dims."""
    return math.prod(shape[1:]) if axis in (None, 1) else shape[axis] * math.prod(shape[2:])


def roles(model: nn.Module, cfg: CustomConfig) -> dict[str, tuple[Role, float]]:
    """Every parameter's role and fan-in width multiplier (1 in SP), by name (module table)."""
    shapes = base_shapes(cfg)
    readouts = {id(m.weight) for m in readout_modules(model, cfg)}
    embeddings = {id(p) for m in embedding_modules(model, cfg) for p in m.parameters()}
    axes = fan_in_axes(model)
    out = {}
    for name, p in model.named_parameters():
        if name not in shapes:
            raise ValueError(f"model.factory: parameter {name} is not in the base model")
        inf = InfShape(shapes[name])
        n = inf.ninf()
        if p.ndim < 2 or n == 0:
            role = Role.VECTOR
        elif n == 2:
            role = Role.HIDDEN
        elif id(p) in embeddings:
            role = Role.INPUT  # a readout tied to the embedding keeps the embedding's init
        elif id(p) in readouts or inf[axis_of(axes, name)].isinf():  # width in: readout-like
            role = Role.OUTPUT
        else:
            role = Role.INPUT
        if n > 2:
            raise ValueError(f"model.factory: parameter {name} has {n} width dimensions (µP: 2)")
        mult = fan_in_mult(cfg, inf, p) if role in (Role.HIDDEN, Role.OUTPUT) else 1.0
        out[name] = (role, mult)
    return out


def fan_in_mult(cfg: CustomConfig, inf: InfShape, p: torch.Tensor) -> float:
    """A matrix's width multiplier as mup's `width_mult` reads it, along its last width
    dimension (the fan-in of a hidden matrix or a readout); 1 in SP or without one."""
    if cfg.parametrization != "mup" or p.ndim < 2 or inf.main_idx is None:
        return 1.0
    return p.shape[inf.main_idx] / inf[inf.main_idx].base_dim


def width_to_fixed(model: nn.Module, cfg: CustomConfig) -> list[tuple[str, int]]:
    """Linear layers (`nn.Linear`, Hugging Face's `Conv1D`) from a width to a fixed size that
    are no declared readout, with that size: readout-shaped (µP gives them the readout's rule)."""
    shapes, axes = base_shapes(cfg), fan_in_axes(model)
    declared = {id(m) for m in readout_modules(model, cfg)}
    name_of = parameter_names(model)
    found = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        linear = isinstance(module, nn.Linear) or is_hf_conv1d(module)
        if not linear or id(module) in declared or not isinstance(weight, torch.Tensor):
            continue
        key = name_of.get(id(weight))
        if key is None or key not in shapes:
            continue
        axis = axis_of(axes, key)
        inf = shapes[key]
        if inf[axis].isinf() and not inf[1 - axis].isinf():
            found.append((name, int(weight.shape[1 - axis])))
    return found


def unidentified_readouts(model: nn.Module, cfg: CustomConfig) -> list[str]:
    """Linear layers from a width to the vocabulary that are no declared readout, those outside
    the blocks first (an inner size that happens to equal the vocabulary's is no readout)."""
    blocks = residual_stream_names(model)
    found = [name for name, size in width_to_fixed(model, cfg) if size == cfg.vocab_size]
    return sorted(found, key=lambda name: any(name.startswith(f"{b}.") for b in blocks))


def bottlenecks(model: nn.Module, cfg: CustomConfig) -> list[tuple[str, int]]:
    """Linear layers from a width to a fixed size besides the readout (the declared one, else
    the likeliest undeclared one): an inner size that does not grow with width (the tutorial's
    feed-forward of 2048)."""
    modules = dict(model.named_modules())
    readout = readout_modules(model, cfg) or [
        modules[name] for name in unidentified_readouts(model, cfg)[:1]
    ]
    weights = {id(m.weight) for m in readout}
    return [
        (n, size) for n, size in width_to_fixed(model, cfg) if id(modules[n].weight) not in weights
    ]


# --- the µP model -----------------------------------------------------------------------------


def logits_of(output: Any) -> Any:
    """The logits of a model's output: the tensor itself, the first element of a tuple or list
    (nanoGPT's `(logits, loss)`), or an output object's `.logits` (Hugging Face's)."""
    if isinstance(output, (tuple, list)) and output:
        return output[0]
    return getattr(output, "logits", output)


def _logits_only(_module: nn.Module, _inputs: Any, output: Any) -> Any:
    return logits_of(output)


class ScaleOutput:
    """A forward hook multiplying a module's output by a constant (α_in on an embedding)."""

    def __init__(self, factor: float):
        self.factor = factor

    def __call__(self, _module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return output * self.factor


class ScaleInput:
    """A forward pre-hook multiplying a module's input by a constant: the readout's α_out/m,
    applied where `mup.MuReadout` applies it (before the matmul, so a bias stays unscaled)."""

    def __init__(self, factor: float):
        self.factor = factor

    def __call__(self, _module: nn.Module, args: tuple) -> tuple:
        return (args[0] * self.factor, *args[1:])


def init_std(
    cfg: CustomConfig, role: Role, shape: tuple[int, ...], mult: float, axis: int | None = 1
) -> float:
    """The tool's init (init=mup) of a matrix by its role; `mult` its fan-in multiplier,
    `axis` its fan-in axis (`fan_in_axes`)."""
    if role is Role.VECTOR:
        raise ValueError(f"role {role} has no init std (vectors keep the factory's init)")
    return R.init_std(
        role, fan_in_of(shape, axis), mult, sigma=cfg.init_std, sigma_in=cfg.input_std,
        sigma_out=cfg.output_std,
    )  # fmt: skip


def build_custom(cfg: CustomConfig) -> nn.Module:
    """The user's model at `cfg.d_model`, with µP's (or SP's) init and forward multipliers."""
    model = call_factory(cfg, cfg.d_model)
    model.register_forward_hook(_logits_only)
    shapes = base_shapes(cfg)
    # mup's rescaling of the factory's init: biases of width fan-in × sqrt(m), as PyTorch draws
    # them at 1/sqrt(fan_in); the tool's init (init=mup) then redraws every matrix
    if cfg.parametrization == "mup":
        set_base_shapes(model, shapes, rescale_params=True, do_assert=False)
    else:
        set_base_shapes(model, None, rescale_params=False, do_assert=False)
    by_name = roles(model, cfg)
    keep = set()  # a MuReadout drawn at zero keeps its zeros
    name_of = parameter_names(model)
    for module in readout_modules(model, cfg):
        inf = InfShape(shapes.get(name_of.get(id(module.weight), ""), ()))
        mult = fan_in_mult(cfg, inf, module.weight) if len(inf) == 2 else 1.0
        alpha = 1.0 if names(cfg.factory, "alpha_out") else cfg.alpha_out
        if isinstance(module, MuReadout):
            module.width_mult = functools.partial(float, mult)  # a number: compile, FSDP
            module.output_mult *= alpha
            if module.readout_zero_init:
                keep.add(id(module.weight))
        else:
            module.register_forward_pre_hook(ScaleInput(R.readout_multiplier(alpha, mult)))
    if not names(cfg.factory, "alpha_in") and cfg.alpha_in != 1.0:
        for module in embedding_modules(model, cfg):
            module.register_forward_hook(ScaleOutput(cfg.alpha_in))
    if cfg.init == "mup":
        axes = fan_in_axes(model)
        with torch.no_grad():
            for name, p in model.named_parameters():
                role, mult = by_name[name]
                if role is not Role.VECTOR and id(p) not in keep:
                    p.normal_(0.0, init_std(cfg, role, tuple(p.shape), mult, axes.get(name, 1)))
    return model


def parameter_names(model: nn.Module) -> dict[int, str]:
    """Each parameter's name by its id (a tied one under its first name)."""
    return {id(p): name for name, p in model.named_parameters()}


@functools.cache
def _non_embedding_params(cfg: CustomConfig) -> int:
    model = skeleton(lambda: call_factory(cfg, cfg.d_model))
    embeddings = {id(p) for m in embedding_modules(model, cfg) for p in m.parameters()}
    readouts = {id(m.weight) for m in readout_modules(model, cfg)}
    counted = (p for p in model.parameters() if id(p) not in embeddings or id(p) in readouts)
    return sum(p.numel() for p in counted)


def non_embedding_params(cfg: CustomConfig) -> int:
    """Parameters outside the embedding tables (a readout tied to one counts: it multiplies)."""
    return _non_embedding_params(shape_key(cfg))


def readout_hint(model: nn.Module, cfg: CustomConfig, name: str) -> str:
    """How to make the undeclared readout `name` µP: MuSharedReadout where it is tied to an
    embedding (MuReadout would untie it), MuReadout otherwise, or naming it."""
    module = dict(model.named_modules())[name]
    tied = any(module.weight is m.weight for m in embedding_modules(model, cfg))
    kind = "mup.MuSharedReadout (it is tied to the embedding)" if tied else "mup.MuReadout"
    return (
        f"{name} maps the width to the vocabulary: it is the readout, and a plain layer there "
        f"grows with width; name it with model.readout={name} so that musweep applies µP's "
        f"1/width to it, or make it a {kind}"
    )


def refusal_hint(cfg: CustomConfig, offenders: list[dict[str, Any]]) -> str | None:
    """What to change in a model whose outputs grow with width (`offenders`: module, step,
    slope, steepest first), read off the model: every defect it shows, joined; None when
    nothing specific shows."""
    model = build_custom(cfg)
    hints = []
    unnamed = unidentified_readouts(model, cfg)
    if unnamed and cfg.readout is None:
        hints.append(readout_hint(model, cfg, unnamed[0]))
    if narrow := bottlenecks(model, cfg):
        name, size = narrow[0]
        hints.append(
            f"{name} maps the width to a fixed {size}: a bottleneck inside the model that µP "
            "cannot scale (only the readout may map the width to a fixed size); make that size "
            "grow with the width (e.g. a feed-forward of 4 × width)"
        )
    if cfg.init == "own" and any(o["step"] == 0 for o in offenders):
        hints.append(
            "the factory's init ignores fan-in: let musweep draw it (model.init=mup), or draw "
            "each matrix with std ∝ 1/sqrt(fan_in)"
        )
    if not hints and offenders and offenders[0]["module"] in residual_stream_names(model):
        hints.append(
            f"the residual stream (the output of {offenders[0]['module']}) grows with width "
            "more than any layer's: the model scales it by a width-dependent factor outside "
            "its layers (an embedding × sqrt(width)?); µP keeps it at order 1 (the embedding's "
            "multiplier is model.alpha_in, tuned)"
        )
    return "; and ".join(hints) or None


def residual_stream_names(model: nn.Module) -> set[str]:
    """The names of the blocks of the model's outermost `nn.ModuleList`, whose outputs are the
    residual stream between blocks (the shallowest list, the longest of those)."""
    lists = [
        (n, m) for n, m in model.named_modules() if n and isinstance(m, nn.ModuleList) and len(m)
    ]
    if not lists:
        return set()
    name, blocks = min(lists, key=lambda item: (item[0].count("."), -len(item[1])))
    return {f"{name}.{i}" for i in range(len(blocks))}


def check_custom(cfg: CustomConfig) -> None:
    """ValueError, one line naming what to change, for a model the pipeline cannot use: a
    factory that does not import or build, logits of the wrong shape, no width dimension, a
    readout that cannot be identified. (Whether its µP holds is the coordinate check's call.)"""
    model = build_custom(cfg.at_width(cfg.base_width))
    tokens = torch.randint(0, cfg.vocab_size, (2, min(cfg.seq_len, 8)))
    with torch.no_grad():
        try:
            logits = model(tokens)
        except Exception as e:
            raise ValueError(
                f"model.factory: the model fails on token ids of shape (2, {tokens.size(1)}): "
                f"{type(e).__name__}: {e}"
            ) from e
    expected = (2, tokens.size(1), cfg.vocab_size)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"model.factory: the model must map token ids (B, T) to logits (B, T, vocab_size) "
            f"= {expected} (or a tuple or an output object holding them), got {got}"
        )
    by_name = roles(model, cfg)
    if not readout_modules(model, cfg) and not unidentified_readouts(model, cfg):
        outputs = [name for name, (role, _) in by_name.items() if role is Role.OUTPUT]
        if not outputs:
            raise ValueError(
                "model.readout: cannot identify the readout (no mup.MuReadout, no linear layer "
                "from the width to the vocabulary); use mup.MuReadout or MuSharedReadout, or "
                "name its module with model.readout=<name>"
            )
