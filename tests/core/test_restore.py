"""The restoration model: identity at initialisation, file round trip, any frame size, and refusals."""

from __future__ import annotations

import pytest
import torch

from evc_archive.core.errors import ModelMismatchError
from evc_archive.core.restore import RestoreConfig, RestoreNet, Restorer, to_uint8, to_unit

TINY = RestoreConfig(channels=8, blocks=2)


def random_restorer(path, seed: int = 5) -> Restorer:
    """A tiny model with random weights everywhere (a fresh one is the identity)."""
    torch.manual_seed(seed)
    net = RestoreNet(TINY)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    Restorer.save(path, TINY, net)
    return Restorer.load(path)


def test_unit_conversions_round_trip_every_value():
    frames = torch.arange(256, dtype=torch.uint8).repeat(3, 1).T.reshape(1, 16, 16, 3)
    assert torch.equal(to_uint8(to_unit(frames)), frames)


def test_fresh_model_is_the_identity(tmp_path):
    Restorer.save(tmp_path / "r.pt", TINY, RestoreNet(TINY))
    frames = torch.randint(0, 256, (2, 33, 47, 3), dtype=torch.uint8)
    assert torch.equal(Restorer.load(tmp_path / "r.pt")(frames), frames)


def test_file_round_trip_any_size_and_deterministic(tmp_path):
    restorer = random_restorer(tmp_path / "r.pt")
    frames = torch.randint(0, 256, (1, 31, 45, 3), dtype=torch.uint8)  # odd sizes are padded inside
    out = restorer(frames)
    assert out.shape == frames.shape and out.dtype == torch.uint8
    assert not torch.equal(out, frames)
    again = Restorer.from_bytes((tmp_path / "r.pt").read_bytes())
    assert torch.equal(again(frames), out)
    assert again.content_hash == restorer.content_hash and again.config == TINY


def test_refuses_other_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ModelMismatchError, match="unreadable"):
        Restorer.load(tmp_path / "junk.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ModelMismatchError, match="not a restoration model"):
        Restorer.load(tmp_path / "other.pt")
