"""Checkpoints that are written atomically, checksummed, and loaded without unpickling code.

File layout: one header line `musweep-ckpt 1 <sha256 of the payload>\n`, then the `torch.save`
payload. A crash mid-write leaves the previous file intact (`sweep.core.atomic`); a truncated or
corrupted file fails its checksum instead of loading garbage; `torch.load(..., weights_only=True)`
refuses arbitrary pickled objects.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from sweep.core.atomic import write_atomic

MAGIC = b"musweep-ckpt 1 "


class CheckpointError(RuntimeError):
    """A checkpoint file that is unreadable, truncated or fails its checksum."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    body = buf.getvalue()
    header = MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n"
    write_atomic(path, header + body)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    header, sep, body = raw.partition(b"\n")
    if not sep or not header.startswith(MAGIC):
        raise CheckpointError(f"{path} is not a musweep checkpoint (bad header)")
    expected = header[len(MAGIC) :].decode(errors="replace")
    if hashlib.sha256(body).hexdigest() != expected:
        raise CheckpointError(f"{path} fails its checksum: truncated or corrupted")
    return torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)


def set_aside_if_damaged(path: str | os.PathLike) -> str | None:
    """Move a run's own checkpoint that fails to load to `<name>.damaged`, so that the run
    starts again instead of failing; the reason, or None when it loads (or is not there)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        load_checkpoint(path)
    except CheckpointError as e:
        os.replace(path, path.with_name(path.name + ".damaged"))
        return str(e)
    return None
