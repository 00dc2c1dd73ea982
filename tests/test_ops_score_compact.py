"""Parity, wiring and bad-input tests of scoredec.ops.score_eval_compact on every backend, and of
CompactScoreNet.forward(backend=...), which packs its weights and calls it.

The float64 reference is tests/reference.py's score_single: each model rebuilt as its own narrow
network (only the input columns its in_mask keeps). Tolerance (flash-attention's rule,
tests/op_testing.py): every backend's max error against float64, the op's torch backend
included, is at most twice the error of the network's own module forward in the same dtype,
plus a small floor; in float64 the torch backend agrees with the reference to 1e-10. Kernels write
into NaN-filled buffers, so a skipped tile fails. Without a GPU the triton backend runs in the
interpreter (tests/conftest.py sets TRITON_INTERPRET=1) in float32/float16 only, with large row
blocks to keep it fast; the cuda backend needs a GPU and is skipped here.
"""

from __future__ import annotations

import pytest
import torch

from scoredec import sde
from scoredec.nets import CompactScoreNet
from scoredec.ops import BackendUnavailableError, registry, score_eval_compact
from scoredec.ops import score_compact as sc

from op_testing import (DEVICE, HAS_GPU, assert_behavior_epsilon_fused, assert_compiles_fullgraph,
                        assert_mixed_devices_named, assert_score_parity, nan_like, score_bad_cases, score_case,
                        skip_unless_runs)

FOURIER = 2 * sde.FOURIER_FREQUENCIES
# Error floors per dtype, on top of 2x the torch backend's own error.
FLOOR = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}

# (m, B, x_dim, cond_dim, width, layers, tile): awkward batches and widths, odd condition
# widths, odd and even depth (odd: the last hidden layer is chained into the head), a width
# that is a multiple of 16 but not a power of two, no hidden WxW layer at all. tile None is the
# launcher's own choice; on the CPU the large batch uses 64-row blocks (interpreter cost grows
# with the number of programs), on a GPU the launcher's choice.
CASES = {
    "m1-B1-d1": (1, 1, 1, 3, 32, 3, None),
    "m2-B3-d2-odd-depth": (2, 3, 2, 5, 64, 2, None),
    "m3-B113-d6": (3, 113, 6, 7, 64, 3, None if HAS_GPU else (64, 32)),
    "m4-B17-d2-W48-no-hidden": (4, 17, 2, 9, 48, 1, None),
    "m2-B5-d6-deep": (2, 5, 6, 11, 32, 4, None),
}

LAUNCH = {"triton": sc.launch_triton, "cuda": sc.launch_cuda}


def make_case(m, B, dx, dc, width, layers, dtype, t_dtype=None, device=DEVICE, seed=0):
    """A masked stack and inputs (op_testing.score_case); masked input columns hold garbage."""
    def build(mask, g):
        return CompactScoreNet(m, dx, dc, in_mask=mask, width=width, layers=layers, generator=g)

    return score_case(build, m, B, dx, dc, dtype, t_dtype, device, seed)


def assert_parity(out, net, mask, x, t, cond):
    """Against the per-model float64 reference (op_testing.assert_score_parity)."""
    assert_score_parity(out, net, mask, x, t, cond, FOURIER, FLOOR)


def run_op(net, x, t, cond, backend):
    """The op on the net's packed weights."""
    return score_eval_compact(x, t, cond, *net.packed_weights(), activation=net.mlp.activation_name,
                              backend=backend)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_torch_backend_parity(dtype, case):
    """The op's torch backend (score_compact_torch on the packed weights) against float64."""
    m, B, dx, dc, width, layers, _ = CASES[case]
    net, mask, x, t, cond = make_case(m, B, dx, dc, width, layers, dtype, device="cpu", seed=7)
    with torch.no_grad():
        out = run_op(net, x, t, cond, "torch")
    assert_parity(out, net, mask, x, t, cond)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_kernel_parity(backend, dtype, case):
    skip_unless_runs(sc.OP, backend, dtype)
    m, B, dx, dc, width, layers, tile = CASES[case]
    net, mask, x, t, cond = make_case(m, B, dx, dc, width, layers, dtype)
    out = nan_like(x)
    kwargs = {"tile": tile} if backend == "triton" else {}
    with torch.no_grad():
        LAUNCH[backend](x, t, cond, *net.packed_weights(), out, **kwargs)
    assert_parity(out, net, mask, x, t, cond)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["torch", "triton", "cuda"])
