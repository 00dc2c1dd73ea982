"""Triton kernels for scoredec.ops.score_eval_resnet: the forward pass of all m stacked resnet
score networks (scoredec/nets.py ResNetScoreNet, eval mode) as a short sequence of grouped GEMM
launches, each over the grid (row blocks, column blocks, models):

    stem:   h   = [temb(t), in(x, cond)] W_trunk + b_trunk                  -> h  [m, B, H] fp32
            temb = relu(fourier(t) W_t1 + b_t1) W_t2 + b_t2   (64), in = [x, cond] W_e + b_e (32)
    up_b:   u   = relu(LayerNorm_b(h) W1_b + b1_b)                           -> u  [m, B, 4H]
    down_b: h  += u W2_b + b2_b            (in place: each program owns its output tile)
    head:   eps = relu(h) W_head + b_head                                    -> eps [m, B, d]

Why a sequence and not one persistent kernel: W1 and W2 are 2 x H x 4H (2 MB per block and
model at H = 512 in bf16), far beyond one SM's shared memory, so every layer streams its weight
from L2 in [BLOCK_K, BLOCK_N] tiles and the fusion lives in the GEMMs' prologues and epilogues:

- the stem kernel computes the Fourier features, the whole time MLP and the input embedding of
  its row block on chip and feeds them straight into the trunk GEMM (the concatenations are
  never materialized; it recomputes the small time MLP per column block: 6K MACs per row, the
  trunk's own share, against 4M MACs per row in the two blocks at H = 512);
- LayerNorm lives in W1's prologue: the program makes two passes over its rows of h (mean,
  then the centred variance: the numerically safe order) and normalizes each A tile as it
  loads it. Every column block repeats the statistics, which costs two extra reads of a
  [BLOCK_M, H] fp32 tile from L2 against the GEMM's BLOCK_N FMAs per element: cheaper than a
  separate launch or atomics in the previous epilogue;
- ReLU in W1's epilogue, the residual add in W2's epilogue, the final ReLU in the head's
  prologue.

The residual stream h stays float32 between launches (the GEMMs accumulate in fp32; h is
rounded to the element type only as a dot operand), u is stored in the element type because it
is only ever a dot operand. Prefix widths per agent: the embed weight is the effective one
(in_mask applied, zero rows for inputs a model lacks), so padded columns of x/cond meet zeros.

Dtypes: fp32 / fp16 / bf16 element type; fp32 dots use input_precision="ieee" (no TF32, as
torch's default fp32 matmul).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .score_compact import DTYPE_NAME, _sm_count, pow2_at_least_16

TWO_PI = tl.constexpr(6.283185307179586)

# Prologue applied to the A operand of resnet_gemm_kernel, epilogue applied to the result.
PRO_NONE, PRO_LAYERNORM, PRO_RELU = 0, 1, 2
EPI_NONE, EPI_RELU, EPI_RESIDUAL = 0, 1, 2


@triton.jit
def _rows_at(src_ptr, rows, row_mask, ld, k0, K, BLOCK_K: tl.constexpr):
    """src[rows, k0 : k0 + BLOCK_K] (zeros outside), src row-major with leading dimension ld."""
    ks = k0 + tl.arange(0, BLOCK_K)
    k_mask = ks < K
    a = tl.load(src_ptr + rows[:, None] * ld + ks[None, :], mask=row_mask[:, None] & k_mask[None, :], other=0.0)
    return a, ks, k_mask


@triton.jit
def _weight_tile(w_ptr, ks, k_mask, cols, col_mask, ld):
    return tl.load(w_ptr + ks[:, None] * ld + cols[None, :], mask=k_mask[:, None] & col_mask[None, :], other=0.0)


@triton.jit
def resnet_stem_kernel(
    x_ptr, t_ptr, cond_ptr, freqs_ptr,
    wt1_ptr, bt1_ptr, wt2_ptr, bt2_ptr, we_ptr, be_ptr, wtr_ptr, btr_ptr, h_ptr,
    B, DX, DC, F, H,
    TIME: tl.constexpr, EMBED: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_F: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Program (i, j, k): rows i, trunk columns j of model k. Contiguous row-major:
    x [m, B, DX]; t [m, B]; cond [m, B, DC]; freqs [F]; wt1 [m, 2F, TIME]; wt2 [m, TIME, TIME];
    we [m, DX + DC, EMBED]; wtr [m, TIME + EMBED, H]; biases [m, out]; h [m, B, H] float32.
    TIME, EMBED are powers of two >= 16 (64 and 32: nets.TIME_HIDDEN, nets.INPUT_EMBED)."""
    model = tl.program_id(2).to(tl.int64)
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < B
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_mask = cols < H
    dt = wtr_ptr.dtype.element_ty

    # sde.fourier_features with the reference's rounding order (2 pi t) * f.
    t = tl.load(t_ptr + model * B + rows, mask=row_mask, other=0.0).to(tl.float32)
    f = tl.arange(0, BLOCK_F)
    f_mask = f < F
    freqs = tl.load(freqs_ptr + f, mask=f_mask, other=0.0).to(tl.float32)
    proj = (t * TWO_PI)[:, None] * freqs[None, :]
    th = tl.arange(0, TIME)
    th_true = th < TIME
    wt1 = wt1_ptr + model * 2 * F * TIME
    a1 = tl.dot(tl.sin(proj).to(dt), _weight_tile(wt1, f, f_mask, th, th_true, TIME), input_precision=PRECISION)
    a1 = tl.dot(tl.cos(proj).to(dt), _weight_tile(wt1, F + f, f_mask, th, th_true, TIME), a1,
                input_precision=PRECISION)
    a1 = tl.maximum(a1 + tl.load(bt1_ptr + model * TIME + th).to(tl.float32)[None, :], 0.0)
    wt2 = tl.load(wt2_ptr + model * TIME * TIME + th[:, None] * TIME + th[None, :])
    temb = tl.dot(a1.to(dt), wt2, input_precision=PRECISION)
    temb += tl.load(bt2_ptr + model * TIME + th).to(tl.float32)[None, :]

    # Input embedding over the two sources of the (never materialized) [x, cond].
    em = tl.arange(0, EMBED)
    em_true = em < EMBED
    we = we_ptr + model * (DX + DC) * EMBED
    emb = tl.zeros((BLOCK_M, EMBED), dtype=tl.float32)
    for k0 in range(0, DX, BLOCK_K):
        a, ks, k_mask = _rows_at(x_ptr + model * B * DX, rows, row_mask, DX, k0, DX, BLOCK_K)
        emb = tl.dot(a.to(dt), _weight_tile(we, ks, k_mask, em, em_true, EMBED), emb, input_precision=PRECISION)
    for k0 in range(0, DC, BLOCK_K):
        a, ks, k_mask = _rows_at(cond_ptr + model * B * DC, rows, row_mask, DC, k0, DC, BLOCK_K)
        emb = tl.dot(a.to(dt), _weight_tile(we, DX + ks, k_mask, em, em_true, EMBED), emb,
                     input_precision=PRECISION)
    emb += tl.load(be_ptr + model * EMBED + em).to(tl.float32)[None, :]

    # Trunk input layer on [temb, emb]: the two row blocks of W_trunk.
    wtr = wtr_ptr + model * (TIME + EMBED) * H
    acc = tl.dot(temb.to(dt), _weight_tile(wtr, th, th_true, cols, col_mask, H), input_precision=PRECISION)
    acc = tl.dot(emb.to(dt), _weight_tile(wtr, TIME + em, em_true, cols, col_mask, H), acc,
                 input_precision=PRECISION)
    acc += tl.load(btr_ptr + model * H + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
    tl.store(h_ptr + model * B * H + rows[:, None] * H + cols[None, :], acc,
             mask=row_mask[:, None] & col_mask[None, :])


@triton.jit
def resnet_gemm_kernel(
    a_ptr, w_ptr, bias_ptr, gamma_ptr, beta_ptr, c_ptr,
    B, K, N, ln_eps,
    PROLOGUE: tl.constexpr, EPILOGUE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):
    """c[k, rows, cols] = epilogue(prologue(a[k, rows, :]) @ w[k] + bias[k]) for program
    (rows i, cols j, model k). Contiguous row-major: a [m, B, K] (fp32 h, or the element type);
    w [m, K, N]; bias [m, N]; gamma, beta [m, K] (LayerNorm affine; PRO_LAYERNORM only);
    c [m, B, N]. EPI_RESIDUAL adds c's own tile (fp32 h, updated in place: a program reads and
    writes only its own tile)."""
    model = tl.program_id(2).to(tl.int64)
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < B
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    col_mask = cols < N
    dt = w_ptr.dtype.element_ty
    a_base = a_ptr + model * B * K
    w_base = w_ptr + model * K * N

    if PROLOGUE == 1:
        # LayerNorm statistics of the program's rows (F.layer_norm: biased variance), two passes.
        total = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            a, ks, k_mask = _rows_at(a_base, rows, row_mask, K, k0, K, BLOCK_K)
            total += tl.sum(a.to(tl.float32), axis=1)
        mean = total / K
        sq = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            a, ks, k_mask = _rows_at(a_base, rows, row_mask, K, k0, K, BLOCK_K)
            d = tl.where(k_mask[None, :], a.to(tl.float32) - mean[:, None], 0.0)
            sq += tl.sum(d * d, axis=1)
        rstd = 1.0 / tl.sqrt(sq / K + ln_eps)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        a, ks, k_mask = _rows_at(a_base, rows, row_mask, K, k0, K, BLOCK_K)
        if PROLOGUE == 1:
            g = tl.load(gamma_ptr + model * K + ks, mask=k_mask, other=0.0).to(tl.float32)
            b = tl.load(beta_ptr + model * K + ks, mask=k_mask, other=0.0).to(tl.float32)
            a = (a.to(tl.float32) - mean[:, None]) * rstd[:, None] * g[None, :] + b[None, :]
        elif PROLOGUE == 2:
            a = tl.maximum(a.to(tl.float32), 0.0)
        acc = tl.dot(a.to(dt), _weight_tile(w_base, ks, k_mask, cols, col_mask, N), acc, input_precision=PRECISION)

    acc += tl.load(bias_ptr + model * N + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
    c = c_ptr + model * B * N + rows[:, None] * N + cols[None, :]
    c_mask = row_mask[:, None] & col_mask[None, :]
    if EPILOGUE == 1:
        acc = tl.maximum(acc, 0.0)
    elif EPILOGUE == 2:
        acc += tl.load(c, mask=c_mask, other=0.0).to(tl.float32)
    tl.store(c, acc.to(c_ptr.dtype.element_ty), mask=c_mask)


# ---------------------------------------------------------------------------------------------
# Block sizes (scripts/aot_compile.py measures every one for sm_90; see _aot_configs).
# ---------------------------------------------------------------------------------------------

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps) of the GEMMs, per element type, measured with
# scripts/aot_compile.py for sm_90 (3 stages). 16-bit: 16-row blocks (mma.sync) for small
# batches, where streaming weights from L2 bounds the time and more column blocks means more
# SMs pulling them; 64 x 128 blocks (wgmma) with 8 warps once the batch fills the machine (4
# warps spill 48-240 B, 128-row blocks 68-232 B in the up / down roles, so they are not
# offered). fp32 runs ieee dots on the FMA units: 16 and 64 rows x 64 columns, no spills.
GEMM_TILES = {
    "fp32": ((16, 64, 32, 4), (64, 64, 32, 4)),
    "fp16": ((16, 64, 64, 4), (64, 128, 64, 8)),
    "bf16": ((16, 64, 64, 4), (64, 128, 64, 8)),
}
# (BLOCK_M, BLOCK_N) of the stem (it also holds [BLOCK_M, 64] and [BLOCK_M, 32] side tiles and
# recomputes the time MLP per column block, so a taller row block saves nothing there): fp32
# 64-row stems spill ~0.3-3 KB, 16 rows do not.
STEM_TILES = {"fp32": ((16, 64),), "fp16": ((16, 64), (64, 128)), "bf16": ((16, 64), (64, 128))}
STEM_BLOCK_K = 16
STEM_WARPS = 8
NUM_STAGES = 3
# Streaming multiprocessors of an H100 SXM; only used when no CUDA device tells us.
DEFAULT_SM_COUNT = 132


def choose_tile(tiles, B: int, N: int, models: int, sm_count: int):
    """The largest tile (BLOCK_M, BLOCK_N, ...) no taller than the batch needs whose grid over
    [B, N] x models keeps at least half the SMs busy; the smallest when none does. Half, not
    all: a smaller tile re-reads every weight tile once per row block, e.g. the down GEMM of 3
    models at batch 512 moves 72 MB through L2 with 64 x 128 tiles (96 programs) but 240 MB
    with 16 x 64 tiles (768 programs)."""
    smallest = min(tiles, key=lambda t: t[0])
    for tile in sorted(tiles, key=lambda t: t[0], reverse=True):
        if tile[0] > max(pow2_at_least_16(B), smallest[0]):
            continue  # only padding rows: more rows per program buy nothing
        if 2 * triton.cdiv(B, tile[0]) * triton.cdiv(N, tile[1]) * models >= sm_count:
            return tile
    return smallest


def _precision(dtype: str) -> str:
    return "ieee" if dtype == "fp32" else "tf32"


def _gemm_signature(dtype: str, a_dtype: str, c_dtype: str) -> dict:
    ptr = f"*{dtype}"
    return {"a_ptr": f"*{a_dtype}", "w_ptr": ptr, "bias_ptr": ptr, "gamma_ptr": ptr, "beta_ptr": ptr,
            "c_ptr": f"*{c_dtype}", "B": "i32", "K": "i32", "N": "i32", "ln_eps": "fp32",
            "PROLOGUE": "constexpr", "EPILOGUE": "constexpr", "BLOCK_M": "constexpr", "BLOCK_N": "constexpr",
            "BLOCK_K": "constexpr", "PRECISION": "constexpr"}


def _stem_signature(dtype: str, t_dtype: str) -> dict:
    ptr = f"*{dtype}"
    return {"x_ptr": ptr, "t_ptr": f"*{t_dtype}", "cond_ptr": ptr, "freqs_ptr": f"*{t_dtype}",
            "wt1_ptr": ptr, "bt1_ptr": ptr, "wt2_ptr": ptr, "bt2_ptr": ptr, "we_ptr": ptr, "be_ptr": ptr,
            "wtr_ptr": ptr, "btr_ptr": ptr, "h_ptr": "*fp32", "B": "i32", "DX": "i32", "DC": "i32", "F": "i32",
            "H": "i32", "TIME": "constexpr", "EMBED": "constexpr", "BLOCK_M": "constexpr", "BLOCK_N": "constexpr",
            "BLOCK_K": "constexpr", "BLOCK_F": "constexpr", "PRECISION": "constexpr"}


# The three GEMM roles: (name, PROLOGUE, EPILOGUE, A is fp32 h, C is fp32 h).
ROLES = (("up", PRO_LAYERNORM, EPI_RELU, True, False), ("down", PRO_NONE, EPI_RESIDUAL, False, True),
         ("head", PRO_RELU, EPI_NONE, True, False))


def _aot_configs() -> tuple[list[dict], list[dict]]:
    """Every (role, tile) the launcher can pick for each element type, and the stem's tiles
    (t/freqs in float32, 16 frequencies). The head's BLOCK_N is the padded action width 16."""
    gemm, stem = [], []
    for dtype in ("fp32", "fp16", "bf16"):
        for bm, bn, bk, warps in GEMM_TILES[dtype]:
            for role, pro, epi, a_h, c_h in ROLES:
                block_n = 16 if role == "head" else bn
                gemm.append({
                    "name": f"{dtype} {role} BLOCK_M={bm} BLOCK_N={block_n} BLOCK_K={bk} warps={warps}",
                    "signature": _gemm_signature(dtype, "fp32" if a_h else dtype, "fp32" if c_h else dtype),
                    "constexprs": {"PROLOGUE": pro, "EPILOGUE": epi, "BLOCK_M": bm, "BLOCK_N": block_n,
                                   "BLOCK_K": bk, "PRECISION": _precision(dtype)},
                    "num_warps": warps, "num_stages": NUM_STAGES,
                })
        for bm, bn in STEM_TILES[dtype]:
            stem.append({
                "name": f"{dtype} stem BLOCK_M={bm} BLOCK_N={bn}",
                "signature": _stem_signature(dtype, "fp32"),
                "constexprs": {"TIME": 64, "EMBED": 32, "BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": STEM_BLOCK_K,
                               "BLOCK_F": 16, "PRECISION": _precision(dtype)},
                "num_warps": STEM_WARPS, "num_stages": NUM_STAGES,
            })
    return gemm, stem


_GEMM_CONFIGS, _STEM_CONFIGS = _aot_configs()
KERNELS = [("resnet_stem_kernel", resnet_stem_kernel, _STEM_CONFIGS),
           ("resnet_gemm_kernel", resnet_gemm_kernel, _GEMM_CONFIGS)]


def launch(x, t, cond, freqs, wt1, bt1, wt2, bt2, we, be, wtr, btr, ln_w, ln_b, w1, b1, w2, b2, wh, bh, out,
           ln_eps: float, h=None, u=None, tiles: dict | None = None, sm_count: int | None = None) -> None:
    """Launch the sequence on validated, contiguous tensors of one device (shapes: see
    scoredec/nets.py ResNetScoreNet.packed_weights; biases [m, 1, n] are views of [m, n]).
    ln_w .. b2 are per-block lists. h [m, B, H] float32 and u [m, B, 4H] (element type) are
    workspaces (allocated when None). tiles: {'stem': (BM, BN), 'gemm': (BM, BN, BK, warps)}
    to force block sizes (tests use large blocks under the interpreter)."""
    import torch

    m, B, dx = x.shape
    if m == 0 or B == 0:
        return
    dc, F, H = cond.shape[2], freqs.shape[0], wtr.shape[2]
    time, embed = wt2.shape[1], we.shape[2]
    dtype = DTYPE_NAME[str(x.dtype)]
    prec = _precision(dtype)
    tiles = tiles or {}
    if sm_count is None:
        sm_count = _sm_count(x.device) if x.device.type == "cuda" else DEFAULT_SM_COUNT
    if h is None:
        h = torch.empty((m, B, H), dtype=torch.float32, device=x.device)
    if u is None and w1:
        u = torch.empty((m, B, w1[0].shape[2]), dtype=x.dtype, device=x.device)

    bm, bn = tiles.get("stem") or choose_tile(STEM_TILES[dtype], B, H, m, sm_count)
    bn = min(bn, pow2_at_least_16(H))
    resnet_stem_kernel[(triton.cdiv(B, bm), triton.cdiv(H, bn), m)](
        x, t, cond, freqs, wt1, bt1, wt2, bt2, we, be, wtr, btr, h, B, dx, dc, F, H,
        TIME=time, EMBED=embed, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=STEM_BLOCK_K, BLOCK_F=pow2_at_least_16(F),
        PRECISION=prec, num_warps=STEM_WARPS, num_stages=NUM_STAGES)

    def gemm(a, w, bias, gamma, beta, c, pro, epi):
        K, N = w.shape[1], w.shape[2]
        bm, bn, bk, warps = tiles.get("gemm") or choose_tile(GEMM_TILES[dtype], B, N, m, sm_count)
        bn = min(bn, pow2_at_least_16(N))
        bk = min(bk, pow2_at_least_16(K))
        resnet_gemm_kernel[(triton.cdiv(B, bm), triton.cdiv(N, bn), m)](
            a, w, bias, gamma, beta, c, B, K, N, ln_eps, PROLOGUE=pro, EPILOGUE=epi,
            BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, PRECISION=prec, num_warps=warps, num_stages=NUM_STAGES)

    for blk in range(len(w1)):
        gemm(h, w1[blk], b1[blk], ln_w[blk], ln_b[blk], u, PRO_LAYERNORM, EPI_RELU)
        # gamma/beta are not read without the LayerNorm prologue: any valid pointer.
        gemm(u, w2[blk], b2[blk], b2[blk], b2[blk], h, PRO_NONE, EPI_RESIDUAL)
    gemm(h, wh, bh, bh, bh, out, PRO_RELU, EPI_NONE)
