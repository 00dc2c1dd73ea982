"""Triton kernel for scoredec.ops.sample_sequential: the sequential ancestral sampler of a stack
of m compact score networks (DESIGN.md 1.6) in one persistent launch, grid (row blocks,).

Program i owns rows [i BLOCK_M, (i+1) BLOCK_M) of the batch and walks the chain itself:

    for k in 0 .. m-1:                       model k = the agent at position k of the order
        c = [obs_k, clip(x_0), ..., clip(x_{k-1}), 0 ...]   (the prefix condition, layout.py)
        x = x_T[k]
        for i in 0 .. T-1:                   solver steps on the host's time grid
            eps = net_k(x, t_i | c)          (dpm2: and eps at the midpoint u)
            x = c_x x + c_e eps (+ c_2 eps(u, s1) | + c_n z_i)     fused into the head
        out[k] = clip(x)

What stays on chip: the sample x [BLOCK_M, BLOCK_DX] (float32, in registers through all T
steps), the activations (score_compact's chained layer pairs), and the condition's share of
the first layer, c W_0[cond rows] + b_0 [BLOCK_M, W]: constant over an agent's steps, so it is
computed once per agent and the per-step first layer only sees x and the time features. The
Fourier features are a function of the step's scalar time only, so their share of the first
layer is one [W] vector per evaluation (a reduction over 2F rows, no dot). Weights are read
from global memory in tiles at every evaluation: a program reuses agent k's weights 2T times,
so they are L2 (and L1) hits after the first step. A [W, W] fp32 layer never fits one block's
shared memory (NOTES.md), and Triton leaves caching to the hardware; the CUDA kernel
(csrc/sample_sequential.cu) pins the 16-bit weights that fit in shared memory explicitly.

The earlier agents' samples travel through `out` (written by this program, read back after a
barrier): agent k's condition reads rows this same program stored, so no other program is
waited on. The coefficient table (scoredec/sde.py Solver.coefficient_table) holds
per step [t, s1, u_x, u_e, c_x, c_e, c_2, 0] in float32, computed in float64 on the host from
sde.py; the kernel never evaluates the schedule.

Dtypes: obs, x_T, the step noise, the weights and out share one element type; every dot
accumulates in float32, the features and Mish are float32, x stays float32 between steps and
is rounded to the element type only as a dot operand and when stored.
"""

from __future__ import annotations

import triton
import triton.language as tl

from . import score_compact
from .score_compact import _acc_from_global, _chained_pair, _mish, _sm_count

TWO_PI = tl.constexpr(6.283185307179586)
# Columns of one coefficient-table row (scoredec/sde.py COEF_COLUMNS).
COEF_COLS = tl.constexpr(8)
SOLVER_DDIM = tl.constexpr(0)
SOLVER_DPM1 = tl.constexpr(1)
SOLVER_DPM2 = tl.constexpr(2)


