"""A verdict: what a check concluded, as a status a program can gate on, and the sentence that
says it to a person. Every check (the transfer across the ladder, the target's own LR curve, the
coordinate check) and the run as a whole give one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from sweep.core.sections import VerdictRecord


class Status(StrEnum):
    """What a check concluded, from best to worst news."""

    passes = "passes"  # µP transfers; the tuned LR is within the tolerance; the check passes
    within_noise = "within_noise"  # above the tolerance, but the seeds cannot tell it from 0
    inconclusive = "inconclusive"  # an optimum not bracketed, or nothing finite to judge
    fails = "fails"  # does not transfer; beyond the tolerance and the noise; the check fails

    @property
    def warns(self) -> bool:
        """Whether a reader should be warned (the report highlights these)."""
        return self in (Status.inconclusive, Status.fails)


SEVERITY = tuple(Status)  # the order above: a combined verdict takes the worst of its parts


@dataclass(frozen=True)
class Verdict:
    status: Status
    text: str

    def to_dict(self) -> VerdictRecord:
        return VerdictRecord(status=str(self.status), text=self.text)

    @classmethod
    def from_dict(cls, record: VerdictRecord) -> Verdict:
        return cls(Status(record["status"]), str(record["text"]))


def combined(parts: Sequence[Verdict]) -> Verdict | None:
    """One verdict of several: the worst status, the sentences in order; None without parts."""
    if not parts:
        return None
    worst = max((p.status for p in parts), key=SEVERITY.index)
    return Verdict(worst, "; ".join(p.text for p in parts))
