"""Byte/token next-token data for small GPTs, built from local files only (no downloads).

Sources: the running interpreter's stdlib sources (default), any text file, or a nanoGPT-style
uint16 token file. Splits are cached on disk once and memory-mapped, so every run reads the
same bytes and large corpora never have to fit in RAM.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import sys
import sysconfig
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from sweep.core.atomic import atomic_writer
from sweep.core.configs import DataConfig, Source

BYTE_VOCAB = 256
TEXT_BLOCK_BYTES = 64 * 1024
DOCS_BLOCK_BYTES = 4 * 1024  # the docs are small: short blocks spread validation over them
TOKEN_BLOCK = 32 * 1024
EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})
_FORMAT_VERSION = 1  # bump when the cache layout or split rule changes


# eq=False: arrays make field-wise equality ambiguous; a corpus is compared by identity.
@dataclass(frozen=True, eq=False)
class Corpus:
    train: np.ndarray  # 1-D token array (memmap), uint8 or uint16
    val: np.ndarray
    vocab_size: int
    description: str


@functools.cache
def load_corpus(cfg: DataConfig) -> Corpus:
    """Load (building the on-disk cache on first use) the train/val splits described by `cfg`.

    Cached per process so every caller in a sweep shares one set of memmaps.
    """
    _validate(cfg)
    cache = Path(
        cfg.cache_dir or os.environ.get("MUSWEEP_CACHE") or "~/.cache/musweep"
    ).expanduser()
    if cfg.source == Source.stdlib:
        return _load_stdlib(cfg, cache)
    if cfg.source == Source.docs:
        return _load_docs(cfg, cache)
    if cfg.source == Source.text:
        return _load_text(cfg, cache)
    return _load_tokens(cfg, cache)


def check_corpus_fits(corpus: Corpus, seq_len: int) -> None:
    """Fail early, before training, if a split cannot supply one (seq_len + 1)-token window."""
    _check_positive(seq_len=seq_len)
    for name, split in (("train", corpus.train), ("val", corpus.val)):
        if len(split) <= seq_len + 1:
            raise ValueError(
                f"{name} split has {len(split)} tokens, needs more than seq_len + 1 = "
                f"{seq_len + 1} ({corpus.description}); use a longer file or a shorter seq_len"
            )


def train_batch(
    tokens: np.ndarray, step: int, seed: int, batch_size: int, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch for optimizer step `step`: a pure function of (seed, step), so a resumed run sees the
    same batches. Random window offsets from np.random.default_rng([seed, step]);
    x = tokens[o:o+T], y = tokens[o+1:o+T+1], int64 tensors of shape (B, T)."""
    _check_positive(batch_size=batch_size, seq_len=seq_len)
    n_offsets = _n_offsets(tokens, seq_len)
    offsets = np.random.default_rng([seed, step]).integers(0, n_offsets, size=batch_size)
    return _windows(tokens, offsets, seq_len)


