"""Every config field has its domain checked before any job: the schema, walked field by field,
is covered by `validate`'s checks or exempt with a reason, and each check refuses a bad value
with a one-line message naming the field."""

import dataclasses
import os
import re
import subprocess
import sys
import typing
import warnings
from pathlib import Path

import numpy as np
import pytest

from sweep.config import EXEMPT, FIELD_CHECKS, PipelineConfig, compose_config, validate

ROOT = Path(__file__).resolve().parents[1]
LLAMA = ROOT / "examples" / "llama.py:build"
LADDERS = ["gpt_tiny", "gpt_small", "gpt_medium", "gpt_deep"]


def leaves(schema: type, prefix: str = "") -> list[str]:
    """The dotted names of a schema's leaf fields; a nested dataclass is walked into, and any
    other type (a list, a dict of ranges) is one field."""
    hints = typing.get_type_hints(schema)
    names = []
    for f in dataclasses.fields(schema):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            names += leaves(kind, f"{prefix}{f.name}.")
        else:
            names.append(f"{prefix}{f.name}")
    return names


def test_the_walk_finds_nested_fields_and_the_search_dict_whole():
    names = leaves(PipelineConfig)
    assert "ladder.hparams.lr" in names and "tune.grace_s" in names and "seed" in names
    assert "ladder.search" in names and not any(n.startswith("ladder.search.") for n in names)
    assert "ladder" not in names and "ladder.hparams" not in names


def test_every_field_is_checked_or_exempt_with_a_reason():
    names = set(leaves(PipelineConfig))
    assert not set(FIELD_CHECKS) & set(EXEMPT), "a field is both checked and exempt"
    assert names - set(FIELD_CHECKS) - set(EXEMPT) == set(), "fields without a check"
    assert (set(FIELD_CHECKS) | set(EXEMPT)) - names == set(), "names that are not fields"
    assert all(reason.strip() for reason in EXEMPT.values())


