"""Checkpoints that are written atomically, checksummed, and loaded without unpickling code.

File layout: one header line `musweep-ckpt 1 <sha256 of the payload>\n`, then the `torch.save`
payload. A crash mid-write leaves the previous file intact (write to a temporary file in the same
folder, fsync, `os.replace`); a truncated or corrupted file fails its checksum instead of loading
garbage; `torch.load(..., weights_only=True)` refuses arbitrary pickled objects.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

MAGIC = b"musweep-ckpt 1 "


class CheckpointError(RuntimeError):
    """A checkpoint file that is unreadable, truncated or fails its checksum."""


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
