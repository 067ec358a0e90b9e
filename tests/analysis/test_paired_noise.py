"""Judging the same regrets by the paired and by the unpaired band: a regret between the two
bands fails under the paired one and hides in the noise under the unpaired one."""

import json

import pytest

from analysis.paired_noise import judged, main


def summary(regret_64: float, target_regret: float) -> dict:
    """A finished run's sections as far as the comparison reads them: a paired band of 0.4 %
    (relative), the unpaired one 4× wider, µP width 64 losing `regret_64`."""
    noise = {
        "std": 0.02,
        "paired_std": 0.00707,
        "correlation": 0.94,
        "band": 0.01,
        "unpaired_band": 0.04,
        "relative_band": 0.004,
        "relative_unpaired_band": 0.016,
        "seeds_per_point": 1,
    }
    series = {
        "bracketed": {"32": True, "64": True},
        "regret": {"32": 0.0, "64": regret_64},
        "regret_band": {"32": 0.004, "64": 0.004},
    }
    return {
        "transfer": {"noise": noise, "mup": series, "sp": series, "tolerance": 0.005},
        "verify": {"bracketed": True, "regret": target_regret},
    }


def test_a_regret_between_the_bands_changes_its_verdict():
    figures = judged(summary(regret_64=0.012, target_regret=0.012))
    assert figures["band_ratio"] == pytest.approx(0.25)
    assert (figures["transfer_paired"], figures["transfer_unpaired"]) == ("fails", "within_noise")
    assert (figures["verify_paired"], figures["verify_unpaired"]) == ("fails", "within_noise")
    assert figures["verdicts_changed"] == 2


def test_a_regret_within_the_tolerance_passes_under_either_band(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary(regret_64=0.002, target_regret=0.0)))
    out = tmp_path / "noise.json"
    assert main([str(path), "--json", str(out)]) == 0
    figures = json.loads(out.read_text())[str(path)]
    assert figures["transfer_paired"] == figures["transfer_unpaired"] == "passes"
    assert figures["verdicts_changed"] == 0