# (field, value): the override `field=value`; or (field, [overrides]) where the bad value needs
# other fields. "{tmp}" is the test's folder (also out_root), which holds `afile` (a regular
# file), `link` (a symbolic link out of it) and `int32.bin` (token ids written as int32).
BAD: list[tuple[str, object]] = [
    ("stages", "[]"),
    ("stages", "[tune,tune]"),
    ("run_name", "../escape"),
    ("run_name", "/abs/path"),
    ("run_name", "a/../../escape"),
    ("run_name", "."),
    ("run_name", "link"),
    ("run_name", "afile"),
    ("out_root", "{tmp}/afile"),
    ("out_root", "{tmp}/afile/below"),
    ("seed", -1),
    ("ladder.name", "../escape"),
    ("ladder.widths", "[64,32]"),
    ("ladder.target", 32),
    ("ladder.n_layer", 0),
    ("ladder.target_n_layer", 0),
    ("ladder.base_n_layer", 0),
    ("ladder.depth_alpha", 0.4),
    ("ladder.depth_alpha", "nan"),
    ("ladder.d_head", 0),
    ("ladder.mlp_ratio", 0),
    ("ladder.mlp_ratio", "inf"),
    ("ladder.seq_len", 0),
    ("ladder.batch_size", 0),
    ("ladder.tune_steps", 0),
    ("ladder.transfer_steps", 0),
    ("ladder.target_steps", -1),
    ("ladder.eval_every", 0),
    ("ladder.eval_batches", 0),
    ("ladder.eval_batches", -1),
    ("ladder.warmup_steps", -1),
    ("ladder.lr_resolution", 0),
    ("ladder.lr_resolution", "inf"),
    ("ladder.lr_span", 0),
    ("ladder.lr_max_points", 2),
    ("ladder.transfer_seeds", 0),
    ("ladder.noise_seeds", -1),
    ("ladder.regret_tolerance", "nan"),
    ("ladder.regret_tolerance", 0),
    ("ladder.resolve_budget", -0.5),
    ("ladder.budget", 0),
    ("ladder.sp_widths", "[0]"),
    ("budget", -0.1),
    ("hardware.mfu", 1.5),
    ("verify.probe_fraction", 0),
    ("verify.width", 0),
    ("verify.width", 999),  # not below the target's width
    ("verify.width", 20),  # heads of 8 do not divide it
    ("ladder.hparams.lr", "inf"),
    ("ladder.hparams.lr", 0),
    ("ladder.hparams.init_std", 0),
    ("ladder.hparams.output_std", -1),
    ("ladder.hparams.alpha_in", 0),
    ("ladder.hparams.alpha_out", "nan"),
    ("ladder.hparams.alpha_attn", -0.5),
    ("ladder.hparams.weight_decay", -0.1),
    ("ladder.search", ["ladder.search.lr.low=nan"]),
    ("ladder.search", ["ladder.search.lr.high=inf"]),
    ("ladder.search", ["ladder.search.lr.low=0.1", "ladder.search.lr.high=0.01"]),
    ("ladder.search", ["ladder.search.lr.low=0"]),
    ("ladder.search", ["ladder.search.init_std.log=false", "ladder.search.init_std.low=-1"]),
    ("model.factory", ["model=custom", "model.factory=no_such_package.model:build"]),
    ("model.factory", ["model.factory=some_package.model:build"]),  # model=gpt takes none
    ("model.options", ["model=custom", f"model.factory={LLAMA}", "+model.options.heads=4"]),
    ("model.readout", ["model=custom", f"model.factory={LLAMA}", "model.readout=lm_head"]),
    ("model.embeddings", ["model=custom", f"model.factory={LLAMA}", "model.embeddings=[tok]"]),
    ("ladder.decay_fraction", 0),
    ("ladder.decay_fraction", 1.5),
    ("tune.n_trials", 0),
    ("tune.n_startup_trials", -1),
    ("tune.storage", "nodatabase"),
    ("tune.workers", 0),
    ("tune.workers", 2),  # SQLite, the default storage, cannot take concurrent writers
    ("tune.seed", -1),
    ("tune.widen_trials", -1),
    ("tune.heartbeat_s", 0),
    ("tune.grace_s", 30),  # the heartbeat's period: a live worker would be presumed dead
    ("tune.grace_s", 10),
    ("launcher.max_parallel", 0),
    ("launcher.timeout_min", 0),
    ("launcher.cpus_per_task", 0),
    ("launcher.mem_gb", 0),
    ("launcher.mem_gb", "nan"),
    ("launcher.gpus_per_node", -1),
    ("launcher.nodes", 0),
    ("launcher.tasks_per_node", 0),
    ("logger.project", "team/project"),
    ("logger.dir", "{tmp}/afile"),
    ("warmstart.shrink", 1.5),
    ("warmstart.shrink", "nan"),
    ("warmstart.perturb", "nan"),
    ("warmstart.perturb", -0.1),
    ("warmstart.noise", -1),
    ("warmstart.stack_factor", 1),
    ("warmstart.source", "middle"),
    ("warmstart.source", 48),  # not a ladder width
    ("warmstart.stages", ["warmstart.source=proxy", "warmstart.stages=[64,32]"]),
    ("warmstart.stages", ["warmstart=stack", "warmstart.source=proxy", "warmstart.stages=[64]"]),
    ("warmstart.stage_steps", 0),
    ("warmstart.warmup", -1),
    ("warmstart.peak", 0),
    ("warmstart.peak", "nan"),
    ("warmstart.sampling", ["warmstart=rc_sampling", "ladder.target=96"]),
    ("hardware.device", ["hardware.device=cpu", "launcher.gpus_per_node=2"]),
    ("hardware.micro_batch_size", 0),
    ("hardware.sync_every", 0),
    ("hardware.peak_tflops", "inf"),
    ("verify.max_runs", -1),
    ("axes.horizon", "[0]"),
    ("axes.batch", "[4]"),  # gpt_tiny: 30 steps do not split into 4 batches' worth
    ("axes.beta", -0.1),
    ("axes.kappa", -1),
    ("axes.budget", "nan"),
    ("axes.widths", 0),
    ("data.source", ["data.source=tokens"]),
    ("data.path", ["data=text", "data.path={tmp}/missing.txt"]),
    ("data.path", ["data=tokens", "data.path={tmp}/int32.bin"]),
    ("data.val_fraction", 0.7),
    ("data.val_fraction", "nan"),
    ("data.vocab_size", 1000),
    ("model.vocab_size", 100),  # the byte corpus has 256 symbols
    ("model.vocab_size", 0),
    ("data.cache_dir", "{tmp}/afile"),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The out_root of the bad-value table, with the files its rows name."""
    (tmp_path / "afile").write_text("a file, not a folder\n")
    (tmp_path / "link").symlink_to(tmp_path.parent, target_is_directory=True)
    np.arange(1, 5001, dtype=np.int32).tofile(tmp_path / "int32.bin")
    return tmp_path


def overrides_of(field: str, value: object, tmp: Path) -> list[str]:
    given = value if isinstance(value, list) else [f"{field}={value}"]
    return [o.replace("{tmp}", str(tmp)) for o in given]


def contents(folder: Path) -> list[tuple[str, list[str], list[str]]]:
    """Every folder and file below `folder` (symbolic links not followed)."""
    return sorted((top, sorted(dirs), sorted(files)) for top, dirs, files in os.walk(folder))


def test_every_checked_field_has_a_bad_value_in_the_table():
    assert set(FIELD_CHECKS) - {field for field, _ in BAD} == set()


@pytest.mark.parametrize(("field", "value"), BAD, ids=[f"{f}={v}" for f, v in BAD])
def test_a_bad_value_is_refused_naming_the_field(folder, field, value):
    overrides = overrides_of(field, value, folder)
    cfg = compose_config("+ladder=gpt_tiny", f"out_root={folder}", *overrides)
    before = contents(folder)
    with pytest.raises(ValueError) as caught:
        validate(cfg)
    message = str(caught.value)
    assert field in message and "\n" not in message
    assert contents(folder) == before  # a refusal writes nothing


@pytest.mark.parametrize("ladder", LADDERS)
def test_every_ladder_s_defaults_validate(tmp_path, ladder):
    validate(compose_config(f"+ladder={ladder}", f"out_root={tmp_path / 'runs'}"))
    assert not any(tmp_path.iterdir())  # out_root was probed, and left as it was


def text_config(tmp_path: Path, path: Path):
    return compose_config(
        "+ladder=gpt_tiny",
        f"out_root={tmp_path}",
        "data=text",
        f"data.path={path}",
        f"data.cache_dir={tmp_path / 'cache'}",
    )


def test_a_binary_text_file_is_warned_about_with_its_share_of_non_text_bytes(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(np.random.default_rng(0).bytes(60_000))
    with pytest.warns(UserWarning, match=re.escape(str(binary))) as caught:
        validate(text_config(tmp_path, binary))
    share = re.search(r"(\d+)% of its first bytes are not text", str(caught[0].message))
    assert share and 40 <= int(share.group(1)) <= 70  # random bytes: about half are not text


def test_a_real_text_file_is_not_warned_about(tmp_path):
    prose = tmp_path / "prose.txt"
    lines = "Ünïcode prose, tabs\tand CRLF line ends: 日本語 too.\r\n" * 2000
    prose.write_text(lines, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate(text_config(tmp_path, prose))


def token_config(tmp_path: Path, path: Path, *extra: str):
    return compose_config(
        "+ladder=gpt_tiny",
        f"out_root={tmp_path}",
        "data=tokens",
        f"data.path={path}",
        f"data.cache_dir={tmp_path / 'cache'}",
        *extra,
    )


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_a_token_file_of_wider_ids_is_refused_naming_the_file(tmp_path, dtype):
    ids = np.random.default_rng(1).integers(1, 5000, 20_000)
    wide = tmp_path / "wide.bin"
    ids.astype(dtype).tofile(wide)
    with pytest.raises(ValueError, match=r"data\.path .* does not hold uint16 tokens") as caught:
        validate(token_config(tmp_path, wide))
    assert str(wide) in str(caught.value)
    right = tmp_path / "right.bin"
    ids.astype(np.uint16).tofile(right)
    validate(token_config(tmp_path, right))  # the same ids as uint16 are fine


@pytest.mark.parametrize("scale", [1.0, 0.02])
def test_a_token_file_of_float32_numbers_is_refused_and_real_streams_pass(tmp_path, scale):
    # float32 read as uint16: the high halves (sign, exponent) take a few thousand values, the
    # low halves nearly all 65536; token streams, however skewed, look alike at both parities
    rng = np.random.default_rng(3)
    floats = tmp_path / "floats.bin"
    (rng.standard_normal(200_000) * scale).astype(np.float32).tofile(floats)
    with pytest.raises(ValueError, match=r"values at odd and even positions differ in kind"):
        validate(token_config(tmp_path, floats))
    for name, ids in {
        "zipf": np.minimum(rng.zipf(1.2, 400_000), 50_256),
        "gpt2": rng.integers(0, 50_257, 400_000),
        "bytes": rng.integers(0, 256, 400_000),
    }.items():
        path = tmp_path / f"{name}.bin"
        ids.astype(np.uint16).tofile(path)
        validate(token_config(tmp_path, path))


def test_a_token_file_beyond_the_vocabulary_or_of_odd_size_is_refused(tmp_path):
    tokens = tmp_path / "tokens.bin"
    np.random.default_rng(2).integers(0, 5000, 20_000).astype(np.uint16).tofile(tokens)
    with pytest.raises(ValueError, match=r"data\.vocab_size=100 is too small") as caught:
        validate(token_config(tmp_path, tokens, "data.vocab_size=100"))
    assert str(tokens) in str(caught.value)
    odd = tmp_path / "odd.bin"
    odd.write_bytes(tokens.read_bytes()[:-1])
    with pytest.raises(ValueError, match="not a whole number of uint16 tokens") as caught:
        validate(token_config(tmp_path, odd))
    assert str(odd) in str(caught.value)


def test_a_file_as_out_root_is_refused_and_left_alone(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    for out_root in (afile, afile / "below"):
        with pytest.raises(ValueError, match=r"^out_root must be a writable folder"):
            validate(compose_config("+ladder=gpt_tiny", f"out_root={out_root}"))
    assert list(tmp_path.iterdir()) == [afile] and afile.read_text() == "keep me\n"


def test_an_unwritable_out_root_is_refused_and_what_the_probe_made_is_removed(
    tmp_path, monkeypatch
):
    """A folder where no file can be made (as the superuser every folder is writable, so the
    write itself is made to fail): the folders created to probe it are removed again."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("sweep.config.checks.tempfile.mkstemp", refuse)
    out_root = tmp_path / "new" / "runs"
    cfg = compose_config("+ladder=gpt_tiny", f"out_root={out_root}")
    with pytest.raises(ValueError, match=r"out_root must be a writable folder.*Permission denied"):
        validate(cfg)
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="the superuser writes to read-only folders")
def test_a_read_only_out_root_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(ValueError, match="out_root must be a writable folder"):
            validate(compose_config("+ladder=gpt_tiny", f"out_root={locked}"))
        assert not any(locked.iterdir())
    finally:
        locked.chmod(0o700)


