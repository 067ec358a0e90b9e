import pickle

import pytest
import torch

from sweep.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_round_trip(tmp_path):
    payload = {"w": torch.arange(6.0).view(2, 3), "step": 7, "hist": [(1, 0.5)]}
    save_checkpoint(tmp_path / "c.pt", payload)
    back = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(back["w"], payload["w"]) and back["step"] == 7 and back["hist"] == [(1, 0.5)]


def test_truncated_and_corrupted_files_fail_the_checksum(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"w": torch.randn(100)})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)
    flipped = bytearray(raw)
    flipped[-10] ^= 0xFF
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)


def test_foreign_file_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="header"):
        load_checkpoint(path)


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickled_code_is_not_executed(tmp_path):
    """A checkpoint carrying an arbitrary object is refused by weights_only loading."""
    path = tmp_path / "evil.pt"
    save_checkpoint(path, {"x": Evil()})
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 1})

    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind
