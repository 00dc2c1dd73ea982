"""The sequential sampler (scoredec.behavior.sample_sequential), the fused op it calls on the
kernel backends (scoredec.ops.sample_sequential) and the drop-in API scoredec.sampling.sample:
parity, wiring and bad-input tests.

Parity: every backend's max error against the independent float64 reference (tests/reference.py
sequential_sample64: each model as its own narrow network, sde.py's step functions; the same
explicit x_T and step noise), the op's torch backend included, is at most twice the error of the
behaviour model's torch sampler in the same dtype, plus a floor relative to the samples' size
(flash-attention's rule); kernels write into NaN-filled outputs.
Without a GPU the triton backend runs in the interpreter (tests/conftest.py) in float32 and
float16 with small widths and few steps; bf16 and cuda are skipped (tests/backend_skips.py).

The samples are not clipped in most parity cases (clip=None): a random net sends x far outside
[-1, 1], and clipped outputs would all be +-1 and compare nothing. The first-layer rows of x and
of the prefix are scaled down so that 16-bit activations stay finite (nets.mish overflows
float16 for pre-activations above ~11).
"""

from __future__ import annotations

import pytest
import torch

from scoredec import sampling, sde
from scoredec.behavior import BehaviorModel, sequential_torch
from scoredec.behavior import sample_sequential as behavior_sample_sequential
from scoredec.layout import AgentSpec
from scoredec.nets import CompactScoreNet, ResNetScoreNet
from scoredec.ops import BackendUnavailableError
from scoredec.ops import sampler as ss
from scoredec.sampling import integrate

from op_testing import DEVICE, HAS_GPU, assert_compiles_fullgraph, assert_tolerance, nan_like, skip_unless_runs
from reference import sequential_sample64
from test_nets import random_batch, small_cfg

FLOOR = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-4, torch.bfloat16: 1e-3}
STEPS = 6 if HAS_GPU else 2

# (m, B, x_dim, obs_w, width, layers, tile): one agent and one row; odd depth (the last hidden
# layer chained into the head); ~100 rows in two row blocks on the CPU; no hidden layer, width
# 48; four agents of width 1.
CASES = {
    "n1-B1-d1": (1, 1, 1, 3, 32, 2, None),
    "n2-B3-d2-odd-depth": (2, 3, 2, 5, 32, 3, None),
    "n3-B100-d6": (3, 100, 6, 7, 32, 2, None if HAS_GPU else (64, 32)),
    "n4-B3-d1-W48-no-hidden": (4, 3, 1, 9, 48, 1, None),
}
SOLVERS = {"ddim": ("ddim", 0.0), "ddim-eta": ("ddim", 0.8), "dpm1": ("dpm1", 0.0), "dpm2": ("dpm2", 0.0)}

LAUNCH = {"triton": ss.launch_triton, "cuda": ss.launch_cuda}


def sequential_mask(m: int, dx: int, obs_w: int, g: torch.Generator) -> torch.Tensor:
    """[m, dx + obs_w + (m-1) dx] in_mask of a prefix layout: model k has its x, some of its
    observation columns (odd widths per model) and the prefix slots j < k."""
    mask = torch.ones(m, dx + obs_w + (m - 1) * dx, dtype=torch.bool)
    mask[:, dx:dx + obs_w] = torch.rand(m, obs_w, generator=g) > 0.3
    mask[:, dx] = True
    for k in range(m):
        mask[k, dx + obs_w + k * dx:] = False
    return mask


def make_case(m, B, dx, obs_w, width, layers, dtype, steps=STEPS, eta=0.0, device=DEVICE, seed=0):
    """(net, obs, x_T, step_noise); the net's in_mask is net.mask (the reference reads it)."""
    torch.manual_seed(seed + 100 * m + B)
    g = torch.Generator().manual_seed(seed + 100 * m + B)
    mask = sequential_mask(m, dx, obs_w, g)
    net = CompactScoreNet(m, dx, obs_w + (m - 1) * dx, in_mask=mask, width=width, layers=layers, generator=g)
    with torch.no_grad():
        w0 = net.mlp.layers[0].weight
        w0[:, :dx] *= 0.01
        w0[:, dx + obs_w:dx + obs_w + (m - 1) * dx] *= 0.01
    obs = torch.randn(m, B, obs_w, generator=g)
    x_T = torch.randn(m, B, dx, generator=g)
    step_noise = torch.randn(m, steps, B, dx, generator=g) if eta > 0 else None
    net = net.to(device, dtype).eval().requires_grad_(False)
    net.mask = mask
    cast = (lambda a: None if a is None else a.to(device, dtype))
    return net, cast(obs), cast(x_T), cast(step_noise)