def test_an_escaping_run_name_on_the_command_line_is_one_line_and_writes_nothing(tmp_path):
    out_root = tmp_path / "runs"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sweep.run",
            "+ladder=gpt_tiny",
            "run_name=../escape",
            f"out_root={out_root}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: run_name"), proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]  # nothing beside out_root
    assert not any(p.name == "escape" for p in tmp_path.rglob("*"))


def test_slurm_without_slurm_is_one_line(tmp_path, monkeypatch):
    import shutil

    from sweep.config import check_slurm_present, compose_config
    from sweep.pipeline import Pipeline

    cfg = compose_config("+ladder=gpt_tiny", f"out_root={tmp_path}", "launcher=slurm")
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda c: None if c == "sbatch" else real(c))
    with pytest.raises(ValueError, match=r"launcher=slurm but this machine has no SLURM commands"):
        check_slurm_present(cfg)
    with pytest.raises(ValueError, match=r"\(sbatch not on PATH\)"):
        Pipeline(cfg)  # before any job, before anything is written
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("below", ["", "below"])
def test_a_file_as_out_root_on_the_command_line_is_one_line_before_hydra_writes(tmp_path, below):
    """Hydra makes its log folder in out_root before the config is validated: the command
    checks out_root first, so a file there (or a folder that cannot be made below one) is one
    line, not Hydra's traceback."""
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    proc = subprocess.run(
        [sys.executable, "-m", "sweep.run", "+ladder=gpt_tiny", f"out_root={afile / below}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: out_root must be a writable folder")
    assert list(tmp_path.iterdir()) == [afile] and afile.read_text() == "keep me\n"
