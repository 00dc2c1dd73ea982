// Forward of m stacked resnet score networks (scoredec.ops.score_eval_resnet) as a sequence of
// launches: one stem (time MLP + input embedding + trunk input layer), then per residual block
// an "up" and a "down" grouped GEMM, then the "head" GEMM (see scoredec/ops/score_resnet.py).
//
// Plain data only: no torch, no CUDA headers, so bindings.cpp compiles with the host compiler
// and the .cu file with nvcc. Pointers are raw device addresses handed over from Python, in the
// packed layout of scoredec/ops/score_resnet.py pack_weights (contiguous, row-major).
#pragma once

#include <cstdint>

#include "noise_embed.h"  // scoredec::DType

namespace scoredec {

struct ScoreResnetStemParams {
  const void* x;      // [m, B, dx] dtype
  const void* t;      // [m, B] float32 (t_is_f32) or dtype
  const void* cond;   // [m, B, dc] dtype
  const void* freqs;  // [F] float32 (freqs_is_f32) or dtype
  const void* wt1;    // [m, 2F, T] dtype: time MLP layer 1
  const void* bt1;    // [m, T]
  const void* wt2;    // [m, T, T]: time MLP layer 2
  const void* bt2;    // [m, T]
  const void* we;     // [m, dx + dc, E]: input embedding (in_mask applied)
  const void* be;     // [m, E]
  const void* wtr;    // [m, T + E, H]: trunk input layer on [temb, embedding]
  const void* btr;    // [m, H]
  float* h;           // [m, B, H] float32 out: the residual stream
  int64_t m;
  int64_t B;
  int64_t dx;
  int64_t dc;
  int64_t F;
  int64_t T;
  int64_t E;
  int64_t H;
  DType dtype;
  bool t_is_f32;
  bool freqs_is_f32;
};

// The three GEMM roles of the sequence:
//   kUp:   c (dtype)   = relu(LayerNorm(a) w + bias),  a = h float32, gamma/beta the LN affine
//   kDown: c (float32) += a w + bias,                  a = u dtype, c = h updated in place
//   kHead: c (dtype)   = relu(a) w + bias,             a = h float32
enum class ResnetGemmRole : int { kUp = 0, kDown = 1, kHead = 2 };

struct ScoreResnetGemmParams {
  const void* a;      // [m, B, K]
  const void* w;      // [m, K, N] dtype
  const void* bias;   // [m, N] dtype
  const void* gamma;  // [m, K] dtype (kUp only)
  const void* beta;   // [m, K] dtype (kUp only)
  void* c;            // [m, B, N]
  int64_t m;
  int64_t B;
  int64_t K;
  int64_t N;
  float ln_eps;
  ResnetGemmRole role;
  DType dtype;
};

// Dynamic shared memory one stem block needs, in bytes.
int64_t score_resnet_stem_shared_bytes(const ScoreResnetStemParams& p);

// Launch on `stream` (a cudaStream_t). Return nullptr on success, else the CUDA error string
// (the caller raises).
const char* score_resnet_stem_cuda(const ScoreResnetStemParams& p, void* stream);
const char* score_resnet_gemm_cuda(const ScoreResnetGemmParams& p, void* stream);

}  // namespace scoredec