def val_batches(
    tokens: np.ndarray, n_batches: int, batch_size: int, seq_len: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fixed validation set: n_batches*batch_size windows at evenly spaced offsets across the whole
    val split (deterministic, seed-independent, covers the split).

    Batches are interleaved (batch j takes every n_batches-th window), so each batch alone also
    spans the split and a truncated evaluation stays representative.
    """
    _check_positive(n_batches=n_batches, batch_size=batch_size, seq_len=seq_len)
    last = _n_offsets(tokens, seq_len) - 1
    n_windows = n_batches * batch_size
    offsets = np.arange(n_windows, dtype=np.int64) * last // max(n_windows - 1, 1)
    return [_windows(tokens, offsets[j::n_batches], seq_len) for j in range(n_batches)]


def stdlib_files(root: Path) -> list[str]:
    """Sorted relative (posix) paths of the `.py` files under `root`.

    site-packages/dist-packages are pruned (they hold GBs of third-party code such as torch),
    and so is __pycache__.
    """
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in EXCLUDED_DIRS]
        rel_dir = Path(dirpath).relative_to(root)
        found.extend((rel_dir / f).as_posix() for f in filenames if f.endswith(".py"))
    return sorted(found)


def val_files(relpaths: list[str], val_fraction: float) -> set[str]:
    """Files held out for validation, chosen by a stable hash of the relative path.

    Hashing spreads validation over the whole library (the sorted tail is repetitive codec
    tables). If the hash leaves a split empty, move the extreme-hash file so both are non-empty.
    """
    threshold = round(val_fraction * 1000)
    val = {p for p in relpaths if _path_hash(p) % 1000 < threshold}
    by_hash = sorted(relpaths, key=_path_hash)
    if not val and by_hash:
        val = {by_hash[0]}
    if len(by_hash) >= 2 and len(val) == len(by_hash):
        val.discard(by_hash[-1])
    return val


def block_ranges(
    n: int, val_fraction: float, max_block: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(train, val) half-open ranges cutting [0, n) into blocks; every k-th block is validation,
    k = round(1 / val_fraction), so validation samples the whole file.

    Blocks shrink for inputs shorter than k * max_block so there are at least k of them, which
    keeps the val split non-empty for any input of at least k items.
    """
    k = round(1 / val_fraction)
    block = min(max_block, max(1, n // k))
    train: list[tuple[int, int]] = []
    val: list[tuple[int, int]] = []
    for i, start in enumerate(range(0, n, block)):
        (val if i % k == k - 1 else train).append((start, min(start + block, n)))
    return train, val


# --- validation -------------------------------------------------------------------------------


def _validate(cfg: DataConfig) -> None:
    if cfg.source not in set(Source):
        allowed = ", ".join(repr(str(s)) for s in Source)
        raise ValueError(f"data.source must be one of {allowed}, got {cfg.source!r}")
    vf = cfg.val_fraction
    if isinstance(vf, bool) or not isinstance(vf, int | float) or not 0 < vf <= 0.5:
        raise ValueError(f"data.val_fraction must be in (0, 0.5], got {vf!r}")
    if cfg.source in (Source.stdlib, Source.docs):
        if cfg.path is not None:
            raise ValueError(
                f"data.path must be None for data.source {str(cfg.source)!r}, got {cfg.path!r}"
            )
    elif cfg.path is None:
        raise ValueError(f"data.path is required for data.source {cfg.source!r}")
    elif not Path(cfg.path).expanduser().exists():
        raise ValueError(f"data.path does not exist: {cfg.path}")
    vs = cfg.vocab_size
    if cfg.source == Source.tokens:
        if vs is not None and (
            isinstance(vs, bool) or not isinstance(vs, int) or not 0 < vs <= 2**16
        ):
            raise ValueError(f"data.vocab_size must be None or an int in [1, 65536], got {vs!r}")
    elif vs not in (None, BYTE_VOCAB):
        raise ValueError(
            f"data.vocab_size must be None or {BYTE_VOCAB} for byte-level data.source "
            f"{cfg.source!r}, got {vs!r}"
        )


SNIFF_BYTES = 1 << 20  # the head of a file that the content checks read
WIDE_ID_ZEROS = 0.9  # share of zero odd-position values that marks 32/64-bit ids
# A token stream looks alike at odd and even positions; 32-bit numbers read as uint16 do not
# (their high halves take a few thousand values, the low halves nearly all 65536): a parity
# with under a third of the other's distinct values, where that has at least this many, is one
PARITY_RATIO = 1 / 3
MIN_DISTINCT = 1024
NON_TEXT_WARNING = 0.25  # share of non-text bytes above which a "text" file is warned about
_NON_TEXT = re.compile("[\x00-\x08\x0e-\x1f\x7f\udc80-\udcff]")


def _check_token_content(path: Path) -> None:
    """Refuse a token file written in a wider type than uint16.

    Little-endian int32 or int64 ids below 65536, read as uint16, put a zero (a high half) at
    every odd position, and int64 at every other even one too; a real uint16 stream does not
    alternate its tokens with id 0. The rule, on the file's first MiB: at least 90% of the
    values at odd positions are 0 while at most 60% of those at even positions are (so a file
    that is mostly id 0 throughout is not taken for wide ids). Float32 values split the same
    way into a high half of few values (sign and exponent) and a low half of nearly all: a
    file whose two parities differ that much in how many values they take is refused too.
    """
    head = np.fromfile(path, dtype=np.uint16, count=SNIFF_BYTES // 2)
    if head.size < 4:
        return
    odd_zero = float(np.mean(head[1::2] == 0))
    if odd_zero >= WIDE_ID_ZEROS and np.mean(head[0::2] == 0) <= 0.6:
        raise ValueError(
            f"data.path {path} does not hold uint16 tokens: {odd_zero:.0%} of its values at odd "
            "positions are 0, as in a file of 32- or 64-bit ids; write the ids as np.uint16"
        )
    odd, even = (len(np.unique(head[i::2])) for i in (1, 0))
    if max(odd, even) >= MIN_DISTINCT and min(odd, even) < PARITY_RATIO * max(odd, even):
        raise ValueError(
            f"data.path {path} does not hold uint16 tokens: read as uint16, its values at odd "
            f"and even positions differ in kind ({odd} and {even} distinct values), as in a file "
            "of 32-bit numbers (float32, say), where one half holds the exponent; write the "
            "token ids as np.uint16"
        )


def non_text_share(data: bytes) -> float:
    """The share of `data`'s bytes that no text has: bytes outside valid UTF-8, and control
    characters other than tab, newline, vertical tab, form feed and carriage return."""
    if not data:
        return 0.0
    text = data.decode("utf-8", errors="surrogateescape")  # each invalid byte: one surrogate
    return len(_NON_TEXT.findall(text)) / len(data)


def _warn_if_not_text(path: Path) -> None:
    """A `text` source trains on bytes: a binary file loads fine and trains on noise, so a file
    whose first MiB is more than 25% non-text bytes is warned about (not refused: such a file
    may be meant)."""
    with path.open("rb") as f:
        share = non_text_share(f.read(SNIFF_BYTES))
    if share > NON_TEXT_WARNING:
        warnings.warn(
            f"data.path {path} does not look like text: {share:.0%} of its first bytes are "
            "not text (outside UTF-8, or control characters); data=text trains on its bytes",
            stacklevel=2,
        )


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


def _data_file(path: Path, itemsize: int) -> Path:
    """A regular, non-empty file whose size is a whole number of items."""
    if not path.is_file():
        raise ValueError(f"data.path must be a file (or a directory for tokens): {path}")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"data.path is empty: {path}")
    if size % itemsize:
        raise ValueError(f"data.path {path} has {size} bytes, not a whole number of uint16 tokens")
    return path


# --- sources ----------------------------------------------------------------------------------


def _load_stdlib(cfg: DataConfig, cache: Path) -> Corpus:
    root = Path(sysconfig.get_paths()["stdlib"])
    stats: list[tuple[str, int, int]] = []
    for rel in stdlib_files(root):
        with contextlib.suppress(OSError):
            st = (root / rel).stat()
            stats.append((rel, st.st_size, st.st_mtime_ns))
    if not stats:
        raise ValueError(f"data.source 'stdlib': no .py files found under {root}")
    held_out = val_files([rel for rel, _, _ in stats], cfg.val_fraction)

    def write(train_f: IO[bytes], val_f: IO[bytes]) -> dict[str, Any]:
        counts = {"train_files": 0, "val_files": 0}
        for rel, _, _ in stats:
            try:
                data = (root / rel).read_bytes()
            except OSError:
                continue  # unreadable files are skipped; the key still pins the listing
            split = "val" if rel in held_out else "train"
            (val_f if split == "val" else train_f).write(data)
            counts[f"{split}_files"] += 1
        return counts

    key = _key("stdlib", sys.version, str(root), cfg.val_fraction, stats)
    train, val, meta = _cached_splits(cache / f"stdlib-{key}", np.uint8, write)
    n_files = meta["train_files"] + meta["val_files"]
    return Corpus(
        train,
        val,
        BYTE_VOCAB,
        f"stdlib {root}: {n_files} files ({meta['val_files']} val), "
        f"{train.size / 1e6:.1f} MB train / {val.size / 1e6:.1f} MB val",
    )


def python_docs() -> bytes:
    """The topic pages of the Python documentation that ship with every interpreter
    (`pydoc_data.topics`, what `help("topic")` shows): English prose about the language, with a
    few code examples, about half a megabyte. Deterministic for one Python version."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[name] for name in sorted(topics)).encode()


def _load_docs(cfg: DataConfig, cache: Path) -> Corpus:
    data = python_docs()
    src = np.frombuffer(data, dtype=np.uint8)

    def write(train_f: IO[bytes], val_f: IO[bytes]) -> dict[str, Any]:
        _write_blocks(src, cfg.val_fraction, DOCS_BLOCK_BYTES, train_f, val_f)
        return {"bytes": len(data)}

    digest = hashlib.sha256(data).hexdigest()
    key = _key("docs", sys.version, digest, cfg.val_fraction, DOCS_BLOCK_BYTES)
    train, val, _ = _cached_splits(cache / f"docs-{key}", np.uint8, write)
    return Corpus(
        train,
        val,
        BYTE_VOCAB,
        f"Python {sys.version.split()[0]} documentation topics (pydoc_data): "
        f"{train.size / 1e6:.2f} MB train / {val.size / 1e6:.2f} MB val",
    )


def _write_blocks(
    src: np.ndarray, val_fraction: float, max_block: int, train_f: IO[bytes], val_f: IO[bytes]
) -> None:
    """Every k-th block of `src` to the validation file, the rest to the training file."""
    train_ranges, val_ranges = block_ranges(src.size, val_fraction, max_block)
    for f, ranges in ((train_f, train_ranges), (val_f, val_ranges)):
        for start, stop in ranges:
            f.write(src[start:stop].tobytes())


def _load_text(cfg: DataConfig, cache: Path) -> Corpus:
    path = _data_file(Path(str(cfg.path)).expanduser().resolve(), 1)
    _warn_if_not_text(path)
    train, val, _ = _split_file_cached(path, np.uint8, TEXT_BLOCK_BYTES, cfg, cache, "text")
    return Corpus(
        train,
        val,
        BYTE_VOCAB,
        f"text {path}: {train.size / 1e6:.1f} MB train / {val.size / 1e6:.1f} MB val",
    )


def _load_tokens(cfg: DataConfig, cache: Path) -> Corpus:
    path = Path(str(cfg.path)).expanduser().resolve()
    if path.is_dir():
        parts = [path / "train.bin", path / "val.bin"]
        if not all(p.exists() for p in parts):
            raise ValueError(f"data.path directory {path} must contain train.bin and val.bin")
        for part in parts:
            _check_token_content(_data_file(part, 2))
        train, val = (np.memmap(p, dtype=np.uint16, mode="r") for p in parts)
        sigs = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in parts]
        max_token = _cached_json(
            cache / f"tokens-{_key('tokens-dir', sigs)}.json",
            lambda: {"max_token": int(max(train.max(), val.max()))},
        )["max_token"]
    else:
        _check_token_content(_data_file(path, 2))
        train, val, meta = _split_file_cached(path, np.uint16, TOKEN_BLOCK, cfg, cache, "tokens")
        max_token = meta["max_token"]
    vocab = max_token + 1 if cfg.vocab_size is None else cfg.vocab_size
    if max_token >= vocab:
        raise ValueError(
            f"data.vocab_size={cfg.vocab_size} is too small: {path} contains token id {max_token}"
        )
    return Corpus(
        train,
        val,
        vocab,
        f"tokens {path}: {train.size / 1e6:.2f}M train / {val.size / 1e6:.2f}M val tokens, "
        f"vocab {vocab}",
    )


def _split_file_cached(
    path: Path, dtype: type[np.generic], max_block: int, cfg: DataConfig, cache: Path, kind: str
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Block-split one file into cached train/val files (meta records the max token)."""

    def write(train_f: IO[bytes], val_f: IO[bytes]) -> dict[str, Any]:
        src = np.memmap(path, dtype=dtype, mode="r")
        _write_blocks(src, cfg.val_fraction, max_block, train_f, val_f)
        return {"max_token": int(src.max())}

    st = path.stat()
    key = _key(kind, str(path), st.st_size, st.st_mtime_ns, cfg.val_fraction, max_block)
    return _cached_splits(cache / f"{kind}-{key}", dtype, write)


# --- cache ------------------------------------------------------------------------------------


def _path_hash(relpath: str) -> int:
    return int(hashlib.sha256(relpath.encode()).hexdigest(), 16)


def _key(*parts: object) -> str:
    """Cache key: any change to the inputs or to the format gives a fresh set of files."""
    blob = json.dumps([_FORMAT_VERSION, *parts], default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _cached_json(path: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    if not path.exists():
        with atomic_writer(path) as f:
            f.write(json.dumps(compute()).encode())
    return json.loads(path.read_text())


def _cached_splits(
    stem: Path,
    dtype: type[np.generic],
    write: Callable[[IO[bytes], IO[bytes]], dict[str, Any]],
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Memmap `<stem>.train.bin` / `<stem>.val.bin`, building them with `write` if absent.

    The meta json is written last, so its presence marks a complete cache entry.
    """
    train_p, val_p, meta_p = (
        stem.with_name(stem.name + s) for s in (".train.bin", ".val.bin", ".json")
    )
    if not (meta_p.exists() and train_p.exists() and val_p.exists()):
        with atomic_writer(train_p) as train_f, atomic_writer(val_p) as val_f:
            meta = write(train_f, val_f)
        with atomic_writer(meta_p) as f:
            f.write(json.dumps(meta).encode())
    return _open(train_p, dtype), _open(val_p, dtype), json.loads(meta_p.read_text())


def _open(path: Path, dtype: type[np.generic]) -> np.ndarray:
    # np.memmap cannot map an empty file; an empty split is reported by check_corpus_fits.
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


# --- batching ---------------------------------------------------------------------------------


def _n_offsets(tokens: np.ndarray, seq_len: int) -> int:
    """Number of valid window starts: a window needs seq_len + 1 tokens (inputs plus targets)."""
    n = len(tokens) - seq_len
    if n <= 0:
        raise ValueError(
            f"token array has {len(tokens)} tokens, needs at least seq_len + 1 = {seq_len + 1}"
        )
    return n


def _windows(
    tokens: np.ndarray, offsets: np.ndarray, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    buf = np.stack([tokens[o : o + seq_len + 1] for o in offsets]).astype(np.int64)
    x = torch.from_numpy(np.ascontiguousarray(buf[:, :-1]))
    y = torch.from_numpy(np.ascontiguousarray(buf[:, 1:]))
    return x, y
