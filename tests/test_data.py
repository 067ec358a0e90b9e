"""Tests for sweep.core.data: sources, representative splits, caching, and batch determinism."""

from __future__ import annotations

import sysconfig
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sweep.core.data import (
    EXCLUDED_DIRS,
    TEXT_BLOCK_BYTES,
    TOKEN_BLOCK,
    Corpus,
    DataConfig,
    block_ranges,
    check_corpus_fits,
    load_corpus,
    stdlib_files,
    train_batch,
    val_batches,
    val_files,
)

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="module")
def stdlib_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("stdlib-cache"))


@pytest.fixture(scope="module")
def stdlib_corpus(stdlib_cache: str) -> Corpus:
    return load_corpus(DataConfig(cache_dir=stdlib_cache))


# --- stdlib -----------------------------------------------------------------------------------


def test_stdlib_corpus_loads(stdlib_corpus: Corpus) -> None:
    assert stdlib_corpus.vocab_size == 256
    assert stdlib_corpus.train.dtype == np.uint8
    assert stdlib_corpus.train.ndim == 1
    assert stdlib_corpus.val.ndim == 1
    assert isinstance(stdlib_corpus.train, np.memmap)
    # Held-out share should be roughly val_fraction of the bytes, and both splits substantial.
    share = stdlib_corpus.val.size / (stdlib_corpus.train.size + stdlib_corpus.val.size)
    assert 0.02 < share < 0.3
    assert stdlib_corpus.val.size > 100_000
    assert str(STDLIB) in stdlib_corpus.description


def test_stdlib_val_split_is_the_hashed_files(stdlib_corpus: Corpus) -> None:
    files = stdlib_files(STDLIB)
    held_out = val_files(files, 0.1)
    expected_val = b"".join((STDLIB / f).read_bytes() for f in files if f in held_out)
    expected_train_size = sum((STDLIB / f).stat().st_size for f in files if f not in held_out)
    assert stdlib_corpus.val.tobytes() == expected_val
    assert stdlib_corpus.train.size == expected_train_size
    assert f"{len(files)} files ({len(held_out)} val)" in stdlib_corpus.description