def test_float32_time_with_16bit_inputs(backend, dtype):
    """t may stay float32 while x, cond and the net are 16-bit (features computed in fp32)."""
    skip_unless_runs(sc.OP, backend, dtype)
    net, mask, x, t, cond = make_case(2, 7, 2, 5, 32, 3, dtype, t_dtype=torch.float32)
    with torch.no_grad():
        out = net(x, t, cond, backend=backend)
    assert_parity(out, net, mask, x, t, cond)


@pytest.mark.parametrize("backend", ["torch", "triton", "cuda"])
def test_net_forward_matches_reference(backend):
    """CompactScoreNet.forward(backend=...): the module path (torch) or the op on its packed
    weights, against float64."""
    skip_unless_runs(sc.OP, backend)
    net, mask, x, t, cond = make_case(3, 9, 6, 7, 64, 3, torch.float32)
    with torch.no_grad():
        out = net(x, t, cond, backend=backend)
    assert_parity(out, net, mask, x, t, cond)


def test_torch_op_is_the_module_forward():
    """The op's torch backend on the packed weights and the module forward compute the same
    function (float64, to rounding)."""
    net, _, x, t, cond = make_case(2, 5, 2, 5, 32, 3, torch.float64, device="cpu")
    torch.testing.assert_close(run_op(net, x, t, cond, "torch"), net(x, t, cond), rtol=1e-13, atol=1e-13)


def test_pack_is_cached_until_a_weight_changes():
    """Stage 2 evaluates a frozen net every step: the packed weights are built once and rebuilt
    only after an in-place write (an optimizer step, load_state_dict)."""
    net, mask, *_ = make_case(2, 3, 2, 5, 32, 3, torch.float32, device="cpu")
    net.requires_grad_(False)  # as in stage 2 (policy.py freezes the behaviour model)
    first = net.packed_weights()
    assert all(a is b for a, b in zip(net.packed_weights(), first))
    hidden = net.mlp.layers[1]
    with torch.no_grad():
        hidden.weight.add_(1.0)
    second = net.packed_weights()
    assert second[3] is not first[3]
    torch.testing.assert_close(second[3][:, 0], hidden.weight, rtol=0, atol=0)
    net.requires_grad_(True)   # autograd recording through the weights: never cached
    assert net.packed_weights()[1] is not net.packed_weights()[1]


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_empty_batch(backend):
    skip_unless_runs(sc.OP, backend)
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 3, torch.float32)
    with torch.no_grad():
        out = run_op(net, x[:, :0], t[:, :0], cond[:, :0], backend)
    assert out.shape == (2, 0, 2)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_behavior_epsilon_takes_the_fused_path(backend, monkeypatch):
    """BehaviorModel.epsilon (sequential mode, stage 2's call) through the kernel, selected by
    SCOREDEC_BACKEND, against the per-agent float64 loop."""
    skip_unless_runs(sc.OP, backend)
    assert_behavior_epsilon_fused("compact", sc.OP, (torch.float32, torch.float32, torch.float32, 32), backend,
                                  monkeypatch)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_opcheck(backend):
    skip_unless_runs(sc.OP, backend)
    op = {"triton": torch.ops.scoredec.score_compact_triton, "cuda": torch.ops.scoredec.score_compact_cuda}[backend]
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 2, torch.float32)
    with torch.no_grad():
        packed = tuple(p.detach() for p in net.packed_weights())
    torch.library.opcheck(op.default, (x, t, cond, *packed))


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_torch_compile_fullgraph(backend):
    """Backend choice, weight packing and the custom op trace without graph breaks (inductor on
    a GPU; aot_eager on the CPU)."""
    skip_unless_runs(sc.OP, backend)
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 2, torch.float32)

    def run(x, t, cond):
        return net(x, t, cond, backend=backend) * 2.0

    assert_compiles_fullgraph(run, x, t, cond)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_backward_raises_forward_only(backend):
    skip_unless_runs(sc.OP, backend)
    net, _, x, t, cond = make_case(1, 3, 2, 5, 32, 2, torch.float32)
    out = net(x, t, cond, backend=backend)
    with pytest.raises(RuntimeError, match="forward only"):
        out.sum().backward()


