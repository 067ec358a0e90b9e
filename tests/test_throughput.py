"""The plan's throughput: the rate and per-layer overhead recovered from two steps, measured
once per machine key and kept, a stated rate for a cluster this machine is not, and the plan
that needs neither SLURM nor a GPU here."""

import json

import pytest
import torch

from sweep.config import compose_config, execution, resolve_hardware
from sweep.core.model import GPTConfig
from sweep.core.throughput import Throughput, fitted
from sweep.core.train import RunConfig
from sweep.edges import throughput as T
from sweep.pipeline import Pipeline


def run_of(width: int, layers: int) -> RunConfig:
    return RunConfig(GPTConfig(d_model=width, n_layer=layers, seq_len=64), steps=10, batch_size=8)


def test_two_steps_give_the_rate_and_the_overhead_that_made_them():
    truth = Throughput(5e10, 3e-3)
    small, large = run_of(32, 2), run_of(512, 2)
    points = [(r.flops / r.steps, truth.step_seconds(r)) for r in (small, large)]
    found = fitted(2, *points, "synthetic")
    assert found.flops_per_s == pytest.approx(5e10)
    assert found.layer_overhead_s == pytest.approx(3e-3)
    deep = run_of(128, 12)  # another depth and width: the same time as the truth's
    assert found.step_seconds(deep) == pytest.approx(truth.step_seconds(deep))
    # noise that makes the larger step cheaper per FLOP than the smaller: its plain rate
    noisy = fitted(2, (points[0][0], 1.0), points[1], "noisy")
    assert noisy.layer_overhead_s == 0 and noisy.flops_per_s == pytest.approx(
        points[1][0] / points[1][1]
    )
    with pytest.raises(ValueError, match="positive"):
        Throughput(0.0)


def test_measured_once_per_machine_key_and_a_damaged_record_measured_again(tmp_path, monkeypatch):
    cfg = compose_config("+ladder=gpt_tiny", "hardware.device=cpu")
    resolve_hardware(cfg, 0)
    calls = []

    def measured(_cfg, _execution):
        calls.append(1)
        return (1e8, 0.01), (5e9, 0.07)

    monkeypatch.setattr(T, "measured", measured)
    first = T.plan_throughput(cfg, tmp_path, execution(cfg))
    assert T.plan_throughput(cfg, tmp_path, execution(cfg)) == first and len(calls) == 1
    assert first.source.startswith("measured here (cpu, fp32")
    record = json.loads((tmp_path / T.CACHE_FILE).read_text())
    record["key"]["threads"] += 1  # another thread count: another machine for this purpose
    (tmp_path / T.CACHE_FILE).write_text(json.dumps(record))
    T.plan_throughput(cfg, tmp_path, execution(cfg))
    (tmp_path / T.CACHE_FILE).write_text('{"key": {')  # cut short
    again = T.plan_throughput(cfg, tmp_path, execution(cfg))
    assert len(calls) == 3 and again == first


def test_measuring_trains_the_two_reference_steps(tmp_path):
    cfg = compose_config("+ladder=gpt_tiny", "hardware.device=cpu")
    resolve_hardware(cfg, 0)
    (f_small, t_small), (f_large, t_large) = T.measured(cfg, execution(cfg))
    assert f_large > 10 * f_small and t_small > 0 and t_large > 0


CLUSTER = [
    "+ladder=gpt_cluster",
    "launcher=slurm",
    "launcher.nodes=8",
    "launcher.gpus_per_node=8",
    "model.vocab_size=50304",
    "logger=none",
    "stages=[plan]",
]


def test_a_cluster_plan_on_a_machine_without_slurm_or_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here: a plan submits nothing
    cfg = compose_config(
        f"out_root={tmp_path}", *CLUSTER, "hardware.peak_tflops=989", "hardware.mfu=0.4"
    )
    record = Pipeline(cfg).run()
    rate = 989e12 * 0.4
    assert record["throughput"]["source"] == "stated: 989 TFLOP/s peak × MFU 0.4"
    target = next(s for s in record["stages"] if s["stage"] == "target")
    # the warm run spread over 64 GPUs: its FLOPs over their rate, to within its source's share
    alone = target["wanted_flops"] / (64 * rate)
    assert alone <= target["seconds"] <= 1.05 * alone
    assert record["total"]["max_besides_target"] <= record["budget"]["max_vs_target"] <= 0.1
    assert not list(tmp_path.glob("**/model_check.json"))  # no model check in a plan


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU to measure")
def test_a_gpu_plan_without_a_stated_rate_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    cfg = compose_config(f"out_root={tmp_path}", *CLUSTER)
    with pytest.raises(ValueError, match=r"give hardware\.peak_tflops"):
        Pipeline(cfg).run()
