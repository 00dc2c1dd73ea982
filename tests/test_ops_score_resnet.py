"""Parity, wiring and bad-input tests of scoredec.ops.score_eval_resnet on every backend, and of
ResNetScoreNet.forward(backend=...), which packs its weights and calls it.

The float64 reference is tests/reference.py's score_single: each model rebuilt as its own narrow
network (only the input columns its in_mask keeps). Tolerance (flash-attention's rule,
tests/op_testing.py): every backend's max error against float64, the op's torch backend
included, is at most twice the error of the network's own module forward in the same dtype,
plus a small floor; in float64 the torch backend agrees with the reference to 1e-10. Kernels write
into NaN-filled buffers, so a skipped tile fails. Without a GPU the triton backend runs in the interpreter
(tests/conftest.py sets TRITON_INTERPRET=1) in float32/float16 only, on small widths with large
blocks to keep it fast; the cuda backend needs a GPU and is skipped here.
"""

from __future__ import annotations

import pytest
import torch

from scoredec.nets import ResNetScoreNet
from scoredec.ops import BackendUnavailableError, score_eval_resnet
from scoredec.ops import registry
from scoredec.ops import score_resnet as sr

from op_testing import (DEVICE, HAS_GPU, assert_behavior_epsilon_fused, assert_compiles_fullgraph,
                        assert_mixed_devices_named, assert_score_parity, nan_like, score_bad_cases, score_case,
                        skip_unless_runs)

# Error floors per dtype, on top of 2x the torch backend's own error.
FLOOR = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
# Interpreter block sizes: few programs, few loop iterations (its cost is per block iteration).
CPU_TILES = {"stem": (64, 64), "gemm": (64, 128, 64, 4)}

# (m, B, x_dim, cond_dim, H, blocks): batch 1 / 3 / a few hundred, m = 1..4, action widths
# 1, 2, 6, odd condition widths, H not a power of two (48, 24), zero to three residual blocks.
CASES = {
    "m1-B1-d1-H32-b1": (1, 1, 1, 3, 32, 1),
    "m2-B3-d2-H32-b2": (2, 3, 2, 5, 32, 2),
    "m3-B200-d6-H64-b2": (3, 200, 6, 7, 64, 2),
    "m4-B17-d2-H48-b1": (4, 17, 2, 9, 48, 1),
    "m2-B5-d6-H24-b3": (2, 5, 6, 11, 24, 3),
    "m2-B4-d1-H32-b0": (2, 4, 1, 4, 32, 0),
}

LAUNCH = {"triton": sr.launch_triton, "cuda": sr.launch_cuda}


def make_case(m, B, dx, dc, hidden, blocks, dtype, t_dtype=None, device=DEVICE, seed=0):
    """A masked stack in eval mode and inputs (op_testing.score_case); masked input columns hold
    garbage. LayerNorm affines are randomized (they start at 1 and 0)."""
    def build(mask, g):
        net = ResNetScoreNet(m, dx, dc, in_mask=mask, hidden=hidden, blocks=blocks, generator=g)
        with torch.no_grad():
            for norm in net.norms:
                norm.weight.copy_(1 + 0.3 * torch.randn(norm.weight.shape, generator=g))
                norm.bias.copy_(0.3 * torch.randn(norm.bias.shape, generator=g))
        return net

    return score_case(build, m, B, dx, dc, dtype, t_dtype, device, seed)


def assert_parity(out, net, mask, x, t, cond):
    """Against the per-model float64 reference (op_testing.assert_score_parity)."""
    assert_score_parity(out, net, mask, x, t, cond, 0, FLOOR)


def run_op(net, x, t, cond, backend):
    """The op on the net's packed weights."""
    return score_eval_resnet(x, t, cond, *net.packed_weights(), backend=backend)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_torch_backend_parity(dtype, case):
    """The op's torch backend (score_resnet_torch on the packed weights) against float64."""
    net, mask, x, t, cond = make_case(*CASES[case], dtype, device="cpu", seed=7)
    with torch.no_grad():
        out = run_op(net, x, t, cond, "torch")
    assert_parity(out, net, mask, x, t, cond)


def _launch_kwargs(backend):
    return {"tiles": CPU_TILES} if backend == "triton" and not HAS_GPU else {}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_kernel_parity(backend, dtype, case):
    skip_unless_runs(sr.OP, backend, dtype)
    net, mask, x, t, cond = make_case(*CASES[case], dtype)
    out = nan_like(x)
    with torch.no_grad():
        LAUNCH[backend](x, t, cond, *net.packed_weights(), out, **_launch_kwargs(backend))
    assert_parity(out, net, mask, x, t, cond)


