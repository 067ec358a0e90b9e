"""Shared fixtures: a small byte corpus written to a temp folder, loaded once per session."""

import sysconfig
from pathlib import Path

import pytest
import torch

from sweep.core.data import DataConfig, load_corpus, stdlib_files
from sweep.core.model import GPTConfig
from sweep.core.train import OptimConfig, RunConfig

TINY = GPTConfig(d_model=32, d_head=8, seq_len=32, n_layer=2)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """The first 400 KB of the standard library's own source, as a text-file corpus."""
    root = Path(sysconfig.get_paths()["stdlib"])
    folder = tmp_path_factory.mktemp("corpus")
    text = b"".join((root / rel).read_bytes() for rel in stdlib_files(root)[:200])[:400_000]
    path = folder / "corpus.txt"
    path.write_bytes(text)
    return load_corpus(DataConfig(source="text", path=str(path), cache_dir=str(folder)))


@pytest.fixture
def tiny_run() -> RunConfig:
    return RunConfig(
        model=TINY,
        optim=OptimConfig(lr=3e-3, warmup_steps=2),
        steps=12,
        batch_size=4,
        eval_every=4,
        eval_batches=2,
    )


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one intra-op thread (more only wait on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