def test_stdlib_files_excludes_third_party_and_bytecode(tmp_path: Path) -> None:
    for rel in [
        "a.py",
        "pkg/b.py",
        "pkg/notes.txt",
        "site-packages/torch/x.py",
        "pkg/dist-packages/y.py",
        "__pycache__/z.py",
        "pkg/__pycache__/w.py",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("pass\n")
    assert stdlib_files(tmp_path) == ["a.py", "pkg/b.py"]


def test_real_stdlib_listing_has_no_site_packages() -> None:
    files = stdlib_files(STDLIB)
    assert len(files) > 500
    assert files == sorted(files)
    assert all(f.endswith(".py") for f in files)
    assert not any(EXCLUDED_DIRS & set(Path(f).parts) for f in files)


def test_stdlib_val_files_are_spread_across_the_library() -> None:
    files = stdlib_files(STDLIB)
    held_out = val_files(files, 0.1)
    assert 0.05 * len(files) < len(held_out) < 0.2 * len(files)
    assert len({f[0].lower() for f in held_out}) >= 3
    assert len({Path(f).parts[0] for f in held_out}) >= 3
    # Not the alphabetical tail: some val file sits in the first half of the sorted listing.
    assert min(files.index(f) for f in held_out) < len(files) // 2


def test_val_files_keeps_both_splits_non_empty() -> None:
    # With one file only val can be filled; with two or more both splits must be non-empty.
    assert val_files(["only.py"], 0.001) == {"only.py"}
    for paths in (["a.py", "b.py"], [f"m{i}.py" for i in range(5)]):
        for vf in (0.001, 0.5):
            held_out = val_files(paths, vf)
            assert held_out
            assert held_out != set(paths)
    # Deterministic: the same inputs give the same split in any order.
    paths = [f"m{i}.py" for i in range(50)]
    assert val_files(paths, 0.1) == val_files(list(reversed(paths)), 0.1)


def test_stdlib_split_is_stable_across_loads(
    stdlib_corpus: Corpus, stdlib_cache: str, tmp_path: Path
) -> None:
    rebuilt = load_corpus(DataConfig(cache_dir=str(tmp_path)))  # fresh cache, built from scratch
    assert np.array_equal(rebuilt.train, stdlib_corpus.train)
    assert np.array_equal(rebuilt.val, stdlib_corpus.val)
    load_corpus.cache_clear()
    reread = load_corpus(DataConfig(cache_dir=stdlib_cache))  # read back from the disk cache
    assert reread is not stdlib_corpus
    assert np.array_equal(reread.train, stdlib_corpus.train)
    assert np.array_equal(reread.val, stdlib_corpus.val)


def test_second_load_in_process_is_cached(stdlib_cache: str) -> None:
    cfg = DataConfig(cache_dir=stdlib_cache)
    assert load_corpus(cfg) is load_corpus(DataConfig(cache_dir=stdlib_cache))


def test_stdlib_cache_files_are_written(stdlib_corpus: Corpus, stdlib_cache: str) -> None:
    names = sorted(p.name for p in Path(stdlib_cache).iterdir())
    assert len(names) == 3
    assert {Path(n).suffix for n in names} == {".bin", ".json"}
    assert not any(n.endswith(".tmp") for n in names)
    assert Path(stdlib_corpus.train.filename).parent == Path(stdlib_cache)


# --- text -------------------------------------------------------------------------------------


def test_text_file_blocks_round_trip(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 256, 4 * TEXT_BLOCK_BYTES + 1000, dtype=np.uint8)
    path = tmp_path / "corpus.txt"
    path.write_bytes(data.tobytes())
    with pytest.warns(UserWarning, match="does not look like text"):  # random bytes
        corpus = load_corpus(
            DataConfig("text", str(path), val_fraction=0.5, cache_dir=str(tmp_path))
        )
    blocks = [data[i : i + TEXT_BLOCK_BYTES] for i in range(0, data.size, TEXT_BLOCK_BYTES)]
    # k = 2: blocks 1 and 3 are validation, 0, 2 and the short tail block 4 are training.
    assert np.array_equal(corpus.val, np.concatenate(blocks[1::2]))
    assert np.array_equal(corpus.train, np.concatenate(blocks[0::2]))
    assert corpus.vocab_size == 256
    assert isinstance(corpus.val, np.memmap)
    assert Path(corpus.val.filename).parent == tmp_path


def test_block_ranges_every_kth_block_is_val() -> None:
    for n, vf, max_block in [(1000, 0.1, 10), (12345, 0.25, 100), (100, 0.1, 64), (7, 0.5, 64)]:
        train, val = block_ranges(n, vf, max_block)
        k = round(1 / vf)
        ranges = sorted(train + val)
        assert ranges[0][0] == 0
        assert ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in pairwise(ranges))
        assert [i for i, r in enumerate(ranges) if r in val] == list(range(k - 1, len(ranges), k))
        assert val
        assert len(ranges) >= k