@pytest.mark.skipif(not HAS_GPU, reason="the paper's width at full size on a GPU only")
@pytest.mark.parametrize("B", [1, 64, 700])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_paper_width(backend, dtype, B):
    """H = 512, 2 blocks (the paper's net), 3 models: triton's launcher picks its 16- and
    64-row blocks over these batches."""
    skip_unless_runs(sr.OP, backend, dtype)
    net, mask, x, t, cond = make_case(3, B, 5, 28, 512, 2, dtype)
    out = nan_like(x)
    with torch.no_grad():
        LAUNCH[backend](x, t, cond, *net.packed_weights(), out)
    assert_parity(out, net, mask, x, t, cond)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["torch", "triton", "cuda"])
def test_float32_time_with_16bit_inputs(backend, dtype):
    """t may stay float32 while x, cond and the net are 16-bit (features computed in fp32)."""
    skip_unless_runs(sr.OP, backend, dtype)
    net, mask, x, t, cond = make_case(2, 7, 2, 5, 32, 1, dtype, t_dtype=torch.float32)
    with torch.no_grad():
        out = net(x, t, cond, backend=backend)
    assert_parity(out, net, mask, x, t, cond)


@pytest.mark.parametrize("backend", ["torch", "triton", "cuda"])
def test_net_forward_matches_reference(backend):
    """ResNetScoreNet.forward(backend=...): the module path (torch) or the op on its packed
    weights, against float64."""
    skip_unless_runs(sr.OP, backend)
    net, mask, x, t, cond = make_case(3, 9, 6, 7, 32, 2, torch.float32)
    with torch.no_grad():
        out = net(x, t, cond, backend=backend)
    assert_parity(out, net, mask, x, t, cond)


def test_torch_op_is_the_module_forward():
    """The op's torch backend on the packed weights and the module forward (eval) compute the
    same function (float64, to rounding)."""
    net, _, x, t, cond = make_case(2, 5, 2, 5, 32, 2, torch.float64, device="cpu")
    torch.testing.assert_close(run_op(net, x, t, cond, "torch"), net(x, t, cond), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_empty_batch(backend):
    skip_unless_runs(sr.OP, backend)
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 1, torch.float32)
    with torch.no_grad():
        out = run_op(net, x[:, :0], t[:, :0], cond[:, :0], backend)
    assert out.shape == (2, 0, 2)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_behavior_epsilon_takes_the_fused_path(backend, monkeypatch):
    """BehaviorModel.epsilon (sequential mode, stage 2's call) of a resnet model through the
    kernel, selected by SCOREDEC_BACKEND, against the per-agent float64 loop."""
    skip_unless_runs(sr.OP, backend)
    assert_behavior_epsilon_fused("resnet", sr.OP, (torch.float32, torch.float32, torch.float32, False), backend,
                                  monkeypatch)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_opcheck(backend):
    skip_unless_runs(sr.OP, backend)
    op = {"triton": torch.ops.scoredec.score_resnet_triton, "cuda": torch.ops.scoredec.score_resnet_cuda}[backend]
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 1, torch.float32)
    with torch.no_grad():
        packed = [[w.detach() for w in p] if isinstance(p, list) else p.detach() for p in net.packed_weights()]
    torch.library.opcheck(op.default, (x, t, cond, *packed, 1e-5))


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_torch_compile_fullgraph(backend):
    """Backend choice, weight packing and the custom op trace without graph breaks (inductor on
    a GPU; aot_eager on the CPU)."""
    skip_unless_runs(sr.OP, backend)
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 1, torch.float32)

    def run(x, t, cond):
        return net(x, t, cond, backend=backend) * 2.0

    assert_compiles_fullgraph(run, x, t, cond)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_backward_raises_forward_only(backend):
    skip_unless_runs(sr.OP, backend)
    net, _, x, t, cond = make_case(1, 3, 2, 5, 32, 1, torch.float32)
    out = net(x, t, cond, backend=backend)
    with pytest.raises(RuntimeError, match="forward only"):
        out.sum().backward()


def test_tile_choice_fills_the_machine():
    """Small batches get 16-row blocks (more programs streaming weights), large ones the tallest
    block that still keeps half of 132 SMs busy; every offered tile is AOT-compiled."""
    from scoredec.kernels import score_resnet as kernel

    for dtype in ("fp32", "fp16", "bf16"):
        tiles = kernel.GEMM_TILES[dtype]
        assert kernel.choose_tile(tiles, 1, 2048, 3, 132)[0] == 16
        assert kernel.choose_tile(tiles, 64, 64, 1, 132)[0] == 16
        assert kernel.choose_tile(tiles, 16384, 512, 3, 132)[0] == max(t[0] for t in tiles)
        compiled = {c["name"] for c in kernel._GEMM_CONFIGS}
        for bm, bn, bk, warps in tiles:
            assert f"{dtype} up BLOCK_M={bm} BLOCK_N={bn} BLOCK_K={bk} warps={warps}" in compiled


