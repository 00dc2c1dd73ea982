// Fused forward of m stacked compact score networks (scoredec.ops.score_eval_compact).
//
// Plain data only: no torch, no CUDA headers, so bindings.cpp compiles with the host compiler
// and the .cu file with nvcc. Pointers are raw device addresses handed over from Python, in the
// packed layout of scoredec/ops/score_compact.py pack_weights (contiguous, row-major).
#pragma once

#include <cstdint>

#include "noise_embed.h"  // scoredec::DType

namespace scoredec {

struct ScoreCompactParams {
  const void* x;      // [m, B, dx] dtype
  const void* t;      // [m, B] float32 (t_is_f32) or dtype
  const void* cond;   // [m, B, dc] dtype
  const void* freqs;  // [F] float32 (freqs_is_f32) or dtype
  const void* w0;     // [m, dx + dc + 2F, W] dtype: effective first-layer weight (in_mask applied)
  const void* b0;     // [m, W]
  const void* wh;     // [m, num_hidden, W, W]
  const void* bh;     // [m, num_hidden, W]
  const void* wo;     // [m, W, dx]
  const void* bo;     // [m, dx]
  void* out;          // [m, B, dx] dtype
  int64_t m;
  int64_t B;
  int64_t dx;
  int64_t dc;
  int64_t F;
  int64_t W;
  int64_t num_hidden;
  DType dtype;
  bool t_is_f32;
  bool freqs_is_f32;
};

// Dynamic shared memory one block of the kernel needs, in bytes.
int64_t score_compact_shared_bytes(const ScoreCompactParams& p);

// Launches on `stream` (a cudaStream_t). Returns nullptr on success, else the CUDA error
// string (the caller raises).
const char* score_compact_cuda(const ScoreCompactParams& p, void* stream);

}  // namespace scoredec