def run(net, obs, x_T, step_noise=None, *, steps=STEPS, solver="dpm2", spacing="logSNR", eta=0.0, clip=1.0,
        backend=None, graph=None):
    """The behaviour model's sequential sampler with sde.make_solver's solver."""
    return behavior_sample_sequential(net, obs, x_T, step_noise, sde.make_solver(solver, steps, spacing, eta),
                                      clip=clip, backend=backend, graph=graph)


def kernel_args(net, obs, x_T, step_noise, steps, solver, eta, clip) -> tuple:
    """The fused op's arguments: (obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver)."""
    freqs, *weights = net.packed_weights()
    coef = sde.make_solver(solver, steps, "logSNR", eta).table(x_T.device)
    clip = float("inf") if clip is None else float(clip)
    return (obs, x_T, step_noise, coef, freqs.float().contiguous(), *weights, clip, solver)


def assert_parity(out, net, obs, x_T, step_noise, steps, solver, eta, clip):
    """op_testing's tolerance rule with a floor relative to the samples' size; the base is the
    behaviour model's torch sampler (module forward) in x_T's dtype."""
    ref = sequential_sample64(net.cpu(), net.mask, obs, x_T, step_noise, steps, solver, eta, clip)
    net.to(x_T.device)
    with torch.no_grad():
        base = sequential_torch(net, obs, x_T, step_noise, sde.make_solver(solver, steps, "logSNR", eta), clip)
    if x_T.dtype == torch.float64:
        torch.testing.assert_close(out.cpu(), ref, rtol=1e-9, atol=1e-9)
    assert_tolerance(out, x_T, ref, base, FLOOR[x_T.dtype] * (1.0 + ref.abs().max().item()))


def _kernel_dtypes():
    out = [pytest.param(torch.float32, id="float32")]
    out += [pytest.param(torch.float16, id="float16"), pytest.param(torch.bfloat16, id="bfloat16")]
    return out


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16], ids=str)
def test_torch_op_parity(dtype, case, solver):
    """The op's torch backend (on the coefficient table and packed weights) against float64."""
    m, B, dx, obs_w, width, layers, _ = CASES[case]
    name, eta = SOLVERS[solver]
    net, obs, x_T, step_noise = make_case(m, B, dx, obs_w, width, layers, dtype, eta=eta, device="cpu", seed=3)
    args = kernel_args(net, obs, x_T, step_noise, STEPS, name, eta, None)
    # float64: the table as sde.py computes it (the kernels' copy is float32).
    coef = sde.make_solver(name, STEPS, "logSNR", eta).coefficient_table() if dtype == torch.float64 else args[3]
    freqs = args[4].double() if dtype == torch.float64 else args[4]
    with torch.no_grad():
        out = ss.sample_sequential(obs, x_T, coef, freqs, *args[5:11], step_noise=step_noise, clip=None,
                                   solver=name, backend="torch")
    assert_parity(out, net, obs, x_T, step_noise, STEPS, name, eta, None)


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_behavior_torch_sampler_parity(dtype, solver):
    """The behaviour model's torch sampler (module forward, sde.Solver steps) against float64."""
    name, eta = SOLVERS[solver]
    net, obs, x_T, step_noise = make_case(3, 7, 2, 5, 32, 2, dtype, eta=eta, device="cpu", seed=4)
    with torch.no_grad():
        out = run(net, obs, x_T, step_noise, solver=name, eta=eta, clip=None, backend="torch")
    assert_parity(out, net, obs, x_T, step_noise, STEPS, name, eta, None)