def test_text_short_file_is_caught_by_check_corpus_fits(tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_bytes(bytes(range(100)))
    with pytest.warns(UserWarning, match="27% of its first bytes are not text"):  # controls
        corpus = load_corpus(DataConfig("text", str(path), cache_dir=str(tmp_path)))
    assert corpus.train.size == 90
    assert corpus.val.size == 10
    with pytest.raises(ValueError, match=r"val split has 10 tokens.*seq_len \+ 1 = 65"):
        check_corpus_fits(corpus, seq_len=64)
    check_corpus_fits(corpus, seq_len=8)  # val = 10 > seq_len + 1: the boundary that fits
    with pytest.raises(ValueError, match="val split has 10 tokens"):
        check_corpus_fits(corpus, seq_len=9)
    with pytest.raises(ValueError, match="train split has 90 tokens"):
        check_corpus_fits(Corpus(corpus.train, np.zeros(500, np.uint8), 256, "x"), seq_len=100)


# --- tokens -----------------------------------------------------------------------------------


def test_tokens_single_file_split_by_blocks(tmp_path: Path) -> None:
    tokens = np.random.default_rng(1).integers(0, 5000, 3 * TOKEN_BLOCK + 5, dtype=np.uint16)
    tokens[123] = 4999
    path = tmp_path / "tokens.bin"
    tokens.tofile(path)
    corpus = load_corpus(DataConfig("tokens", str(path), val_fraction=0.5, cache_dir=str(tmp_path)))
    blocks = [tokens[i : i + TOKEN_BLOCK] for i in range(0, tokens.size, TOKEN_BLOCK)]
    assert corpus.train.dtype == np.uint16
    assert np.array_equal(corpus.train, np.concatenate(blocks[0::2]))
    assert np.array_equal(corpus.val, np.concatenate(blocks[1::2]))
    assert corpus.vocab_size == 5000
    override = load_corpus(
        DataConfig("tokens", str(path), val_fraction=0.5, vocab_size=8192, cache_dir=str(tmp_path))
    )
    assert override.vocab_size == 8192


def test_tokens_directory_uses_train_and_val_bin(tmp_path: Path) -> None:
    train = np.arange(1000, dtype=np.uint16)
    val = np.arange(300, dtype=np.uint16) * 7
    train.tofile(tmp_path / "train.bin")
    val.tofile(tmp_path / "val.bin")
    corpus = load_corpus(DataConfig("tokens", str(tmp_path), cache_dir=str(tmp_path / "cache")))
    assert np.array_equal(corpus.train, train)
    assert np.array_equal(corpus.val, val)
    assert Path(corpus.train.filename) == tmp_path / "train.bin"  # mapped in place, not copied
    assert corpus.vocab_size == 299 * 7 + 1


# --- batches ----------------------------------------------------------------------------------


def _unique_tokens(n: int) -> np.ndarray:
    """Token value == position, so a window's first token is its offset."""
    return np.arange(n, dtype=np.uint16)


def test_train_batch_is_a_pure_function_of_seed_and_step() -> None:
    tokens = _unique_tokens(10_000)
    x, y = train_batch(tokens, step=5, seed=3, batch_size=8, seq_len=32)
    x2, y2 = train_batch(tokens, step=5, seed=3, batch_size=8, seq_len=32)
    assert torch.equal(x, x2)
    assert torch.equal(y, y2)
    assert not torch.equal(x, train_batch(tokens, step=6, seed=3, batch_size=8, seq_len=32)[0])
    assert not torch.equal(x, train_batch(tokens, step=5, seed=4, batch_size=8, seq_len=32)[0])
    # the batch of step 5 does not depend on which batches were drawn before it
    for step in range(5):
        train_batch(tokens, step=step, seed=3, batch_size=8, seq_len=32)
    assert torch.equal(x, train_batch(tokens, step=5, seed=3, batch_size=8, seq_len=32)[0])


def test_train_batch_offsets_cover_every_window_uniformly() -> None:
    """41 tokens hold 9 windows of 32 + 1 (offsets 0..8); 500 draws reach each about equally
    often, the first and the last included."""
    tokens = _unique_tokens(41)
    starts = np.concatenate(
        [
            train_batch(tokens, step, seed=0, batch_size=10, seq_len=32)[0][:, 0]
            for step in range(50)
        ]
    )
    counts = np.bincount(starts, minlength=9)
    assert len(counts) == 9  # no offset past the last full window
    assert counts.min() > 500 / 9 / 2 and counts.max() < 500 / 9 * 2, counts


def test_train_batch_targets_are_inputs_shifted_by_one() -> None:
    tokens = np.random.default_rng(2).integers(0, 256, 5000, dtype=np.uint8)
    x, y = train_batch(tokens, step=7, seed=1, batch_size=16, seq_len=64)
    assert x.shape == y.shape == (16, 64)
    assert x.dtype == y.dtype == torch.int64
    assert x.is_contiguous()
    assert y.is_contiguous()
    # every row is a window of the corpus, and its targets are the tokens right after it
    windows = np.lib.stride_tricks.sliding_window_view(tokens, 65)
    for row_x, row_y in zip(x.numpy(), y.numpy(), strict=True):
        (at,) = np.nonzero((windows[:, :64] == row_x).all(axis=1))
        assert len(at) == 1  # 64 random bytes occur once in 5000
        assert np.array_equal(row_y, windows[at[0], 1:])


def test_train_batch_windows_stay_in_bounds() -> None:
    tokens = _unique_tokens(33)  # exactly seq_len + 1: the only window is offset 0
    x, y = train_batch(tokens, step=0, seed=0, batch_size=4, seq_len=32)
    assert (x[:, 0] == 0).all()
    assert (y[:, -1] == 32).all()
    with pytest.raises(ValueError, match="needs at least seq_len"):
        train_batch(_unique_tokens(32), step=0, seed=0, batch_size=4, seq_len=32)


def test_val_batches_are_fixed_and_evenly_spaced() -> None:
    tokens = _unique_tokens(10_000)
    batches = val_batches(tokens, n_batches=3, batch_size=4, seq_len=16)
    again = val_batches(tokens, n_batches=3, batch_size=4, seq_len=16)
    assert len(batches) == 3
    for (x, y), (x2, y2) in zip(batches, again, strict=True):
        assert x.shape == (4, 16)
        assert torch.equal(x, x2)
        assert torch.equal(y, y2)
        assert torch.equal(x[:, 1:], y[:, :-1])
    offsets = np.sort(np.concatenate([x[:, 0].numpy() for x, _ in batches]))
    assert offsets[0] == 0
    assert offsets[-1] == 10_000 - 16 - 1  # the last window ends at the split's final token
    gaps = np.diff(offsets)
    assert gaps.max() - gaps.min() <= 1
    # Each batch alone spans the split, so a truncated evaluation is still representative.
    for x, _ in batches:
        assert x[:, 0].max() - x[:, 0].min() > 5000


# --- bad inputs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"source": "x"},
            r"data\.source must be one of 'stdlib', 'docs', 'text', 'tokens', got 'x'",
        ),
        ({"source": "text"}, r"data\.path is required"),
        ({"source": "tokens"}, r"data\.path is required"),
        ({"source": "text", "path": "missing.txt"}, r"data\.path does not exist"),
        ({"source": "text", "path": "empty.txt"}, r"data\.path is empty"),
        ({"source": "text", "path": "."}, r"data\.path must be a file"),
        ({"source": "tokens", "path": "odd.bin"}, r"data\.path .* not a whole number of uint16"),
        ({"source": "tokens", "path": "."}, r"data\.path directory .* train\.bin and val\.bin"),
        ({"path": "ok.txt"}, r"data\.path must be None for data\.source 'stdlib'"),
        ({"val_fraction": 0.0}, r"data\.val_fraction must be in \(0, 0\.5\]"),
        ({"val_fraction": 0.6}, r"data\.val_fraction must be in \(0, 0\.5\]"),
        ({"val_fraction": -0.1}, r"data\.val_fraction must be in \(0, 0\.5\]"),
        ({"vocab_size": 1000}, r"data\.vocab_size must be None or 256"),
        ({"source": "tokens", "path": "even.bin", "vocab_size": 0}, r"data\.vocab_size"),
        ({"source": "tokens", "path": "even.bin", "vocab_size": 70_000}, r"data\.vocab_size"),
        ({"source": "tokens", "path": "even.bin", "vocab_size": 100}, r"data\.vocab_size=100 is"),
    ],
)
def test_bad_config_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "ok.txt").write_bytes(b"hello world")
    (tmp_path / "odd.bin").write_bytes(b"\x01\x02\x03")
    np.array([1, 500, 2], dtype=np.uint16).tofile(tmp_path / "even.bin")
    cfg = DataConfig(cache_dir=str(tmp_path / "cache"), **kwargs)
    with pytest.raises(ValueError, match=message):
        load_corpus(cfg)