@triton.jit
def _epsilon(x, t, cpart, freqs_ptr, w0, wh, bh, wo, bo, DX, DC, F, W,
             NUM_HIDDEN: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr,
             BLOCK_F: tl.constexpr, BLOCK_DX: tl.constexpr, PRECISION: tl.constexpr):
    """net_k(x, t | c) for x [BLOCK_M, BLOCK_DX] fp32 (padded columns zero), one scalar time t,
    cpart = c W_0[cond rows] + b_0 [BLOCK_M, BLOCK_W]; returns eps [BLOCK_M, BLOCK_DX] fp32 with
    padded columns zero."""
    dt = w0.dtype.element_ty
    cols = tl.arange(0, BLOCK_W)
    col_mask = cols < W
    xr = tl.arange(0, BLOCK_DX)
    xr_mask = xr < DX
    w_x = tl.load(w0 + xr[:, None] * W + cols[None, :], mask=xr_mask[:, None] & col_mask[None, :], other=0.0)
    acc = tl.dot(x.to(dt), w_x, cpart, input_precision=PRECISION)
    # sde.fourier_features at one time: [sin, cos](2 pi t f); its first-layer share is a row vector.
    f = tl.arange(0, BLOCK_F)
    f_mask = f < F
    freqs = tl.load(freqs_ptr + f, mask=f_mask, other=0.0).to(tl.float32)
    proj = (t * TWO_PI) * freqs
    w_mask = f_mask[:, None] & col_mask[None, :]
    w_sin = tl.load(w0 + (DX + DC + f)[:, None] * W + cols[None, :], mask=w_mask, other=0.0).to(tl.float32)
    w_cos = tl.load(w0 + (DX + DC + F + f)[:, None] * W + cols[None, :], mask=w_mask, other=0.0).to(tl.float32)
    # Features are rounded to the element type as the reference's concatenated input is.
    sin_f = tl.sin(proj).to(dt).to(tl.float32)
    cos_f = tl.cos(proj).to(dt).to(tl.float32)
    fvec = tl.sum(sin_f[:, None] * w_sin + cos_f[:, None] * w_cos, axis=0)
    h = _mish(acc + fvec[None, :])

    for p in tl.static_range(NUM_HIDDEN // 2):
        h = _mish(_chained_pair(h, wh + (2 * p) * W * W, bh + (2 * p) * W, wh + (2 * p + 1) * W * W,
                                bh + (2 * p + 1) * W, W, W, BLOCK_M, BLOCK_N, BLOCK_W, BLOCK_W, PRECISION))
    if NUM_HIDDEN % 2 == 1:
        last = NUM_HIDDEN - 1
        eps = _chained_pair(h, wh + last * W * W, bh + last * W, wo, bo, W, DX,
                            BLOCK_M, BLOCK_N, BLOCK_W, BLOCK_DX, PRECISION)
    else:
        w_out = tl.load(wo + cols[:, None] * DX + xr[None, :], mask=col_mask[:, None] & xr_mask[None, :],
                        other=0.0)
        b_out = tl.load(bo + xr, mask=xr_mask, other=0.0).to(tl.float32)
        eps = tl.dot(h.to(dt), w_out, input_precision=PRECISION) + b_out[None, :]
    return eps


@triton.jit
def sample_sequential_kernel(
    obs_ptr, xT_ptr, noise_ptr, coef_ptr, freqs_ptr,
    w0_ptr, b0_ptr, wh_ptr, bh_ptr, wo_ptr, bo_ptr, out_ptr,
    B, M, DX, DO, F, W, STEPS, clip,
    NUM_HIDDEN: tl.constexpr, SOLVER: tl.constexpr, HAS_NOISE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr,
    BLOCK_F: tl.constexpr, BLOCK_DX: tl.constexpr, PRECISION: tl.constexpr,
):
    """Contiguous row-major: obs [M, B, DO]; xT, out [M, B, DX]; noise [M, STEPS, B, DX] (read
    only when HAS_NOISE); coef [STEPS, 8] fp32; freqs [F]; w0 [M, K0, W] with K0 = DX + DC + 2F,
    DC = DO + (M-1) DX; b0 [M, W]; wh [M, NUM_HIDDEN, W, W]; bh [M, NUM_HIDDEN, W]; wo [M, W, DX];
    bo [M, DX]. SOLVER: 0 ddim, 1 dpm1, 2 dpm2 (constexpr)."""
    pid = tl.program_id(0).to(tl.int64)
    zero64 = pid * 0  # promotes loop counters to int64 offsets (also under the interpreter)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < B
    DC = DO + (M - 1) * DX
    K0 = DX + DC + 2 * F
    cols = tl.arange(0, BLOCK_W)
    col_mask = cols < W
    xr = tl.arange(0, BLOCK_DX)
    x_mask = row_mask[:, None] & (xr < DX)[None, :]

    for k in range(M):
        model = zero64 + k
        w0 = w0_ptr + model * K0 * W
        # The condition's share of layer 0, fixed for all of agent k's steps.
        b0 = tl.load(b0_ptr + model * W + cols, mask=col_mask, other=0.0).to(tl.float32)
        cpart = tl.zeros((BLOCK_M, BLOCK_W), dtype=tl.float32) + b0[None, :]
        cpart = _acc_from_global(cpart, obs_ptr + model * B * DO, rows, row_mask, DO, w0, DX, cols, col_mask, W,
                                 BLOCK_K, PRECISION)
        for j in range(k):  # earlier agents' (clipped) samples: rows this program stored
            cpart = _acc_from_global(cpart, out_ptr + (zero64 + j) * B * DX, rows, row_mask, DX, w0,
                                     DX + DO + j * DX, cols, col_mask, W, BLOCK_K, PRECISION)

        wh = wh_ptr + model * NUM_HIDDEN * W * W
        bh = bh_ptr + model * NUM_HIDDEN * W
        wo = wo_ptr + model * W * DX
        bo = bo_ptr + model * DX
        offs = model * B * DX + rows[:, None] * DX + xr[None, :]
        x = tl.load(xT_ptr + offs, mask=x_mask, other=0.0).to(tl.float32)
        for i in range(STEPS):
            row = coef_ptr + i * COEF_COLS
            t = tl.load(row)
            c_x = tl.load(row + 4)
            c_e = tl.load(row + 5)
            c_2 = tl.load(row + 6)
            eps = _epsilon(x, t, cpart, freqs_ptr, w0, wh, bh, wo, bo, DX, DC, F, W, NUM_HIDDEN,
                           BLOCK_M, BLOCK_N, BLOCK_W, BLOCK_F, BLOCK_DX, PRECISION)
            if SOLVER == SOLVER_DPM2:
                u = tl.load(row + 2) * x + tl.load(row + 3) * eps
                eps_u = _epsilon(u, tl.load(row + 1), cpart, freqs_ptr, w0, wh, bh, wo, bo, DX, DC, F, W,
                                 NUM_HIDDEN, BLOCK_M, BLOCK_N, BLOCK_W, BLOCK_F, BLOCK_DX, PRECISION)
                x = c_x * x + c_e * eps + c_2 * eps_u
            elif HAS_NOISE:
                z = tl.load(noise_ptr + (model * STEPS + i) * B * DX + rows[:, None] * DX + xr[None, :],
                            mask=x_mask, other=0.0).to(tl.float32)
                x = c_x * x + c_e * eps + c_2 * z
            else:
                x = c_x * x + c_e * eps
        x = tl.minimum(tl.maximum(x, -clip), clip)
        tl.store(out_ptr + offs, x.to(out_ptr.dtype.element_ty), mask=x_mask)
        # Later agents read these rows back as their condition.
        tl.debug_barrier()


# ---------------------------------------------------------------------------------------------
# Block sizes, measured with scripts/aot_compile.py for sm_90 (width 256, 8 warps).
# ---------------------------------------------------------------------------------------------

# (BLOCK_M, BLOCK_N) per element type. Measured (triton 3.7.1, sm_90, width 256, 2 hidden
# WxW layers, 8 warps, 2 stages): everything compiles within shared memory (fp32 116,736 B;
# 16-bit 33,792 B at BLOCK_M 16, 49,152 B at 64), but every configuration spills: fp32 dpm2
# 255 registers, 1.2/1.5 KB spill stores/loads (ddim 1.0/0.8 KB); 16-bit dpm2 BLOCK_M 16 128
# registers, 2.9/4.1 KB; 16-bit ddim 255 registers, 1.2/1.3 KB; 16-bit dpm2 BLOCK_M 64 255,
# 2.1/3.2 KB. The extra live state over score_compact (the condition's share of layer 0, x,
# the dpm2 midpoint) tips it over. num_stages=1 was far worse (fp32: 32 registers, 19 KB of
# spills); 3 stages, 4 warps, BLOCK_N 16/64, recomputing the condition share per evaluation
# or keeping it in a global scratch buffer did not remove the spills (scripts/aot_compile.py).
TILES = {"fp32": ((16, 32),), "fp16": ((16, 32), (64, 16)), "bf16": ((16, 32), (64, 16))}
BLOCK_K = 16
NUM_WARPS = 8
NUM_STAGES = 2
DEFAULT_SM_COUNT = 132
SOLVER_CODES = {"ddim": 0, "dpm1": 1, "dpm2": 2}


def choose_tile(dtype: str, B: int, sm_count: int) -> tuple[int, int]:
    """The largest row block that still gives every SM a program; else the smallest (at small
    batch the chain is latency-bound: fewer rows per program = shorter dots)."""
    tiles = sorted(TILES[dtype], reverse=True)
    for tile in tiles:
        if triton.cdiv(B, tile[0]) >= sm_count:
            return tile
    return tiles[-1]


def block_sizes(dtype: str, W: int, dx: int, F: int, tile: tuple[int, int]) -> dict:
    """score_compact's constexprs (the same per-model network) with this kernel's BLOCK_K."""
    return score_compact.block_sizes(dtype, W, dx, F, tile, block_k=BLOCK_K)


def _signature(dtype: str) -> dict:
    ptr = f"*{dtype}"
    return {
        "obs_ptr": ptr, "xT_ptr": ptr, "noise_ptr": ptr, "coef_ptr": "*fp32", "freqs_ptr": "*fp32",
        "w0_ptr": ptr, "b0_ptr": ptr, "wh_ptr": ptr, "bh_ptr": ptr, "wo_ptr": ptr, "bo_ptr": ptr,
        "out_ptr": ptr, "B": "i32", "M": "i32", "DX": "i32", "DO": "i32", "F": "i32", "W": "i32",
        "STEPS": "i32", "clip": "fp32",
        "NUM_HIDDEN": "constexpr", "SOLVER": "constexpr", "HAS_NOISE": "constexpr",
        "BLOCK_M": "constexpr", "BLOCK_N": "constexpr", "BLOCK_K": "constexpr", "BLOCK_W": "constexpr",
        "BLOCK_F": "constexpr", "BLOCK_DX": "constexpr", "PRECISION": "constexpr",
    }


def _aot_configs() -> list[dict]:
    """The production compact net (width 256, 3 layers -> 2 chained WxW layers, 16 frequencies,
    action width <= 16): every dtype and row block with dpm2 (two evaluations per step, the
    largest code), and stochastic DDIM (the noise path) at the first tile."""
    configs = []
    for dtype in ("fp32", "fp16", "bf16"):
        for tile in TILES[dtype]:
            for solver, has_noise in (("dpm2", False), ("ddim", True)):
                if solver == "ddim" and tile != TILES[dtype][0]:
                    continue
                constexprs = {"NUM_HIDDEN": 2, "SOLVER": SOLVER_CODES[solver], "HAS_NOISE": has_noise,
                              **block_sizes(dtype, 256, 6, 16, tile)}
                configs.append({
                    "name": f"{dtype} W=256 {solver}{'+noise' if has_noise else ''} BLOCK_M={tile[0]} "
                            f"BLOCK_N={constexprs['BLOCK_N']}",
                    "signature": _signature(dtype),
                    "constexprs": constexprs,
                    "num_warps": NUM_WARPS,
                    "num_stages": NUM_STAGES,
                })
    return configs


KERNELS = [("sample_sequential_kernel", sample_sequential_kernel, _aot_configs())]

def launch(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, out, clip: float, solver: str,
           tile: tuple[int, int] | None = None, sm_count: int | None = None) -> None:
    """Launch on validated contiguous tensors of one device (scoredec/ops/sampler.py).
    step_noise: [m, steps, B, dx] or None; coef: [steps, 8] float32; freqs float32."""
    m, B, dx = x_T.shape
    if m == 0 or B == 0:
        return
    steps, F, W, num_hidden = coef.shape[0], freqs.shape[0], w0.shape[2], wh.shape[1]
    if num_hidden == 0:  # never read; valid addresses instead of an empty tensor's
        wh, bh = w0, b0
    has_noise = step_noise is not None
    if not has_noise:
        step_noise = x_T
    if sm_count is None:
        sm_count = _sm_count(x_T.device) if x_T.device.type == "cuda" else DEFAULT_SM_COUNT
    dtype = score_compact.DTYPE_NAME[str(x_T.dtype)]
    if tile is None:
        tile = choose_tile(dtype, B, sm_count)
    sizes = block_sizes(dtype, W, dx, F, tile)
    grid = (triton.cdiv(B, tile[0]),)
    sample_sequential_kernel[grid](obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, out,
                                   B, m, dx, obs.shape[2], F, W, steps, float(clip),
                                   NUM_HIDDEN=num_hidden, SOLVER=SOLVER_CODES[solver], HAS_NOISE=has_noise,
                                   num_warps=NUM_WARPS, num_stages=NUM_STAGES, **sizes)
