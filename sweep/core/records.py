"""Result records: JSON files written atomically with a checksum, read back only when whole.

Every result a stage writes (a transfer point, a target run, a check at the target) is a cache
of work that can be redone. A record that is truncated, garbled or fails its checksum is never
used and never a crash: `read_record` moves it aside to `<name>.damaged`, says so on the
"musweep" logger, and returns None, so the stage that needs it trains it again. Records written
before checksums existed (plain JSON objects) are still read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from sweep.core.atomic import write_atomic

LOG = logging.getLogger("musweep")
CHECKSUM = "_sha256"


def _digest(record: Any) -> str:
    canonical = json.dumps(record, sort_keys=True, default=float)
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Write `record` (a JSON object) atomically, with the checksum of its content."""
    write_atomic(path, json.dumps(record | {CHECKSUM: _digest(record)}, default=float).encode())


def read_record(path: str | os.PathLike) -> dict[str, Any] | None:
    """The record at `path`; None when there is none, or when it is damaged (then it is moved
    aside to `<name>.damaged` and named in a warning, and its work is redone)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        return _damaged(path, f"unreadable: {e}")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        return _damaged(path, f"not valid JSON ({e.msg} at character {e.pos})")
    if not isinstance(record, dict):
        return _damaged(path, "not a JSON object")
    expected = record.pop(CHECKSUM, None)
    if expected is not None and expected != _digest(record):
        return _damaged(path, "it fails its checksum")
    return record


def _damaged(path: Path, reason: str) -> None:
    aside = path.with_name(path.name + ".damaged")
    os.replace(path, aside)
    LOG.warning("damaged result %s (%s): moved to %s; its run will be redone", path, reason, aside)
    return None
