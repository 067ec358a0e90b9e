"""Warm against cold target runs (docs/methods.md §7): how many steps each takes to reach the cold
run's final validation loss, and the speedup, with and without what the warm start cost.

Curves are (step, validation loss) evaluations; a crossing between two evaluations is placed by
linear interpolation, so a speedup is not quantized to the evaluation interval. Pure functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sweep.core.sections import Speedup

Curve = Sequence[Sequence[float]]


def _sorted(curve: Curve) -> list[tuple[float, float]]:
    out = [(float(step), math.nan if loss is None else float(loss)) for step, loss in curve]
    return sorted(out, key=lambda p: p[0])


def steps_to_reach(curve: Curve, target_loss: float) -> float | None:
    """The first step at which the curve reaches `target_loss`: the first evaluation at or below
    it, or, when the evaluation before it was above, the step where the line between the two
    crosses it. None if the curve never gets there."""
    previous = None
    for step, loss in _sorted(curve):
        if math.isfinite(loss) and loss <= target_loss:
            if previous is None or not math.isfinite(previous[1]):
                return step
            (s0, l0), (s1, l1) = previous, (step, loss)
            return s0 + (s1 - s0) * (l0 - target_loss) / (l0 - l1)
        previous = (step, loss)
    return None


def speedup(
    warm_curve: Curve,
    cold_curve: Curve,
    source_steps_equiv: float = 0.0,
    tuning_steps_equiv: float = 0.0,
) -> Speedup:
    """Warm vs cold from their validation curves.

    target = the cold run's final validation loss; speedup = cold steps to reach it ÷ warm steps
    to reach it; speedup_with_source adds to the warm steps what training the warm start's
    source cost, and speedup_with_tuning also what tuning the proxy cost, each in target-model
    steps (FLOPs ÷ the target's FLOPs per step). The cold run uses the tuned values too, so the
    tuning figure is the most a user could charge the warm start. Returns target_loss,
    warm_steps, cold_steps, the three speedups and reason (None when they are defined). A warm
    run that never reaches the target gives None; one already there at step 0 gives +inf for
    speedup (and finite figures with a positive cost).
    """
    for name, value in (("source", source_steps_equiv), ("tuning", tuning_steps_equiv)):
        if not value >= 0:
            raise ValueError(f"{name}_steps_equiv must be >= 0, got {value}")
    out = Speedup(
        target_loss=math.nan,
        warm_steps=None,
        cold_steps=None,
        speedup=None,
        speedup_with_source=None,
        speedup_with_tuning=None,
        reason=None,
    )
    cold = _sorted(cold_curve)
    if not cold or not math.isfinite(cold[-1][1]):
        out["reason"] = "cold run has no finite final validation loss"
        return out
    target = cold[-1][1]
    out["target_loss"] = target
    out["cold_steps"] = cold_steps = steps_to_reach(cold, target)
    out["warm_steps"] = warm_steps = steps_to_reach(warm_curve, target)
    if cold_steps == 0:
        out["reason"] = "cold run was already at its final loss at step 0 (degenerate curve)"
        return out
    if warm_steps is None:
        out["reason"] = f"warm run never reached the cold final loss {target:.4g}"
        return out

    def ratio(denominator: float) -> float:
        return cold_steps / denominator if denominator > 0 else math.inf

    out["speedup"] = ratio(warm_steps)
    out["speedup_with_source"] = ratio(warm_steps + source_steps_equiv)
    out["speedup_with_tuning"] = ratio(warm_steps + source_steps_equiv + tuning_steps_equiv)
    if warm_steps == 0:
        out["reason"] = "warm run was already at the cold final loss at step 0"
    return out