@pytest.mark.parametrize("solver", sorted(SOLVERS))
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", _kernel_dtypes())
@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_kernel_parity(backend, dtype, case, solver):
    skip_unless_runs(ss.OP, backend, dtype)
    if not HAS_GPU and dtype != torch.float32 and solver in ("ddim", "dpm1"):
        pytest.skip("interpreter time: 16-bit runs dpm2 and stochastic ddim on the CPU")
    m, B, dx, obs_w, width, layers, tile = CASES[case]
    name, eta = SOLVERS[solver]
    net, obs, x_T, step_noise = make_case(m, B, dx, obs_w, width, layers, dtype, eta=eta)
    args = kernel_args(net, obs, x_T, step_noise, STEPS, name, eta, None)
    out = nan_like(x_T)
    kwargs = {"tile": tile} if backend == "triton" else {}
    LAUNCH[backend](*args[:11], out, *args[11:], **kwargs)
    assert_parity(out, net, obs, x_T, step_noise, STEPS, name, eta, None)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_clipped_conditions(backend):
    """clip=1 as BehaviorModel samples: the later models see clipped samples."""
    skip_unless_runs(ss.OP, backend)
    net, obs, x_T, _ = make_case(3, 4, 2, 5, 32, 2, torch.float32)
    with torch.no_grad():
        net.mlp.layers[-1].weight.mul_(30.0)  # eps ~ x_T: samples of both signs, some inside [-1, 1]
        out = run(net, obs, x_T, solver="dpm2", backend=backend)
    assert out.abs().max() <= 1.0
    assert_parity(out, net, obs, x_T, None, STEPS, "dpm2", 0.0, 1.0)


