"""Fitting the checks into a budget (docs/methods.md §12): everything the tool spends besides the
target's own run, sized before anything trains.

Each part of the checks is an `Item` priced at its worst case (the most its grids may grow to),
so what runs can never exceed what was allotted. The required items (tuning at the proxy, the
µP transfer check) are kept whatever they cost: when they alone exceed the budget the run is
refused, with the budget and the settings that would fit. The others are kept in priority order
while they fit; an item of a `group` is one of several sizes of the same check, largest first,
of which the first that fits in its `share` of what is left is kept. A dropped item says what the
verdict will not be able to say without it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Item:
    """One part of the checks at its worst-case cost, and the settings that keep or drop it."""

    stage: str
    what: str  # "µP transfer grids at widths 16, 32, 64"
    flops: float
    required: bool = False
    group: str = ""  # alternatives of one check: the first of a group that fits is kept
    share: float = 1.0  # the most of what is left (when the group is reached) it may take
    lost: str = ""  # what the verdict cannot say once it is dropped
    keep: Mapping[str, Any] = field(default_factory=dict)  # config values when kept
    drop: Mapping[str, Any] = field(default_factory=dict)  # config values when dropped


@dataclass(frozen=True)
class Allocation:
    budget_flops: float
    kept: tuple[Item, ...]
    dropped: tuple[Item, ...]

    @property
    def required_flops(self) -> float:
        return sum(i.flops for i in self.kept if i.required)

    @property
    def flops(self) -> float:
        """The most the kept items may spend."""
        return sum(i.flops for i in self.kept)

    @property
    def fits(self) -> bool:
        return self.required_flops <= self.budget_flops

    def settings(self) -> dict[str, Any]:
        """The config values the allocation sets: the kept items' over the dropped ones'."""
        out: dict[str, Any] = {}
        for item in self.dropped:
            out.update(item.drop)
        for item in self.kept:
            out.update(item.keep)
        return out


def allocate(items: Sequence[Item], budget_flops: float) -> Allocation:
    """Keep every required item, then each optional one, in order, while its worst case fits in
    what is left (for a group, its first member that fits in its share); drop the rest."""
    kept = [i for i in items if i.required]
    left = budget_flops - sum(i.flops for i in kept)
    dropped: list[Item] = []
    chosen: set[str] = set()
    room: dict[str, float] = {}  # per group, what it may take (fixed when the group is reached)
    for item in items:
        if item.required:
            continue
        if item.group:
            room.setdefault(item.group, max(0.0, left) * item.share)
            if item.group in chosen or item.flops > room[item.group] or item.flops > left:
                dropped.append(item)
                continue
            chosen.add(item.group)
        elif item.flops > left:
            dropped.append(item)
            continue
        kept.append(item)
        left -= item.flops
    # a group with a member kept has lost nothing; one with none kept is its smallest size
    dropped = [
        i
        for n, i in enumerate(dropped)
        if not i.group
        or (i.group not in chosen and all(j.group != i.group for j in dropped[n + 1 :]))
    ]
    return Allocation(budget_flops, tuple(kept), tuple(dropped))


def largest_fitting(cost: Any, low: int, high: int, allowance: float) -> int | None:
    """The largest integer n in [low, high] with cost(n) ≤ allowance (cost rising in n), or None
    when even `low` does not fit."""
    if cost(low) > allowance:
        return None
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if cost(mid) <= allowance else (low, mid - 1)
    return low
