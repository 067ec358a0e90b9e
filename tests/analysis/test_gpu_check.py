"""The GPU check script runs end to end on the CPU at tiny sizes, so the one prepared script a
GPU machine gets is known to work, and its figures are what they say they are."""

import argparse
import json

import pytest

from analysis import gpu_check
from sweep.core.flops import flops_per_token

TINY = ["--device", "cpu", "--widths", "32", "64", "--layers", "2", "--d-head", "8"]
TINY += ["--seq-len", "32", "--batch-size", "4", "--steps", "2", "--warmup", "1"]
TINY += ["--repeats", "1", "--modes", "eager", "--skip-pipeline", "--peak-tflops", "1"]


def test_gpu_check_measures_every_model_at_every_width(tmp_path, one_thread):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main([*TINY, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [(row["width"], row["mode"]) for row in report["throughput"]] == [
        (32, "eager"),
        (64, "eager"),
    ]
    args = argparse.Namespace(seq_len=32, layers=2, d_head=8, widths=[32, 64])
    for row in report["throughput"]:
        for name in gpu_check.MODELS:
            assert row[f"{name}_tokens_per_s"] > 0
        assert row["mup_over_ref"] == pytest.approx(
            row["mup_tokens_per_s"] / row["ref_tokens_per_s"]
        )
        per_token = flops_per_token(gpu_check.model_config(args, row["width"], "mup"))
        assert row["mup_mfu"] == pytest.approx(per_token * row["mup_tokens_per_s"] / 1e12)
    assert report["train"]["width"] == 64 and report["train"]["mfu"] > 0
    assert report["peak_flops"] == 1e12 and "pipeline" not in report


def test_gpu_check_refuses_cuda_without_a_gpu(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU")
    assert gpu_check.main(["--device", "cuda", "--skip-pipeline"]) == 2
    assert "no GPU" in capsys.readouterr().out


def test_gpu_check_past_its_deadline_names_what_it_skipped_and_still_writes(tmp_path):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main([*TINY, "--deadline-s", "0", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["throughput"] == [] and "train" not in report
    assert report["skipped"] == ["eager width 32", "eager width 64", "train()"]


def test_gpu_check_refuses_in_one_line_when_a_dependency_does_not_import(monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "missing_imports", lambda: ["wandb (wandb): ImportError: x"])
    assert gpu_check.main(TINY) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "error: cannot import wandb (wandb): ImportError: x; install the wheelhouse first"
    ]
