"""Read W&B offline run files (`run-*.wandb`) back: the proof that metrics were really logged.

The file is a LevelDB-style log (wandb's own `datastore` format): a 7-byte file header, then
32 KiB blocks of records, each with a 7-byte header (crc32, length, type) and a protobuf `Record`;
a record may be split FIRST/MIDDLE/LAST across blocks.
"""

import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[wandb_internal_pb2.Record]:
    raw = Path(path).read_bytes()
    ident, _magic, _version = struct.unpack("<4sHB", raw[:HEADER])
    assert ident == b":W&B", f"{path} is not a W&B run file"
    out, pos, pending = [], HEADER, b""
    while pos + HEADER <= len(raw):
        room = BLOCK - pos % BLOCK
        if room < HEADER:  # block trailer padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos : pos + HEADER])
        if kind == 0 and length == 0:
            break
        data = raw[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (FIRST, MIDDLE):
            pending += data
            continue
        if kind == LAST:
            data, pending = pending + data, b""
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        out.append(record)
    return out


def history(path: Path) -> list[dict[str, str]]:
    """Every logged step as {key: value_json}."""
    return [
        {item.key or "/".join(item.nested_key): item.value_json for item in r.history.item}
        for r in records(path)
        if r.WhichOneof("record_type") == "history"
    ]


def run_info(path: Path) -> dict:
    """Group, job type and config of the run."""
    for r in records(path):
        if r.WhichOneof("record_type") == "run":
            config = {item.key: item.value_json for item in r.run.config.update}
            return {
                "id": r.run.run_id,
                "group": r.run.run_group,
                "job_type": r.run.job_type,
                "config": config,
            }
    raise AssertionError(f"no run record in {path}")
