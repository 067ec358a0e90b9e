"""Warm against cold: steps to the cold run's final loss, interpolated between evaluations."""

import math

import numpy as np
import pytest

from sweep.core.speedup import speedup, steps_to_reach


def curve(steps, losses):
    return [(int(s), float(v)) for s, v in zip(steps, losses, strict=True)]


STEPS = np.arange(0, 401, 25)


def test_steps_to_reach_interpolates_between_evaluations():
    c = curve(STEPS, 5.0 - STEPS / 100)  # a line: the crossing is exact
    assert steps_to_reach(c, 3.0) == pytest.approx(200)
    assert steps_to_reach(c, 2.99) == pytest.approx(201)
    assert steps_to_reach(c, 3.1) == pytest.approx(190)
    assert steps_to_reach(c, 0.0) is None
    assert steps_to_reach([(10, math.nan), (20, 1.0)], 2.0) == 20  # no finite point before
    assert steps_to_reach([(0, 1.0), (20, 0.5)], 2.0) == 0


def test_speedup_four_times_and_what_it_costs():
    cold = curve(STEPS, np.maximum(5.0 - STEPS / 100, 3.0))  # reaches its final 3.0 at step 200
    warm = curve(STEPS, np.maximum(3.5 - STEPS / 100, 2.5))  # reaches 3.0 at step 50
    out = speedup(warm, cold)
    assert out["target_loss"] == 3.0
    assert out["cold_steps"] == pytest.approx(200) and out["warm_steps"] == pytest.approx(50)
    assert out["speedup"] == pytest.approx(4.0)
    assert out["speedup_with_source"] == pytest.approx(4.0)
    assert out["reason"] is None
    costed = speedup(warm, cold, source_steps_equiv=50, tuning_steps_equiv=100)
    assert costed["speedup_with_source"] == pytest.approx(2.0)
    assert costed["speedup_with_tuning"] == pytest.approx(1.0)


def test_a_crossing_between_evaluations_is_not_quantized():
    """Warm evaluations at 0, 100, 200 around a crossing at 130: the speedup is 300/130, not
    the 300/200 the first evaluation below would give."""
    cold = [(0, 5.0), (100, 4.0), (200, 3.5), (300, 3.0)]
    warm = [(0, 3.6), (100, 3.3), (200, 2.6)]
    out = speedup(warm, cold)
    assert out["warm_steps"] == pytest.approx(100 + 100 * 0.3 / 0.7)
    assert out["speedup"] == pytest.approx(300 / (100 + 100 * 0.3 / 0.7))


def test_speedup_none_when_warm_never_reaches_the_target():
    cold = curve(STEPS, 5.0 - STEPS / 100)
    warm = curve(STEPS, np.full(len(STEPS), 2.5))  # stuck above cold's final 1.0
    out = speedup(warm, cold, source_steps_equiv=10)
    assert out["speedup"] is None and out["speedup_with_source"] is None
    assert out["cold_steps"] == pytest.approx(400) and out["warm_steps"] is None
    assert "never reached" in out["reason"]


def test_speedup_edge_cases():
    cold = curve(STEPS, 5.0 - STEPS / 100)
    warm_done = curve(STEPS, np.full(len(STEPS), 0.5))
    out = speedup(warm_done, cold, source_steps_equiv=100)
    assert out["speedup"] == math.inf and out["speedup_with_source"] == pytest.approx(4.0)
    diverged_cold = [*cold[:-1], (400, math.nan)]
    assert speedup(warm_done, diverged_cold)["speedup"] is None
    with pytest.raises(ValueError):
        speedup(warm_done, cold, source_steps_equiv=-1)
    with pytest.raises(ValueError):
        speedup(warm_done, cold, tuning_steps_equiv=math.nan)
