"""`scoredec export`: per-agent ONNX / TorchScript actors equal the PyTorch actors (issue 16)."""

import json
import warnings

import numpy as np
import pytest
import torch

from scoredec.actors import Actors
from scoredec.cli import main
from scoredec.export import PARITY_TOLERANCE, export_run
from scoredec.layout import AgentSpec
from scoredec.pipeline import save_actors

# Agents of different widths, so that padding and slicing are exercised.
SPEC = AgentSpec(obs_dims=(3, 5, 4), act_dims=(2, 1, 3))
NAMES = ["scout", "carrier/1", "base"]


def make_run(path, input_norm=False, mode="decentralized"):
    torch.manual_seed(0)
    actors = Actors(SPEC, mode=mode, hidden=16, layers=2, input_norm=input_norm)
    with torch.no_grad():
        for p in actors.parameters():  # weights large enough that tanh saturates somewhere
            p.normal_(0.0, 0.7)
        if input_norm:  # running statistics far from the identity
            actors.norm.running_mean.normal_(0.0, 2.0)
            actors.norm.running_var.uniform_(0.2, 4.0)
    save_actors(path, actors, {"env_id": "mine", "agent_names": NAMES, "method": "test"})
    return actors.eval()


def run_file(fmt, path, obs):
    if fmt == "torchscript":
        with warnings.catch_warnings():  # torch marks TorchScript deprecated; it still loads
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path))
        return module(torch.from_numpy(obs)).detach().numpy()
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["action"], {"obs": obs})[0]


@pytest.mark.parametrize("fmt,input_norm", [("torchscript", False), ("torchscript", True),
                                            ("onnx", True)])
def test_exported_agents_match_the_pytorch_actors(tmp_path, fmt, input_norm):
    actors = make_run(tmp_path / "run", input_norm=input_norm)
    doc = export_run(tmp_path / "run", fmt, tmp_path / "out")
    assert doc["parity"]["checked"] and doc["parity"]["max_abs_error"] <= PARITY_TOLERANCE
    assert doc["input_norm"] is input_norm
    assert json.loads((tmp_path / "out" / "actors.json").read_text()) == doc
    assert [a["name"] for a in doc["agents"]] == NAMES
    assert doc["agents"][1]["file"] == "agent1_carrier_1" + (".onnx" if fmt == "onnx" else ".pt")
    # An independent check on fresh observations, batch sizes 1 and 7.
    gen = torch.Generator().manual_seed(3)
    for rows in (1, 7):
        obs = torch.randn(rows, 3, SPEC.obs_max, generator=gen) * 3 * SPEC.obs_mask().float()
        want = actors(obs).detach().numpy()
        for k, agent in enumerate(doc["agents"]):
            assert agent["input"]["shape"] == ["batch", SPEC.obs_dims[k]]
            assert agent["output"]["shape"] == ["batch", SPEC.act_dims[k]]
            x = np.ascontiguousarray(obs[:, k, :SPEC.obs_dims[k]].numpy())
            got = run_file(fmt, tmp_path / "out" / agent["file"], x)
            assert got.shape == (rows, SPEC.act_dims[k]) and got.dtype == np.float32
            np.testing.assert_allclose(got, want[:, k, :SPEC.act_dims[k]], atol=PARITY_TOLERANCE,
                                       rtol=0)


def test_export_command(tmp_path, capsys):
    make_run(tmp_path / "run")
    assert main(["export", str(tmp_path / "run"), "--format", "torchscript",
                 "--out", str(tmp_path / "ts")]) == 0
    out = capsys.readouterr().out
    assert "agent 1 carrier/1:" in out and "obs [batch, 5] -> action [batch, 1]" in out
    assert "parity with the PyTorch actors" in out
    assert sorted(p.name for p in (tmp_path / "ts").iterdir()) == [
        "actors.json", "agent0_scout.pt", "agent1_carrier_1.pt", "agent2_base.pt"]


def test_export_refuses_a_joint_actor_and_a_missing_run(tmp_path, capsys):
    make_run(tmp_path / "run", mode="joint")
    assert main(["export", str(tmp_path / "run"), "--format", "onnx", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "one joint actor over all agents" in err and "Traceback" not in err
    assert main(["export", str(tmp_path / "nothing"), "--format", "onnx", "--out",
                 str(tmp_path / "o")]) == 2
    assert "has no finished actors" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_export_refuses_to_write_into_a_run_directory(tmp_path, capsys):
    make_run(tmp_path / "run")
    before = (tmp_path / "run" / "actors.json").read_bytes()
    assert main(["export", str(tmp_path / "run"), "--format", "torchscript",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "is a run directory" in err and "Traceback" not in err
    assert (tmp_path / "run" / "actors.json").read_bytes() == before