def test_coefficient_table_reproduces_the_solver_steps():
    """The table's linear updates equal sde.py's step functions (float64)."""
    g = torch.Generator().manual_seed(0)
    x, e, e2 = (torch.randn(5, generator=g, dtype=torch.float64) for _ in range(3))
    grid = sde.time_grid(4, spacing="logSNR")
    for solver, eta in SOLVERS.values():
        table = sde.make_solver(solver, 4, "logSNR", eta).coefficient_table()
        assert table.shape == (4, len(sde.COEF_COLUMNS)) and table.dtype == torch.float64
        for i in range(4):
            t, s = float(grid[i]), float(grid[i + 1])
            _, _, u_x, u_e, c_x, c_e, c_2, _ = table[i].tolist()
            assert table[i, 0].item() == t
            if solver == "ddim":
                want = sde.ddim_step(e, x, t, s, eta=eta, noise=e2 if eta > 0 else None)
            elif solver == "dpm1":
                want = sde.dpm_solver_1_step(e, x, t, s)
            else:
                u, s1 = sde.dpm_solver_2_midpoint(x, e, t, s)
                assert table[i, 1].item() == s1
                torch.testing.assert_close(u_x * x + u_e * e, u, rtol=1e-12, atol=1e-12)
                want = sde.dpm_solver_2_step(x, e, e2, t, s)
            torch.testing.assert_close(c_x * x + c_e * e + c_2 * e2, want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# BehaviorModel.sample and the drop-in API.
# ---------------------------------------------------------------------------------------------

SPEC = AgentSpec((7, 3, 11), (2, 6, 1))


def _model(arch="compact", dtype=torch.float64, order=(2, 0, 1)):
    torch.manual_seed(0)
    return BehaviorModel(SPEC, "sequential", small_cfg(arch), order=order).to(dtype)


@pytest.mark.parametrize("arch", ["compact", "resnet"])
def test_torch_backend_is_the_per_agent_loop(arch):
    """BehaviorModel.sample (now through the op) equals the old per-agent loop, exactly."""
    model = _model(arch)
    gen = torch.Generator().manual_seed(5)
    obs, _ = random_batch(SPEC, 6, gen)
    noise = torch.randn(3, 6, SPEC.act_max, generator=gen, dtype=torch.float64)
    got = model.sample(obs, steps=3, solver="dpm2", noise=noise)
    lay, mask = model.layout, model.x_mask.double()
    want = torch.zeros(6, 3, SPEC.act_max, dtype=torch.float64)
    model.eval()
    for k, agent in enumerate(lay.order):
        one = slice(k, k + 1)
        cond = lay.conditions(obs, want)[one]
        with torch.no_grad():
            x = integrate(lambda x, t: model.net(x, t, cond, one), noise[one], 3, "dpm2")
        want[:, agent] = (x.clamp(-1.0, 1.0) * mask[one])[0]
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_behavior_sample_kernel_backend(backend):
    """BehaviorModel.sample(backend=...) on the kernel equals the float64 torch path."""
    skip_unless_runs(ss.OP, backend)
    model = _model()
    gen = torch.Generator().manual_seed(6)
    obs, _ = random_batch(SPEC, 5, gen)
    noise = torch.randn(3, 5, SPEC.act_max, generator=gen, dtype=torch.float64)
    step_noise = torch.randn(3, 2, 5, SPEC.act_max, generator=gen, dtype=torch.float64)
    want = model.sample(obs, steps=2, solver="ddim", noise=noise, eta=0.5, step_noise=step_noise)
    model = model.float().to(DEVICE)
    got = model.sample(obs.float().to(DEVICE), steps=2, solver="ddim", noise=noise.float().to(DEVICE), eta=0.5,
                       step_noise=step_noise.float().to(DEVICE), backend=backend)
    assert (got.cpu() * ~SPEC.act_mask()).abs().max() == 0, "padded action columns must stay zero"
    torch.testing.assert_close(got.cpu().double(), want, rtol=1e-4, atol=1e-4)


def test_dropin_callable_equals_integrate():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64)

    def eps(x, t, cond):
        return torch.tanh(x @ w[:3, :3] + cond[:, :3] * t[:, None])

    cond = torch.randn(7, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(7, 3, generator=g, dtype=torch.float64)
    step_noise = torch.randn(5, 7, 3, generator=g, dtype=torch.float64)
    for solver, eta in SOLVERS.values():
        sn = step_noise if eta > 0 else None
        got = sampling.sample(eps, cond, 3, steps=5, solver=solver, noise=noise, clip=None, eta=eta, step_noise=sn)
        want = integrate(lambda x, t: eps(x, t, cond), noise, 5, solver, step_noise=sn, eta=eta)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    clipped = sampling.sample(eps, cond, 3, steps=5, noise=noise)
    assert clipped.abs().max() <= 1.0


def test_dropin_behavior_model_equals_model_sample():
    model = _model()
    gen = torch.Generator().manual_seed(2)
    obs, _ = random_batch(SPEC, 4, gen)
    noise = torch.randn(3, 4, SPEC.act_max, generator=gen, dtype=torch.float64)
    got = sampling.sample(model, obs, steps=3, solver="dpm1", noise=noise)
    want = model.sample(obs, steps=3, solver="dpm1", noise=noise)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert got.shape == (4, 3, SPEC.act_max)
    # steps/solver None: the model's config.
    a = sampling.sample(model, obs, steps=None, solver=None, noise=noise)
    torch.testing.assert_close(a, model.sample(obs, noise=noise), rtol=0, atol=0)


def test_dropin_keeps_the_old_signature():
    cond = torch.zeros(5, 2)
    out = sampling.sample(lambda x, t, c: x * 0.0, cond, 2, 3, "ddim", None, torch.Generator().manual_seed(0))
    assert out.shape == (5, 2) and out.abs().max() <= 1.0


@pytest.mark.skipif(not HAS_GPU, reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("arch", ["compact", "resnet"])
def test_captured_graph_equals_eager(arch):
    model = _model(arch, torch.float32).to("cuda")
    gen = torch.Generator().manual_seed(3)
    obs, _ = random_batch(SPEC, 8, gen, dtype=torch.float32)
    obs = obs.cuda()
    noise = torch.randn(3, 8, SPEC.act_max, generator=gen).cuda()
    eager = model.sample(obs, steps=4, noise=noise, backend="torch", graph=False)
    for _ in range(2):  # capture, then replay from the cache
        graphed = model.sample(obs, steps=4, noise=noise, backend="torch", graph=True)
        torch.testing.assert_close(graphed, eager, rtol=1e-5, atol=1e-5)
    w = torch.randn(3, 3, device="cuda")
    eps = (lambda x, t, c: torch.tanh(x @ w + c[:, :3] * t[:, None]))
    cond, x_T = torch.randn(6, 4, device="cuda"), torch.randn(6, 3, device="cuda")
    want = sampling.sample(eps, cond, 3, steps=4, noise=x_T, graph=False)
    for _ in range(2):
        torch.testing.assert_close(sampling.sample(eps, cond, 3, steps=4, noise=x_T, graph=True), want)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_opcheck(backend):
    skip_unless_runs(ss.OP, backend)
    op = {"triton": torch.ops.scoredec.sample_sequential_triton,
          "cuda": torch.ops.scoredec.sample_sequential_cuda}[backend]
    net, obs, x_T, _ = make_case(2, 3, 2, 5, 32, 2, torch.float32)
    torch.library.opcheck(op.default, kernel_args(net, obs, x_T, None, 1, "dpm1", 0.0, 1.0))


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_torch_compile_fullgraph(backend):
    """Validation, backend choice, weight packing, the coefficient table and the custom op trace
    without graph breaks (inductor on a GPU; aot_eager on the CPU). The torch reference's time
    grid is host floats: it compiles with graph breaks."""
    skip_unless_runs(ss.OP, backend)
    net, obs, x_T, _ = make_case(2, 3, 2, 5, 32, 2, torch.float32)

    def sample(obs, x_T):
        return run(net, obs, x_T, steps=2, backend=backend, graph=False) * 2.0

    assert_compiles_fullgraph(sample, obs, x_T)


def test_empty_batch_torch_and_kernels():
    net, obs, x_T, _ = make_case(2, 3, 2, 5, 32, 2, torch.float32, device="cpu")
    out = run(net, obs[:, :0].contiguous(), x_T[:, :0].contiguous(), steps=2, backend="torch")
    assert out.shape == (2, 0, 2)
    args = kernel_args(net, obs[:, :0].contiguous(), x_T[:, :0].contiguous(), None, 2, "dpm2", 0.0, 1.0)
    out = ss.sample_sequential(*args[:2], *args[3:11], clip=1.0, solver="dpm2", backend="torch")
    assert out.shape == (2, 0, 2)


# ---------------------------------------------------------------------------------------------
# Bad inputs: the error names the argument.
# ---------------------------------------------------------------------------------------------

def _bad_cases():
    net, obs, x_T, _ = make_case(2, 3, 2, 5, 32, 2, torch.float32, device="cpu")
    sn = torch.zeros(2, 2, 3, 2)
    return {
        "x_T-not-tensor": ((net, obs, x_T.tolist()), {}, TypeError, "x_T must be a torch.Tensor"),
        "x_T-int": ((net, obs, x_T.long()), {}, TypeError, "x_T must"),
        "obs-dtype": ((net, obs.half(), x_T), {}, TypeError, "obs must have the dtype"),
        "net-dtype": ((net, obs.double(), x_T.double()), {}, TypeError, "net parameters are"),
        "x_T-shape": ((net, obs, x_T[:1].contiguous()), {}, ValueError, "x_T must be"),
        "obs-shape": ((net, obs[..., :4].contiguous(), x_T), {}, ValueError, "obs must be"),
        "obs-noncontiguous": ((net, torch.randn(2, 5, 3).transpose(1, 2), x_T), {}, ValueError,
                              "obs must be contiguous"),
        "x_T-noncontiguous": ((net, obs, torch.randn(2, 2, 3).transpose(1, 2)), {}, ValueError,
                              "x_T must be contiguous"),
        "steps": ((net, obs, x_T), {"steps": 0}, ValueError, "steps must be"),
        "solver": ((net, obs, x_T), {"solver": "euler"}, ValueError, "solver must be"),
        "spacing": ((net, obs, x_T), {"spacing": "cosine"}, ValueError, "spacing must be"),
        "eta-dpm2": ((net, obs, x_T), {"eta": 0.5}, ValueError, "eta > 0"),
        "eta-no-noise": ((net, obs, x_T), {"solver": "ddim", "eta": 0.5, "steps": 2}, ValueError,
                         "step_noise .* is required"),
        "noise-unused": ((net, obs, x_T), {"step_noise": sn, "steps": 2}, ValueError, "step_noise is only used"),
        "noise-shape": ((net, obs, x_T), {"solver": "ddim", "eta": 0.5, "steps": 3, "step_noise": sn},
                        ValueError, "step_noise must be"),
        "noise-dtype": ((net, obs, x_T), {"solver": "ddim", "eta": 0.5, "steps": 2, "step_noise": sn.half()},
                        TypeError, "step_noise must have"),
        "clip": ((net, obs, x_T), {"clip": 0.0}, ValueError, "clip must be"),
    }


BAD = _bad_cases()


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("backend", ["torch", "triton", "cuda", None])
def test_bad_input_names_argument(backend, case):
    args, kwargs, exc, match = BAD[case]
    with pytest.raises(exc, match=match):
        run(*args, backend=backend, **kwargs)


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device to mix devices")
@pytest.mark.parametrize("backend", ["torch", "triton", "cuda"])
def test_mixed_devices_name_argument(backend):
    net, obs, x_T, _ = make_case(2, 3, 2, 5, 32, 2, torch.float32, device="cuda")
    with pytest.raises(ValueError, match="obs is on cpu"):
        run(net, obs.cpu(), x_T, steps=1, backend=backend)
    with pytest.raises(ValueError, match="net is on cpu"):
        run(net.cpu(), obs, x_T, steps=1, backend=backend)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_kernel_limits_name_argument(backend):
    """float64 and the resnet run on the torch backend only; a kernel request says so."""
    net, obs, x_T, _ = make_case(2, 3, 2, 5, 32, 2, torch.float64)
    torch.manual_seed(0)
    res = ResNetScoreNet(2, 2, 7, hidden=16).to(DEVICE).eval()
    try:
        with pytest.raises(TypeError, match="x_T must be float32/float16/bfloat16 for the kernel"):
            run(net, obs, x_T, steps=1, backend=backend)
        with pytest.raises(TypeError, match="take a CompactScoreNet"):
            run(res, obs.float(), x_T.float(), steps=1, backend=backend)
    except BackendUnavailableError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_custom_op_validates_packed_weights(backend):
    skip_unless_runs(ss.OP, backend)
    net, obs, x_T, _ = make_case(2, 3, 2, 5, 32, 2, torch.float32)
    args = list(kernel_args(net, obs, x_T, None, 1, "dpm1", 0.0, 1.0))
    op = {"triton": ss.sample_sequential_triton, "cuda": ss.sample_sequential_cuda}[backend]
    bad = list(args)
    bad[5] = args[5][:, 1:].contiguous()
    with pytest.raises(ValueError, match="w0 must be"):
        op(*bad)
    bad = list(args)
    bad[3] = args[3].double()
    with pytest.raises(TypeError, match="coef must be float32"):
        op(*bad)
    with pytest.raises(ValueError, match="output must be"):
        LAUNCH[backend](*args[:11], x_T.new_empty(2, 3, 3), *args[11:])


def test_dropin_bad_inputs():
    cond = torch.zeros(4, 2)
    eps = (lambda x, t, c: x)
    with pytest.raises(ValueError, match="x_dim must be"):
        sampling.sample(eps, cond)
    with pytest.raises(ValueError, match="noise must be"):
        sampling.sample(eps, cond, 2, noise=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="cond must be"):
        sampling.sample(eps, torch.zeros(4), 2)
    with pytest.raises(ValueError, match="backend applies"):
        sampling.sample(eps, cond, 2, backend="triton")
    with pytest.raises(ValueError, match="step_noise must be"):
        sampling.sample(eps, cond, 2, steps=2, solver="ddim", eta=0.5, step_noise=torch.zeros(3, 4, 2))
    with pytest.raises(TypeError, match="eps_model must be"):
        sampling.sample(3, cond, 2)
    model = _model()
    with pytest.raises(ValueError, match="x_dim must be the model's"):
        sampling.sample(model, torch.zeros(2, 3, SPEC.obs_max, dtype=torch.float64), 5)
    with pytest.raises(ValueError, match="noise must be"):
        sampling.sample(model, torch.zeros(2, 3, SPEC.obs_max, dtype=torch.float64), noise=torch.zeros(3, 3, 6))


@pytest.mark.parametrize("changes", [{"prediction": "x0"}, {"activation": "relu"}])
def test_kernels_refuse_the_default_recipe_by_name(changes):
    """The fused sampler kernels implement an eps-predicting Mish net: a clean-action or ReLU net
    (the default behaviour recipe) is refused by name when asked for explicitly, and the
    automatic choice takes torch."""
    torch.manual_seed(0)
    model = BehaviorModel(SPEC, "sequential", small_cfg("compact", **changes)).float()
    key = model.net.sequential_kernel_key(torch.float32)
    err = ss._kernel_accepts(*key)
    assert isinstance(err, TypeError) and "backend='torch'" in str(err)
    assert list(changes.values())[0] in str(err)
    obs = torch.zeros(2, 3, SPEC.obs_max)
    for backend in ("triton", "cuda"):
        with pytest.raises((TypeError, BackendUnavailableError), match="eps-predicting|unavailable"):
            model.sample(obs, steps=2, backend=backend)
