"""Data parallelism on the CPU (gloo): N processes train the model one process trains.

The same global batch split over 2 processes gives the losses of 1 process to float32 round-off,
under DDP and FSDP2; a 2-process run killed mid-training resumes from its checkpoint and replays
the uninterrupted losses; µP's per-parameter groups (LR, weight decay, ε) are those of the
single-process model; a local Submitit job of 2 tasks forms the process group itself.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import torch

from sweep.core.checkpoint import load_checkpoint
from sweep.core.data import stdlib_files
from sweep.edges.launch import run_jobs

WORKER = Path(__file__).with_name("dp_worker.py")
ROUND_OFF = 2e-5  # float32 sums in another order, through a dozen Adam steps


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> dict[str, str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    folder = tmp_path_factory.mktemp("dp_corpus")
    data = b"".join((root / rel).read_bytes() for rel in stdlib_files(root)[:80])[:200_000]
    (folder / "corpus.txt").write_bytes(data)
    return {"corpus": str(folder / "corpus.txt"), "cache": str(folder)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(n: int, spec: dict, folder: Path) -> list[subprocess.Popen]:
    """`n` worker processes of one gloo group, training `spec`."""
    path = folder / f"spec_{time.monotonic_ns()}.json"
    path.write_text(json.dumps(spec))
    port = free_port()
    procs = []
    for rank in range(n):
        env = os.environ | {
            "RANK": str(rank),
            "WORLD_SIZE": str(n),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(path)], env=env))
    return procs


def run_world(n: int, spec: dict, folder: Path) -> dict:
    procs = start(n, spec, folder)
    codes = [p.wait(timeout=240) for p in procs]
    assert codes == [0] * n
    return json.loads(Path(spec["out"]).read_text())


def losses(record: dict, key: str) -> list[float]:
    return [loss for _, loss in record["result"][key]]


def assert_same_losses(a: dict, b: dict) -> None:
    for key in ("train_loss", "val_loss"):
        assert [s for s, _ in a["result"][key]] == [s for s, _ in b["result"][key]]
        assert losses(a, key) == pytest.approx(losses(b, key), rel=ROUND_OFF)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_train_the_model_one_process_trains(text, tmp_path, strategy):
    spec = text | {"width": 32, "steps": 12, "strategy": strategy}
    one = run_world(1, spec | {"out": str(tmp_path / "one.json")}, tmp_path)
    two = run_world(2, spec | {"out": str(tmp_path / "two.json")}, tmp_path)
    assert one["result"]["status"] == two["result"]["status"] == "completed"
    assert losses(one, "train_loss")[-1] < losses(one, "train_loss")[0]
    assert_same_losses(one, two)
    assert two["result"]["devices"] == 2
    # the µP groups (names, LR and weight-decay multipliers, ε) and the global shapes
    assert two["groups"] == one["groups"]
    assert two["shapes"] == one["shapes"]
    hidden = next(g for g in two["groups"] if g["role"] == "hidden")
    assert hidden["lr_mult"] == pytest.approx(16 / 32)  # η/m at twice the base width


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    ("strategy", "example", "readout", "hidden_lr_mults"),
    [
        # η / (fan-in multiplier): 1/2 for the attention, 40/88 for SwiGLU's rounded hidden size
        ("ddp", "llama", None, [40 / 88, 1 / 2]),
        ("fsdp", "llama", None, [40 / 88, 1 / 2]),
        ("fsdp", "nanogpt", "lm_head", [1 / 2]),  # tied embeddings, blocks under transformer.h
    ],
)
def test_a_custom_mup_model_keeps_its_base_shapes_under_data_parallelism(
    text, tmp_path, strategy, example, readout, hidden_lr_mults
):
    """mup's infshape does not survive FSDP's DTensors; the built model no longer needs it."""
    factory = f"{EXAMPLES / example}.py:build"
    spec = text | {"width": 32, "steps": 8, "strategy": strategy, "factory": factory}
    spec |= {"readout": readout}
    one = run_world(1, spec | {"out": str(tmp_path / "one.json")}, tmp_path)
    two = run_world(2, spec | {"out": str(tmp_path / "two.json")}, tmp_path)
    assert losses(one, "train_loss")[-1] < losses(one, "train_loss")[0]
    assert_same_losses(one, two)
    assert two["groups"] == one["groups"]
    hidden = [g for g in two["groups"] if g["role"] == "hidden"]
    assert sorted(g["lr_mult"] for g in hidden) == pytest.approx(hidden_lr_mults)


def test_micro_batches_under_data_parallelism_keep_the_losses(text, tmp_path):
    spec = text | {"width": 32, "steps": 8}
    whole = run_world(1, spec | {"out": str(tmp_path / "whole.json")}, tmp_path)
    split = run_world(2, spec | {"out": str(tmp_path / "split.json"), "micro": 2}, tmp_path)
    assert_same_losses(whole, split)


def test_a_killed_two_process_run_resumes_with_the_same_losses(text, tmp_path):
    spec = text | {"width": 32, "steps": 60, "eval_every": 5, "checkpoint_every": 5}
    reference = run_world(1, spec | {"out": str(tmp_path / "ref.json")}, tmp_path)
    checkpoint = tmp_path / "run.ckpt"
    resumed = spec | {"out": str(tmp_path / "resumed.json"), "checkpoint": str(checkpoint)}
    procs = start(2, resumed, tmp_path)
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    for p in procs:  # a node lost mid-run: no process gets to clean up
        p.send_signal(signal.SIGKILL)
        p.wait()
    step = load_checkpoint(checkpoint)["step"]
    assert 0 < step < spec["steps"]
    record = run_world(2, resumed, tmp_path)
    assert record["result"]["resumed_from"] == step
    assert_same_losses(reference, record)
    saved = load_checkpoint(checkpoint)
    assert saved["step"] == spec["steps"] and saved["precision"] == "fp32"
    assert all(
        isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in saved["model"].values()
    )


def importable_tests() -> str:
    """PYTHONPATH with this folder first, so local Submitit jobs can unpickle its functions."""
    return os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])


def rank_and_sum(value: float) -> tuple[int, int, float]:
    """A job of several tasks: join the group, all-reduce, report (rank, size, sum)."""
    import torch.distributed as dist

    from sweep.edges.distributed import process_group

    with process_group("cpu", "ddp") as world:
        total = torch.tensor([value * (world.rank + 1)])
        dist.all_reduce(total)
        return world.rank, world.size, float(total.item())


def test_a_local_job_of_two_tasks_forms_one_process_group(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", importable_tests())
    launcher = {
        "kind": "local",
        "max_parallel": 1,
        "timeout_min": 5,
        "gpus_per_node": 0,
        "tasks_per_node": 2,
    }
    seen = []
    run_jobs(
        launcher,
        tmp_path / "jobs",
        rank_and_sum,
        [1.5],
        lambda spec, result, error: seen.append((result, error)),
        parallel=True,
    )
    ((result, error),) = seen
    assert error is None
    assert result == (0, 2, 1.5 * 1 + 1.5 * 2)  # rank 0's answer, after summing both ranks'


def gpu_of_job(spec: tuple[str, int, int]) -> tuple[str, float, float, bool]:
    """Hold a GPU until another job is seen running beside it, or every job has started.

    Each job leaves a start and an end mark in a shared folder, so concurrency is observed by
    the jobs themselves rather than inferred from start times a busy machine can stagger.
    """
    folder, index, jobs = Path(spec[0]), spec[1], spec[2]
    start = time.time()
    (folder / f"{index}.start").touch()
    beside = False
    while time.time() - start < 30:
        started = {int(p.stem) for p in folder.glob("*.start")} - {index}
        ended = {int(p.stem) for p in folder.glob("*.end")}
        beside = bool(started - ended)
        if beside or len(started) == jobs - 1:
            break
        time.sleep(0.05)
    time.sleep(0.2)
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    (folder / f"{index}.end").touch()
    return gpu, start, time.time(), beside


def test_local_jobs_are_packed_one_per_gpu(tmp_path, monkeypatch):
    """Two GPUs, five single-device jobs: each job sees one GPU, never one another job holds."""
    monkeypatch.setenv("PYTHONPATH", importable_tests())
    launcher = {"kind": "local", "max_parallel": 8, "timeout_min": 5, "gpus_per_node": 2}
    marks = tmp_path / "marks"
    marks.mkdir()
    seen = []
    run_jobs(
        launcher,
        tmp_path / "jobs",
        gpu_of_job,
        [(str(marks), index, 5) for index in range(5)],
        lambda spec, result, error: seen.append(error or result),
    )
    assert len(seen) == 5 and {gpu for gpu, *_ in seen} == {"0", "1"}
    for gpu in ("0", "1"):
        spans = sorted((start, end) for g, start, end, _ in seen if g == gpu)
        assert all(end <= later for (_, end), (later, _) in itertools.pairwise(spans))
    assert any(beside for *_, beside in seen)  # two ran at once, one on each GPU