# ---------------------------------------------------------------------------------------------
# Bad inputs: validated before any backend runs; the error names the argument.
# ---------------------------------------------------------------------------------------------

def _bad_cases():
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 2, torch.float32, device="cpu")
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
    freqs, w0, b0, wh, bh, wo, bo = net.packed_weights()
    with pytest.raises(ValueError, match="w0 must be"):
        score_eval_compact(x, t, cond[..., :4].contiguous(), freqs, w0, b0, wh, bh, wo, bo, backend=backend)
    with pytest.raises(TypeError, match="wo must have the dtype"):
        score_eval_compact(x, t, cond, freqs, w0, b0, wh, bh, wo.double(), bo, backend=backend)
    with pytest.raises(ValueError, match="activation must be"):
        score_eval_compact(x, t, cond, freqs, w0, b0, wh, bh, wo, bo, activation="gelu", backend=backend)


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device to mix devices")
@pytest.mark.parametrize("backend", ["triton", "cuda", None])
def test_mixed_devices_name_argument(backend):
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 2, torch.float32, device="cuda")
    assert_mixed_devices_named(net, x, t, cond, backend)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_kernel_limits_name_argument(backend):
    """float64 and over-wide nets run on the torch backend only; a kernel request says so."""
    net64, _, x, t, cond = make_case(1, 3, 2, 5, 32, 2, torch.float64)
    wide, _, xw, tw, cw = make_case(1, 3, 2, 5, 528, 1, torch.float32)
    try:
        with pytest.raises(TypeError, match="x must be float32/float16/bfloat16 for the kernel"):
            net64(x, t, cond, backend=backend)
        with pytest.raises(ValueError, match="width 528"):
            wide(xw, tw, cw, backend=backend)
    except BackendUnavailableError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_custom_op_validates_packed_weights(backend):
    skip_unless_runs(sc.OP, backend)
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 2, torch.float32)
    with torch.no_grad():
        freqs, w0, b0, wh, bh, wo, bo = (p.detach() for p in net.packed_weights())
    op = {"triton": sc.score_compact_triton, "cuda": sc.score_compact_cuda}[backend]
    with pytest.raises(ValueError, match="w0 must be"):
        op(x, t, cond, freqs, w0[:, 1:].contiguous(), b0, wh, bh, wo, bo)
    with pytest.raises(TypeError, match="wo must have the dtype"):
        op(x, t, cond, freqs, w0, b0, wh, bh, wo.half(), bo)
    with pytest.raises(ValueError, match="output must be"):
        LAUNCH[backend](x, t, cond, freqs, w0, b0, wh, bh, wo, bo, x.new_empty(2, 3, 3))


def test_kernels_refuse_a_relu_net_by_name():
    """The fused kernels implement the Mish net; the default recipe's ReLU net is refused by name
    when a kernel is asked for, and the automatic choice takes torch."""
    torch.manual_seed(0)
    net = CompactScoreNet(2, 2, 5, width=32, layers=2, activation="relu")
    x, t, cond = torch.zeros(2, 3, 2), torch.full((2, 3), 0.5), torch.zeros(2, 3, 5)
    key = sc.kernel_key(x, t, net.freqs, net.width, net.mlp.activation_name)
    err = sc._kernel_accepts(*key)
    assert isinstance(err, TypeError) and "'relu'" in str(err)
    assert registry.select_name(sc.OP, x.device, key, None) == "torch"
    for backend in ("triton", "cuda"):
        with pytest.raises((TypeError, BackendUnavailableError), match="Mish|unavailable"):
            net(x, t, cond, backend=backend)
