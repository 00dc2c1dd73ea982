"""Triton kernel for scoredec.ops.score_eval_compact: the forward pass of all m stacked compact
score networks (scoredec/nets.py CompactScoreNet) in one launch, grid (row blocks, models).

    h_0 = mish([x, cond, fourier(t)] W_0 + b_0)              W_0: [K0 = dx + dc + 2F, W]
    h_l = mish(h_{l-1} W_l + b_l),  l = 1 .. NUM_HIDDEN      W_l: [W, W]
    eps = h_NUM_HIDDEN W_out + b_out                         W_out: [W, dx]

Fused: the Fourier time features (sin, cos of 2 pi t freqs, computed here from t and freqs), the
input concatenation (x, cond and the features are read/computed separately and meet the matching
row blocks of W_0: the concat is never materialized; the in_mask is already zero rows of the
effective weight), bias adds and Mish (the one-exp formula of nets.mish) in the GEMM epilogues.

Keeping the activation on chip: a program holds its row block's whole activation h [BLOCK_M, W]
in registers. A [W, W] weight does not fit one block's shared memory in fp32 (NOTES.md), so the
weights are streamed from L2 in column tiles, and two consecutive layers are chained the way
flash-attention chains QK^T and PV: column tile j of layer a's output, p_j = mish(h W_a[:, j] +
b_a[j]) [BLOCK_M, BLOCK_N], is exactly row tile j of layer b's reduction, so it is consumed at
once, acc_b += p_j W_b[j, :], and never leaves the chip. Hidden layers run in such pairs; an odd
last hidden layer pairs with the head. Only the two full-width tiles h and acc_b and one
[BLOCK_M, BLOCK_N] tile live at a time.

Dtypes: x, cond, the weights and the output share one element type (fp32, fp16 or bf16); t and
freqs may be float32 or that type. Every GEMM accumulates in fp32, the Fourier features and
Mish are computed in fp32, and an activation is rounded to the element type only as a tl.dot
operand (16-bit tensor-core inputs). fp32 dots use input_precision="ieee" (no TF32), matching
torch's default fp32 matmul.
"""

from __future__ import annotations

import triton
import triton.language as tl

TWO_PI = tl.constexpr(6.283185307179586)
# nets.mish: for x > 20, mish(x) = x in fp32; clamping keeps e^x (e^x + 2) finite.
MISH_CLAMP = tl.constexpr(20.0)


@triton.jit
def _mish(x):
    # nets.mish: x tanh(softplus(x)) = x w / (w + 2) with w = e^x (e^x + 2).
    n = tl.exp(tl.minimum(x, MISH_CLAMP))
    w = n * (n + 2.0)
    return x * (w / (w + 2.0))


