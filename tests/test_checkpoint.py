"""Checkpoints: exact resume, every state kind round-trips, broken files are refused."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from scoredec.checkpoint import (
    CheckpointError,
    checkpoint_paths,
    is_complete,
    load_checkpoint,
    save_checkpoint,
)

STEPS = 6  # N: the run is 2N steps, split at N


def _build():
    model = nn.Sequential(
        nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.2), nn.LayerNorm(16), nn.Linear(16, 3)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2 * STEPS, eta_min=1e-4)
    gen = torch.Generator().manual_seed(1234)
    return model, opt, sched, gen


def _train(model, opt, sched, gen, data, steps):
    model.train()
    for _ in range(steps):
        # batches from the explicit generator; noise (and dropout) from the global RNG and numpy/random
        idx = torch.randint(0, data.shape[0], (8,), generator=gen)
        x = data[idx] + 0.01 * torch.randn(8, 5)
        x = x * float(np.random.uniform(0.9, 1.1)) + random.random() * 1e-3
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def _seed(s):
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


def _scramble():
    _seed(999)
    torch.rand(100)


def test_resume_is_bitwise_exact(tmp_path):
    data = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))

    _seed(0)
    ref = _build()
    _train(*ref, data, 2 * STEPS)

    _seed(0)
    first = _build()
    _train(*first, data, STEPS)
    model, opt, sched, gen = first
    save_checkpoint(
        tmp_path / "ck",
        modules={"model": model},
        optimizers={"opt": opt},
        schedulers={"sched": sched},
        generators={"batches": gen},
        meta={"step": STEPS},
    )
    del first, model, opt, sched, gen

    _scramble()
    model, opt, sched, gen = _build()
    gen.manual_seed(5)
    meta = load_checkpoint(
        tmp_path / "ck",
        modules={"model": model},
        optimizers={"opt": opt},
        schedulers={"sched": sched},
        generators={"batches": gen},
    )
    assert meta == {"step": STEPS}
    _train(model, opt, sched, gen, data, STEPS)

    for (name, a), b in zip(ref[0].state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    assert ref[2].get_last_lr() == sched.get_last_lr()
    assert torch.equal(ref[3].get_state(), gen.get_state())


class WithBuffers(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("stats", torch.zeros(4, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        self.bn = nn.BatchNorm1d(2)


def test_float64_buffers_and_batchnorm_round_trip(tmp_path):
    a = WithBuffers()
    a.stats.copy_(torch.tensor([1 / 3, 1e-300, -2.5, 7.0], dtype=torch.float64))
    a.count.fill_(41)
    a.bn(torch.randn(5, 2))
    save_checkpoint(tmp_path / "m", modules={"m": a}, global_rng=False)
    b = WithBuffers()
    load_checkpoint(tmp_path / "m", modules={"m": b}, global_rng=False)
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert x.dtype == y.dtype and torch.equal(x, y), k


def test_tied_and_noncontiguous_tensors(tmp_path):
    m = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    m[1].weight = m[0].weight  # shared memory
    with torch.no_grad():
        m[0].weight.copy_(torch.randn(4, 4).t())  # values from a transposed view
    save_checkpoint(tmp_path / "t", modules={"m": m}, global_rng=False)
    n = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    load_checkpoint(tmp_path / "t", modules={"m": n}, global_rng=False)
    assert torch.equal(n[0].weight, m[0].weight) and torch.equal(n[1].weight, m[0].weight)


def test_scheduler_state_round_trip(tmp_path):
    p = nn.Parameter(torch.zeros(2))
    opt = torch.optim.Adam([p], lr=1.0)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)  # holds best = inf
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for loss in (3.0, 4.0):
        opt.step()
        cosine.step()
        plateau.step(loss)
    save_checkpoint(tmp_path / "s", optimizers={"o": opt}, schedulers={"p": plateau, "c": cosine})
    opt2 = torch.optim.Adam([nn.Parameter(torch.zeros(2))], lr=1.0)
    plateau2 = torch.optim.lr_scheduler.ReduceLROnPlateau(opt2, patience=0)
    cosine2 = torch.optim.lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    load_checkpoint(tmp_path / "s", optimizers={"o": opt2}, schedulers={"p": plateau2, "c": cosine2})
    assert plateau2.state_dict() == plateau.state_dict()
    assert cosine2.state_dict() == cosine.state_dict()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_global_rng_restored(tmp_path):
    _seed(3)
    save_checkpoint(tmp_path / "r")
    expected = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    _scramble()
    np.random.randn()  # leaves a cached gaussian behind
    load_checkpoint(tmp_path / "r")
    got = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])
    assert expected[2:] == got[2:]


def test_json_is_plain_and_no_pickle(tmp_path):
    m = nn.Linear(2, 2)
    save_checkpoint(
        tmp_path / "c", modules={"m": m}, meta={"step": np.int64(3), "loss": np.float32(0.5)}
    )
    st_path, json_path = checkpoint_paths(tmp_path / "c")
    doc = json.loads(json_path.read_text())
    assert doc["meta"] == {"step": 3, "loss": 0.5} and doc["version"] == 1
    assert doc["tensors"]["module/m/weight"] == {"dtype": "float32", "shape": [2, 2]}
    assert not st_path.read_bytes().startswith(b"\x80")  # not a pickle stream


def test_nan_meta_refused(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        save_checkpoint(tmp_path / "c", meta={"loss": float("nan")})
    assert not is_complete(tmp_path / "c")


def test_missing_and_incomplete(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothere\.json"):
        load_checkpoint(tmp_path / "nothere")
    save_checkpoint(tmp_path / "c", modules={"m": nn.Linear(2, 2)})
    checkpoint_paths(tmp_path / "c")[1].unlink()
    assert not is_complete(tmp_path / "c")
    with pytest.raises(CheckpointError, match=r"c\.json.*incomplete"):
        load_checkpoint(tmp_path / "c", modules={"m": nn.Linear(2, 2)})


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "empty"])
def test_corrupt_tensor_file_refused(tmp_path, damage):
    m = nn.Linear(8, 8)
    save_checkpoint(tmp_path / "c", modules={"m": m})
    st_path = checkpoint_paths(tmp_path / "c")[0]
    data = bytearray(st_path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = bytearray(np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes())
    elif damage == "flip":
        data[-5] ^= 0xFF
    else:
        data = bytearray()
    st_path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"c\.safetensors"):
        load_checkpoint(tmp_path / "c", modules={"m": nn.Linear(8, 8)})


def test_mismatches_name_the_entry(tmp_path):
    save_checkpoint(
        tmp_path / "c",
        modules={"m": nn.Linear(4, 3)},
        optimizers={"o": torch.optim.Adam(nn.Linear(4, 3).parameters())},
    )
    with pytest.raises(CheckpointError, match=r"module 'm': entry '(weight|bias)' has shape"):
        load_checkpoint(tmp_path / "c", modules={"m": nn.Linear(4, 5)})
    with pytest.raises(CheckpointError, match=r"'m'.*missing"):
        load_checkpoint(tmp_path / "c", modules={"m": nn.Linear(4, 3, bias=False)})
    with pytest.raises(
        CheckpointError,
        match=r"module 'm': entry '(weight|bias)' is torch.float32 in the checkpoint, torch.float64",
    ):
        load_checkpoint(tmp_path / "c", modules={"m": nn.Linear(4, 3).double()})
    with pytest.raises(CheckpointError, match=r"no module named 'actor'"):
        load_checkpoint(tmp_path / "c", modules={"actor": nn.Linear(4, 3)})
    with pytest.raises(CheckpointError, match=r"optimizer 'o'"):
        load_checkpoint(
            tmp_path / "c", optimizers={"o": torch.optim.Adam(nn.Linear(4, 3, bias=False).parameters())}
        )


def test_optimizer_state_shape_mismatch(tmp_path):
    m = nn.Linear(4, 3)
    opt = torch.optim.Adam(m.parameters())
    m(torch.randn(2, 4)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "c", optimizers={"o": opt})
    other = nn.Linear(4, 5)
    with pytest.raises(CheckpointError, match=r"optimizer 'o'.*exp_avg"):
        load_checkpoint(tmp_path / "c", optimizers={"o": torch.optim.Adam(other.parameters())})


def test_overwrite_uncommits_first(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "c", modules={"m": nn.Linear(2, 2)}, meta={"v": 1})
    import scoredec.checkpoint as ck

    def boom(path, obj):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "atomic_write_json", boom)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "c", modules={"m": nn.Linear(2, 2)}, meta={"v": 2})
    # new tensors may be on disk, but without the commit marker the stem is incomplete, not mixed
    assert not is_complete(tmp_path / "c")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "c")