@pytest.mark.parametrize("field", ["batch_size", "seq_len"])
@pytest.mark.parametrize("value", [0, -1])
def test_train_batch_rejects_non_positive_sizes(field: str, value: int) -> None:
    sizes = {"batch_size": 2, "seq_len": 4, field: value}
    with pytest.raises(ValueError, match=f"{field} must be positive"):
        train_batch(_unique_tokens(100), step=0, seed=0, **sizes)


@pytest.mark.parametrize("field", ["n_batches", "batch_size", "seq_len"])
def test_val_batches_rejects_non_positive_sizes(field: str) -> None:
    sizes = {"n_batches": 2, "batch_size": 2, "seq_len": 4, field: 0}
    with pytest.raises(ValueError, match=f"{field} must be positive"):
        val_batches(_unique_tokens(100), **sizes)


def test_check_corpus_fits_rejects_non_positive_seq_len() -> None:
    corpus = Corpus(_unique_tokens(100), _unique_tokens(100), 100, "x")
    with pytest.raises(ValueError, match="seq_len must be positive"):
        check_corpus_fits(corpus, seq_len=0)


def test_the_docs_corpus_is_english_prose_every_python_carries(tmp_path: Path) -> None:
    corpus = load_corpus(DataConfig("docs", cache_dir=str(tmp_path)))
    again = load_corpus(DataConfig("docs", cache_dir=str(tmp_path / "other")))
    assert np.array_equal(corpus.train, again.train) and np.array_equal(corpus.val, again.val)
    text = bytes(corpus.train).decode()
    words = text.split()
    assert len(text) > 300_000 and corpus.vocab_size == 256
    # prose: "the" is one word in twenty (about one in forty in the stdlib's source), and code
    # punctuation is rarer than in source
    assert words.count("the") / len(words) > 0.045
    assert sum(c in "()[]{}=_:#" for c in text) / len(text) < 0.045
    assert 0.08 < corpus.val.size / (corpus.train.size + corpus.val.size) < 0.12
    with pytest.raises(ValueError, match=r"data\.path must be None for data\.source 'docs'"):
        load_corpus(DataConfig("docs", path=str(tmp_path)))