@triton.jit
def _acc_from_global(acc, src_ptr, rows, row_mask, D, w_ptr, w_row0, cols, col_mask, ld_w,
                     BLOCK_K: tl.constexpr, PRECISION: tl.constexpr):
    """acc += src[rows, 0:D] @ w[w_row0 : w_row0 + D, cols]; src is [B, D] row-major."""
    dt = w_ptr.dtype.element_ty
    for k0 in range(0, D, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_mask = ks < D
        a = tl.load(src_ptr + rows[:, None] * D + ks[None, :], mask=row_mask[:, None] & k_mask[None, :],
                    other=0.0)
        w = tl.load(w_ptr + (w_row0 + ks)[:, None] * ld_w + cols[None, :],
                    mask=k_mask[:, None] & col_mask[None, :], other=0.0)
        acc = tl.dot(a.to(dt), w, acc, input_precision=PRECISION)
    return acc


@triton.jit
def _chained_pair(h, wa_ptr, ba_ptr, wb_ptr, bb_ptr, W, N_OUT,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr,
                  BLOCK_OUT: tl.constexpr, PRECISION: tl.constexpr):
    """mish(h W_a + b_a) W_b + b_b for h [BLOCK_M, BLOCK_W] (fp32, columns >= W zero),
    W_a [W, W], W_b [W, N_OUT] row-major; returns [BLOCK_M, BLOCK_OUT] fp32 (columns >= N_OUT
    zero). Layer a's output exists one [BLOCK_M, BLOCK_N] column tile at a time."""
    dt = wa_ptr.dtype.element_ty
    h_op = h.to(dt)
    k = tl.arange(0, BLOCK_W)
    k_mask = k < W
    out_cols = tl.arange(0, BLOCK_OUT)
    out_mask = out_cols < N_OUT
    acc = tl.zeros((BLOCK_M, BLOCK_OUT), dtype=tl.float32)
    for n0 in range(0, W, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        n_mask = n < W
        wa = tl.load(wa_ptr + k[:, None] * W + n[None, :], mask=k_mask[:, None] & n_mask[None, :], other=0.0)
        ba = tl.load(ba_ptr + n, mask=n_mask, other=0.0).to(tl.float32)
        p = _mish(tl.dot(h_op, wa, input_precision=PRECISION) + ba[None, :])
        wb = tl.load(wb_ptr + n[:, None] * N_OUT + out_cols[None, :], mask=n_mask[:, None] & out_mask[None, :],
                     other=0.0)
        acc = tl.dot(p.to(dt), wb, acc, input_precision=PRECISION)
    bb = tl.load(bb_ptr + out_cols, mask=out_mask, other=0.0).to(tl.float32)
    return acc + bb[None, :]


@triton.jit
def score_compact_kernel(
    x_ptr, t_ptr, cond_ptr, freqs_ptr,
    w0_ptr, b0_ptr, wh_ptr, bh_ptr, wo_ptr, bo_ptr, out_ptr,
    B, DX, DC, F, W,
    NUM_HIDDEN: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_W: tl.constexpr,
    BLOCK_F: tl.constexpr, BLOCK_DX: tl.constexpr, PRECISION: tl.constexpr,
):
    """Program (i, k): rows [i BLOCK_M, (i+1) BLOCK_M) of model k. Contiguous row-major:
    x, out [m, B, DX]; t [m, B]; cond [m, B, DC]; freqs [F]; w0 [m, DX+DC+2F, W]; b0 [m, W];
    wh [m, NUM_HIDDEN, W, W]; bh [m, NUM_HIDDEN, W]; wo [m, W, DX]; bo [m, DX].
    BLOCK_W >= W, BLOCK_F >= F, BLOCK_DX >= DX are powers of two >= 16 (tl.dot's minimum);
    masks cut the padding and padded columns stay exactly zero through every layer."""
    model = tl.program_id(1).to(tl.int64)
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < B
    dt = w0_ptr.dtype.element_ty
    K0 = DX + DC + 2 * F

    # Layer 0 over the three sources of the (never materialized) concatenation [x, cond, fourier].
    cols = tl.arange(0, BLOCK_W)
    col_mask = cols < W
    w0 = w0_ptr + model * K0 * W
    acc = tl.zeros((BLOCK_M, BLOCK_W), dtype=tl.float32)
    acc = _acc_from_global(acc, x_ptr + model * B * DX, rows, row_mask, DX, w0, 0, cols, col_mask, W,
                           BLOCK_K, PRECISION)
    acc = _acc_from_global(acc, cond_ptr + model * B * DC, rows, row_mask, DC, w0, DX, cols, col_mask, W,
                           BLOCK_K, PRECISION)
    # sde.fourier_features: [sin, cos](2 pi t f), with the reference's rounding order (2 pi t) * f.
    t = tl.load(t_ptr + model * B + rows, mask=row_mask, other=0.0).to(tl.float32)
    f = tl.arange(0, BLOCK_F)
    f_mask = f < F
    freqs = tl.load(freqs_ptr + f, mask=f_mask, other=0.0).to(tl.float32)
    proj = (t * TWO_PI)[:, None] * freqs[None, :]
    w_mask = f_mask[:, None] & col_mask[None, :]
    w_sin = tl.load(w0 + (DX + DC + f)[:, None] * W + cols[None, :], mask=w_mask, other=0.0)
    w_cos = tl.load(w0 + (DX + DC + F + f)[:, None] * W + cols[None, :], mask=w_mask, other=0.0)
    acc = tl.dot(tl.sin(proj).to(dt), w_sin, acc, input_precision=PRECISION)
    acc = tl.dot(tl.cos(proj).to(dt), w_cos, acc, input_precision=PRECISION)
    b0 = tl.load(b0_ptr + model * W + cols, mask=col_mask, other=0.0).to(tl.float32)
    h = _mish(acc + b0[None, :])  # padded columns: mish(0 + 0) = 0

    wh = wh_ptr + model * NUM_HIDDEN * W * W
    bh = bh_ptr + model * NUM_HIDDEN * W
    wo = wo_ptr + model * W * DX
    bo = bo_ptr + model * DX
    for p in tl.static_range(NUM_HIDDEN // 2):
        h = _mish(_chained_pair(h, wh + (2 * p) * W * W, bh + (2 * p) * W, wh + (2 * p + 1) * W * W,
                                bh + (2 * p + 1) * W, W, W, BLOCK_M, BLOCK_N, BLOCK_W, BLOCK_W, PRECISION))

    out_cols = tl.arange(0, BLOCK_DX)
    out_mask = out_cols < DX
    if NUM_HIDDEN % 2 == 1:
        # The last hidden layer chained into the head.
        last = NUM_HIDDEN - 1
        eps = _chained_pair(h, wh + last * W * W, bh + last * W, wo, bo, W, DX,
                            BLOCK_M, BLOCK_N, BLOCK_W, BLOCK_DX, PRECISION)
    else:
        w_out = tl.load(wo + cols[:, None] * DX + out_cols[None, :], mask=col_mask[:, None] & out_mask[None, :],
                        other=0.0)
        b_out = tl.load(bo + out_cols, mask=out_mask, other=0.0).to(tl.float32)
        eps = tl.dot(h.to(dt), w_out, input_precision=PRECISION) + b_out[None, :]
    out = out_ptr + model * B * DX + rows[:, None] * DX + out_cols[None, :]
    tl.store(out, eps.to(out_ptr.dtype.element_ty), mask=row_mask[:, None] & out_mask[None, :])


# ---------------------------------------------------------------------------------------------
# Block sizes, measured with scripts/aot_compile.py for sm_90 (width 256, 8 warps, 2 stages).
# ---------------------------------------------------------------------------------------------

# (BLOCK_M, BLOCK_N) the launcher chooses from, per element type; each is an AOT configuration.
# 16-bit: BLOCK_M 16 runs mma.sync (255 registers, no spills at BLOCK_N 32; 4 warps or
# BLOCK_N 64 spill 0.1-1.6 KB), BLOCK_M 64 runs wgmma (BLOCK_N 16: 144 B of spills with 3
# layers, none with 2; BLOCK_N 32: 350 B; 4 warps: 3.8 KB). fp32 (ieee dots on the FMA units
# keep every operand in registers): BLOCK_M 16 only (174 registers; BLOCK_M 32 spills 32 B,
# 64 spills ~3 KB). Shared memory stays under 84 KB everywhere (limit 232448 B).
TILES = {"fp32": ((16, 32),), "fp16": ((16, 32), (64, 16)), "bf16": ((16, 32), (64, 16))}
BLOCK_K = 16
NUM_WARPS = 8
NUM_STAGES = 2
# The launcher refuses wider nets (scoredec/ops/score_compact.py KERNEL_MAX_WIDTH): h and the
# chained accumulator are full-width register tiles. Widths above 256 are not AOT-measured.
MAX_WIDTH = 512
# Streaming multiprocessors of an H100 SXM; only used when no CUDA device tells us.
DEFAULT_SM_COUNT = 132


def pow2_at_least_16(n: int) -> int:
    return max(16, triton.next_power_of_2(max(n, 1)))


def choose_tile(dtype: str, B: int, models: int, sm_count: int) -> tuple[int, int]:
    """(BLOCK_M, BLOCK_N): the largest row block that still gives every SM a program; small
    batches get the smallest (streaming the weights from L2, not arithmetic, bounds them, so
    more programs = more SMs pulling weights in parallel)."""
    tiles = sorted(TILES[dtype], reverse=True)
    for tile in tiles:
        if models * triton.cdiv(B, tile[0]) >= sm_count:
            return tile
    return tiles[-1]


def block_sizes(dtype: str, W: int, dx: int, F: int, tile: tuple[int, int], block_k: int = BLOCK_K) -> dict:
    """Constexprs of one launch. dtype: 'fp32' | 'fp16' | 'bf16'; tile: (BLOCK_M, BLOCK_N)."""
    block_w = pow2_at_least_16(W)
    return {"BLOCK_M": tile[0], "BLOCK_N": min(tile[1], block_w), "BLOCK_K": block_k, "BLOCK_W": block_w,
            "BLOCK_F": pow2_at_least_16(F), "BLOCK_DX": pow2_at_least_16(dx),
            "PRECISION": "ieee" if dtype == "fp32" else "tf32"}


def _signature(dtype: str, t_dtype: str) -> dict:
    ptr = f"*{dtype}"
    return {
        "x_ptr": ptr, "t_ptr": f"*{t_dtype}", "cond_ptr": ptr, "freqs_ptr": f"*{t_dtype}",
        "w0_ptr": ptr, "b0_ptr": ptr, "wh_ptr": ptr, "bh_ptr": ptr, "wo_ptr": ptr, "bo_ptr": ptr,
        "out_ptr": ptr, "B": "i32", "DX": "i32", "DC": "i32", "F": "i32", "W": "i32",
        "NUM_HIDDEN": "constexpr", "BLOCK_M": "constexpr", "BLOCK_N": "constexpr", "BLOCK_K": "constexpr",
        "BLOCK_W": "constexpr", "BLOCK_F": "constexpr", "BLOCK_DX": "constexpr", "PRECISION": "constexpr",
    }


def _aot_configs() -> list[dict]:
    """What the launcher compiles for the production compact net (width 256, 3 hidden layers
    -> NUM_HIDDEN = 2 chained WxW layers, 16 frequencies) and for the odd-depth path (2 layers:
    the last hidden layer chained into the head): every element dtype, both row blocks, action
    widths 1..16 (BLOCK_DX 16). t/freqs in float32."""
    configs = []
    for dtype in ("fp32", "fp16", "bf16"):
        for tile in TILES[dtype]:
            for layers in (3, 2):
                constexprs = {"NUM_HIDDEN": layers - 1, **block_sizes(dtype, 256, 6, 16, tile)}
                configs.append({
                    "name": f"{dtype} W=256 layers={layers} BLOCK_M={tile[0]} BLOCK_N={constexprs['BLOCK_N']}",
                    "signature": _signature(dtype, "fp32"),
                    "constexprs": constexprs,
                    "num_warps": NUM_WARPS,
                    "num_stages": NUM_STAGES,
                })
    return configs


KERNELS = [("score_compact_kernel", score_compact_kernel, _aot_configs())]

# torch dtype (str) -> Triton element type name; also read by sample_sequential.py.
DTYPE_NAME = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}


def launch(x, t, cond, freqs, w0, b0, wh, bh, wo, bo, out, tile: tuple[int, int] | None = None,
           sm_count: int | None = None) -> None:
    """Launch on validated, contiguous tensors of one device (see scoredec/ops/score_compact.py).
    Shapes as score_compact_kernel documents, with b0 [m, 1, W], bh [m, NH, W], bo [m, 1, DX]
    accepted as views of the same memory. tile: (BLOCK_M, BLOCK_N), default choose_tile."""
    m, B, dx = x.shape
    if m == 0 or B == 0:
        return
    dc, F, W, num_hidden = cond.shape[2], freqs.shape[0], w0.shape[2], wh.shape[1]
    if num_hidden == 0:  # never read; a valid address instead of an empty tensor's
        wh, bh = w0, b0
    if sm_count is None:
        sm_count = _sm_count(x.device) if x.device.type == "cuda" else DEFAULT_SM_COUNT
    dtype = DTYPE_NAME[str(x.dtype)]
    if tile is None:
        tile = choose_tile(dtype, B, m, sm_count)
    sizes = block_sizes(dtype, W, dx, F, tile)
    grid = (triton.cdiv(B, tile[0]), m)
    score_compact_kernel[grid](x, t, cond, freqs, w0, b0, wh, bh, wo, bo, out, B, dx, dc, F, W,
                               NUM_HIDDEN=num_hidden, num_warps=NUM_WARPS, num_stages=NUM_STAGES, **sizes)


_SM_COUNTS: dict = {}


def _sm_count(device) -> int:
    if device not in _SM_COUNTS:
        import torch

        _SM_COUNTS[device] = torch.cuda.get_device_properties(device).multi_processor_count
    return _SM_COUNTS[device]