def test_pack_is_cached_until_the_embed_weight_changes():
    """Repeated calls reuse the masked embed weight; an in-place update (an optimizer step)
    or a new mask repacks it. Every other packed tensor is a view of its parameter."""
    net, mask, *_ = make_case(2, 3, 2, 5, 32, 2, torch.float32, device="cpu")
    net.requires_grad_(False)  # as in stage 2 (policy.py freezes the behaviour model)
    first = net.packed_weights()
    second = net.packed_weights()
    assert second[5] is first[5]
    assert first[7].data_ptr() == net.trunk_in.weight.data_ptr()
    assert [w.data_ptr() for w in first[11]] == [u.weight.data_ptr() for u in net.up]
    with torch.no_grad():
        net.embed.weight.add_(1.0)
    third = net.packed_weights()
    assert third[5] is not first[5]
    torch.testing.assert_close(third[5], net.embed.weight.detach() * mask[:, :, None].float(), rtol=0, atol=0)
    with torch.no_grad():
        net.embed.in_mask.zero_()
    assert net.packed_weights()[5].abs().max() == 0


def test_training_mode_with_dropout_runs_on_torch_only():
    """The kernels compute the eval forward: an explicit kernel request for a net training with
    dropout raises; the automatic choice takes torch."""
    net, _, x, t, cond = make_case(1, 3, 2, 5, 32, 1, torch.float32)
    net.train()
    key = sr.kernel_key(x, t, net.freqs, dropout_active=True)
    err = sr._kernel_accepts(*key)
    assert isinstance(err, ValueError) and "training mode" in str(err)
    assert registry.select_name(sr.OP, DEVICE, key, None) == "torch"
    assert net._select_backend(x, t, None) == "torch"
    for backend in ("triton", "cuda"):
        with pytest.raises((ValueError, BackendUnavailableError), match="training mode|unavailable"):
            net(x, t, cond, backend=backend)


# ---------------------------------------------------------------------------------------------
# Bad inputs: validated before any backend runs; the error names the argument.
# ---------------------------------------------------------------------------------------------

def _bad_cases():
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 1, torch.float32, device="cpu")
    return net, score_bad_cases(net, x, t, cond)


BAD_NET, BAD = _bad_cases()


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("backend", ["triton", "cuda", None])
def test_bad_input_names_argument(backend, case):
    args, exc, match = BAD[case]
    with pytest.raises(exc, match=match):
        BAD_NET(*args, backend=backend)


@pytest.mark.parametrize("backend", ["torch", "triton", "cuda", None])
def test_op_bad_input_names_argument(backend):
    """The op itself checks the packed layout on every backend, torch included."""
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 2, torch.float32, device="cpu")
    packed = list(net.packed_weights())
    with pytest.raises(ValueError, match="we must be"):
        score_eval_resnet(x, t, cond[..., :4].contiguous(), *packed, backend=backend)
    with pytest.raises(TypeError, match="ln_b must be a list of 2"):
        score_eval_resnet(x, t, cond, *packed[:10], packed[10][:1], *packed[11:], backend=backend)


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device to mix devices")
@pytest.mark.parametrize("backend", ["triton", "cuda", None])
def test_mixed_devices_name_argument(backend):
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 1, torch.float32, device="cuda")
    assert_mixed_devices_named(net, x, t, cond, backend)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_float64_names_the_kernel_limit(backend):
    """float64 runs on the torch backend only; a kernel request says so."""
    net64, _, x, t, cond = make_case(1, 3, 2, 5, 32, 1, torch.float64)
    try:
        with pytest.raises(TypeError, match="x must be float32/float16/bfloat16 for the kernel"):
            net64(x, t, cond, backend=backend)
    except BackendUnavailableError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_custom_op_validates_packed_weights(backend):
    skip_unless_runs(sr.OP, backend)
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 2, torch.float32)
    packed = list(net.packed_weights())
    op = {"triton": sr.score_resnet_triton, "cuda": sr.score_resnet_cuda}[backend]

    def call(**repl):
        args = dict(zip(("freqs", "wt1", "bt1", "wt2", "bt2", "we", "be", "wtr", "btr", "ln_w", "ln_b", "w1", "b1",
                         "w2", "b2", "wh", "bh"), packed))
        args.update(repl)
        return op(x, t, cond, *args.values(), 1e-5)

    with pytest.raises(ValueError, match="wtr must be"):
        call(wtr=packed[7][:, 1:].contiguous())
    with pytest.raises(ValueError, match=r"w1\[1\] must be"):
        call(w1=[packed[11][0], packed[11][1][:, :, 1:].contiguous()])
    with pytest.raises(TypeError, match="ln_b must be a list of 2"):
        call(ln_b=packed[10][:1])
    with pytest.raises(TypeError, match="wh must have the dtype"):
        call(wh=packed[15].half())
    with pytest.raises(ValueError, match="w2\\[0\\] must be contiguous"):
        w2 = packed[13][0]
        call(w2=[w2.transpose(1, 2).contiguous().transpose(1, 2), packed[13][1]])
    with pytest.raises(ValueError, match="output must be"):
        LAUNCH[backend](x, t, cond, *packed, x.new_empty(2, 3, 3))
