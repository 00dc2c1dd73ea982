"""Triton kernel for scoredec.ops.noise_and_embed: x_t = alpha_t a + sigma_t z and the Fourier
time features temb = [sin(2 pi t f), cos(2 pi t f)], in one pass over a block of rows.

The kernel receives the schedule's coefficients from scoredec/sde.py (log alpha_t = c2 t^2 + c1 t,
VPSDE.log_alpha_coefficients) and the frequencies; alpha = exp(log alpha), sigma =
sqrt(-expm1(2 log alpha)) as VPSDE.alpha_sigma. tests/test_ops_noise_embed.py checks parity
against a float64 reference. Arithmetic is float32.
"""

from __future__ import annotations

import triton
import triton.language as tl

TWO_PI = tl.constexpr(6.283185307179586)
# |x| below this uses the Taylor series of expm1 (remainder x^10/10! < 3e-10 relative at 0.5);
# above it exp(x) - 1 loses at most ~1.5e-7 relative. Triton has no expm1 that also runs
# under the interpreter, and sigma near t = 0 needs it (sde.py computes sigma with expm1).
EXPM1_SERIES_BOUND = tl.constexpr(0.5)


@triton.jit
def _expm1(x):
    # Horner form of x + x^2/2! + ... + x^9/9!.
    p = 1.0 / 362880.0
    p = p * x + 1.0 / 40320.0
    p = p * x + 1.0 / 5040.0
    p = p * x + 1.0 / 720.0
    p = p * x + 1.0 / 120.0
    p = p * x + 1.0 / 24.0
    p = p * x + 1.0 / 6.0
    p = p * x + 0.5
    p = p * x + 1.0
    series = p * x
    return tl.where(tl.abs(x) < EXPM1_SERIES_BOUND, series, tl.exp(x) - 1.0)


@triton.jit
def noise_embed_kernel(
    a_ptr, z_ptr, t_ptr, freqs_ptr, x_ptr, temb_ptr,
    B, d, F, la_t2, la_t1,
    BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_F: tl.constexpr,
):
    """One program per BLOCK_B rows. a, z, x: [B, d]; t: [B]; freqs: [F]; temb: [B, 2F].

    BLOCK_D >= d and BLOCK_F >= F are powers of two (tl.arange needs them); masks cut the pad.
    """
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_mask = rows < B
    t = tl.load(t_ptr + rows, mask=row_mask, other=0.0).to(tl.float32)

    # log alpha = la_t2 t^2 + la_t1 t (sde.py VPSDE.log_alpha_coefficients); sigma = sqrt(-expm1(2 log alpha)).
    # The explicit fma rounds as the closed form -0.25 t^2 (b1 - b0) - 0.5 t b0 compiled before
    # (LLVM fused its first product; -0.25 and -0.5 are powers of two): same bits on sm_90.
    log_alpha = tl.fma(t * t, la_t2, t * la_t1)
    alpha = tl.exp(log_alpha)
    sigma = tl.sqrt(-_expm1(2.0 * log_alpha))

    cols_d = tl.arange(0, BLOCK_D)
    mask_x = row_mask[:, None] & (cols_d < d)[None, :]
    offs_x = rows[:, None] * d + cols_d[None, :]
    a = tl.load(a_ptr + offs_x, mask=mask_x, other=0.0).to(tl.float32)
    z = tl.load(z_ptr + offs_x, mask=mask_x, other=0.0).to(tl.float32)
    x = alpha[:, None] * a + sigma[:, None] * z
    tl.store(x_ptr + offs_x, x.to(x_ptr.dtype.element_ty), mask=mask_x)

    # sde.py fourier_features: same rounding as the reference, (2 pi t) * f (the product commutes exactly).
    cols_f = tl.arange(0, BLOCK_F)
    f_mask = cols_f < F
    freqs = tl.load(freqs_ptr + cols_f, mask=f_mask, other=0.0).to(tl.float32)
    proj = (t * TWO_PI)[:, None] * freqs[None, :]
    mask_e = row_mask[:, None] & f_mask[None, :]
    offs_e = rows[:, None] * (2 * F) + cols_f[None, :]
    out_ty = temb_ptr.dtype.element_ty
    tl.store(temb_ptr + offs_e, tl.sin(proj).to(out_ty), mask=mask_e)
    tl.store(temb_ptr + offs_e + F, tl.cos(proj).to(out_ty), mask=mask_e)


# 32 rows x 16 frequencies over 4 warps: 48 registers, no spills, no shared memory on sm_90
# (128 rows: 168 registers; 64: 80 with spills; scripts/aot_compile.py reports these).
BLOCK_B = 32
NUM_WARPS = 4


def block_sizes(d: int, F: int) -> dict[str, int]:
    """The constexpr block sizes the launcher uses for a given d and F."""
    return {"BLOCK_B": BLOCK_B, "BLOCK_D": triton.next_power_of_2(d), "BLOCK_F": triton.next_power_of_2(F)}


def _aot_configs() -> list[dict]:
    """Configurations compiled ahead of time by scripts/aot_compile.py: every element dtype the
    op supports, the action widths of the tasks (1, 2, 6 -> BLOCK_D 1, 2, 8) and 16 frequencies."""
    configs = []
    for dtype in ("fp32", "fp16", "bf16"):
        for d in (1, 2, 6):
            sizes = block_sizes(d, 16)
            configs.append({
                "name": f"{dtype} d={d} F=16",
                "signature": {
                    "a_ptr": f"*{dtype}", "z_ptr": f"*{dtype}", "t_ptr": "*fp32", "freqs_ptr": "*fp32",
                    "x_ptr": f"*{dtype}", "temb_ptr": f"*{dtype}",
                    "B": "i32", "d": "i32", "F": "i32", "la_t2": "fp32", "la_t1": "fp32",
                    "BLOCK_B": "constexpr", "BLOCK_D": "constexpr", "BLOCK_F": "constexpr",
                },
                "constexprs": sizes,
                "num_warps": NUM_WARPS,
            })
    return configs


KERNELS = [("noise_embed_kernel", noise_embed_kernel, _aot_configs())]


def launch(a, z, t, freqs, x_t, temb, la_t2: float, la_t1: float) -> None:
    """Launch on already validated, contiguous tensors of one device (see scoredec/ops).
    la_t2, la_t1: log alpha_t = la_t2 t^2 + la_t1 t (sde.VPSDE.log_alpha_coefficients)."""
    B, d = a.shape
    F = freqs.shape[0]
    if B == 0:
        return
    sizes = block_sizes(d, F)
    grid = (triton.cdiv(B, sizes["BLOCK_B"]),)
    noise_embed_kernel[grid](a, z, t, freqs, x_t, temb, B, d, F, float(la_t2), float(la_t1),
                             num_warps=NUM_WARPS, **sizes)
