"""The throughput benchmark measures what it claims: three models of equal shapes, sane results.

No timing assertions: a shared CI machine makes any threshold flaky.
"""

import json

import pytest
import torch

from analysis.bench import (
    MODELS,
    RATIOS,
    RefGPT,
    ThroughputSettings,
    Timing,
    WidthResult,
    build,
    format_table,
    json_safe,
    measure_throughput,
    to_json,
)
from sweep.core.model import GPT

# One thread: on a loaded CPU two OpenMP threads can wait on each other ~10x longer.
SETTINGS = ThroughputSettings(
    widths=(32, 64),
    n_layer=2,
    d_head=8,
    seq_len=32,
    batch_size=4,
    steps=2,
    repeats=2,
    warmup=1,
    threads=1,
)


@pytest.fixture(scope="module")
def results(corpus):
    return measure_throughput(SETTINGS, corpus)


def test_results_are_positive_and_every_model_is_timed_every_repeat(results):
    assert [r.width for r in results] == [32, 64]
    for r in results:
        assert r.steps == 2
        assert r.tokens_per_timing == 2 * 4 * 32
        for model in MODELS:
            assert len(r.timings[model]) == SETTINGS.repeats
            assert all(t.wall > 0 and t.cpu >= 0 for t in r.timings[model])
            assert r.median(model) > 0
        for name in RATIOS:
            assert r.ratio(name) > 0 and r.paired_ratio(name) > 0
        assert sorted(map(sorted, r.order)) == [sorted(MODELS)] * SETTINGS.repeats
        assert r.order[0] != r.order[1]  # the order rotates between repeats
        assert set(r.clean_repeats()) <= set(range(SETTINGS.repeats))


def known(walls: dict[str, list[float]], tokens: int = 120) -> WidthResult:
    """A WidthResult from given wall times (no waiting: every repeat is clean)."""
    timings = {m: [Timing(w, w, 0.0) for w in walls[m]] for m in MODELS}
    return WidthResult(64, 1, tokens, 1, {}, timings, [list(MODELS)] * len(walls["mup"]))


# tokens/s with 120 tokens per timing: µP 120, 40, 60 (median 60); SP 120, 80, 30 (median 80);
# ref 60 throughout. Per-repeat µP/SP ratios: 1, 0.5, 2 (median 1).
WALLS = {"mup": [1.0, 3.0, 2.0], "sp": [1.0, 1.5, 4.0], "ref": [2.0, 2.0, 2.0]}


def test_ratios_from_known_timings():
    r = known(WALLS)
    assert r.median("mup") == pytest.approx(60.0) and r.median("sp") == pytest.approx(80.0)
    assert r.ratio("mup/sp") == pytest.approx(0.75)  # µP slower than SP: below 1
    assert r.ratio("mup/ref") == pytest.approx(1.0)
    # the median of per-repeat ratios is not the ratio of medians
    assert r.paired_ratio("mup/sp") == pytest.approx(1.0)
    assert r.paired_ratio("mup/ref") == pytest.approx(1.0)
    assert "0.750" in format_table([r])


def test_ratios_ignore_the_machine_speed_and_follow_the_faster_model():
    r = known(WALLS)
    slower_machine = known({m: [3 * w for w in ws] for m, ws in WALLS.items()})
    longer_timings = known(WALLS, tokens=360)
    for other in (slower_machine, longer_timings):
        assert other.median("mup") != pytest.approx(r.median("mup"))
        for name in RATIOS:
            assert other.ratio(name) == pytest.approx(r.ratio(name))
            assert other.paired_ratio(name) == pytest.approx(r.paired_ratio(name))
    faster_mup = known(WALLS | {"mup": [w / 2 for w in WALLS["mup"]]})  # twice the µP throughput
    for name in RATIOS:
        assert faster_mup.ratio(name) == pytest.approx(2 * r.ratio(name))
        assert faster_mup.paired_ratio(name) == pytest.approx(2 * r.paired_ratio(name))


def test_reference_has_the_shapes_of_the_mup_model(results):
    for r in results:
        assert r.params["ref"] == r.params["mup"] == r.params["sp"]
        gpt = GPT(SETTINGS.config(r.width, "mup"))
        assert r.params["mup"] == sum(p.numel() for p in gpt.parameters())
    # the same multiset of parameter shapes, with q, k, v fused into one (3d, d) matrix
    cfg = SETTINGS.config(64, "mup")
    d = cfg.d_model

    def shapes(model: torch.nn.Module) -> list[tuple[int, ...]]:
        return sorted(tuple(p.shape) for p in model.parameters())

    unfused = [
        part for s in shapes(RefGPT(cfg)) for part in ([(d, d)] * 3 if s == (3 * d, d) else [s])
    ]
    assert sorted(unfused) == shapes(GPT(cfg))


def test_each_model_has_its_own_optimizer_setup():
    (mup, mup_opt), (sp, _), (ref, ref_opt) = (build(SETTINGS, 64, m) for m in MODELS)
    assert isinstance(mup, GPT) and mup.cfg.parametrization == "mup"
    assert isinstance(sp, GPT) and sp.cfg.parametrization == "sp"
    assert isinstance(ref, RefGPT) and len(ref_opt.param_groups) == 1
    hidden = next(g for g in mup_opt.param_groups if g["role"] == "hidden")
    assert hidden["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"] / 2)  # µP: η / m, m = 2


def test_table_and_json_report_every_width(results, corpus):
    table = format_table(results)
    assert "µP/SP" in table and len(table.splitlines()) == 2 + len(results)
    report = json.loads(json.dumps(json_safe(to_json(SETTINGS, results, corpus, "cmd"))))
    assert report["machine"]["torch"] == torch.__version__
    assert report["settings"]["widths"] == [32, 64]
    for row, r in zip(report["results"], results, strict=True):
        assert row["raw_seconds"] == {m: r.seconds(m) for m in MODELS}
        assert row["ratios"]["mup/sp"] == pytest.approx(r.ratio("mup/sp"))


def test_settings_reject_nonsense():
    with pytest.raises(ValueError, match="steps"):
        ThroughputSettings(steps=0)
    with pytest.raises(ValueError, match="widths"):
        ThroughputSettings(widths=())


def test_clean_statistics_drop_repeats_where_a_model_waited_for_a_core():
    """Repeat 1 was contended (µP's threads waited half the time): clean medians skip it."""
    timings = {
        "mup": [Timing(1.0, 2.0, 0.0), Timing(4.0, 2.0, 4.0), Timing(1.0, 2.0, 0.0)],
        "sp": [Timing(1.0, 2.0, 0.0), Timing(1.0, 2.0, 0.0), Timing(1.0, 2.0, 0.0)],
        "ref": [Timing(0.5, 1.0, 0.0), Timing(0.5, 1.0, 0.0), Timing(0.5, 1.0, 0.0)],
    }
    r = WidthResult(64, 1, 100, 2, {}, timings, [list(MODELS)] * 3)
    assert r.wait_share("mup") == [0.0, 0.5, 0.0]
    assert r.clean_repeats() == [0, 2]
    assert r.ratio("mup/sp") == pytest.approx(1.0)  # the median already shrugs off one outlier
    assert r.paired_ratio("mup/sp", clean=True) == pytest.approx(1.0)
    assert r.ratio("mup/ref", clean=True) == pytest.approx(0.5)
    assert "2/3" in format_table([r])
    assert json_safe({"x": (float("nan"), 1.0)}) == {"x": [None, 1.0]}
