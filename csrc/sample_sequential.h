// Fused sequential sampler of m stacked compact score networks (scoredec.ops.sample_sequential).
//
// Plain data only: no torch, no CUDA headers, so bindings.cpp compiles with the host compiler
// and the .cu file with nvcc. Pointers are raw device addresses handed over from Python, in the
// packed layout of scoredec/ops/score_compact.py pack_weights (contiguous, row-major).
#pragma once

#include <cstdint>

#include "noise_embed.h"  // scoredec::DType

namespace scoredec {

struct SampleSequentialParams {
  const void* obs;     // [m, B, obs_w] dtype: model k's own part of its condition
  const void* x_T;     // [m, B, dx] dtype: initial noise
  const void* noise;   // [m, steps, B, dx] dtype step noise (ddim, eta > 0), or nullptr
  const float* coef;   // [steps, 8]: t, s1, u_x, u_e, c_x, c_e, c_2, pad (scoredec/ops/sampler.py)
  const float* freqs;  // [F]
  const void* w0;      // [m, dx + obs_w + (m-1) dx + 2F, W] dtype (in_mask applied)
  const void* b0;      // [m, W]
  const void* wh;      // [m, num_hidden, W, W]
  const void* bh;      // [m, num_hidden, W]
  const void* wo;      // [m, W, dx]
  const void* bo;      // [m, dx]
  void* out;           // [m, B, dx] dtype: clipped samples (also the later models' conditions)
  int64_t m;
  int64_t B;
  int64_t dx;
  int64_t obs_w;
  int64_t F;
  int64_t W;
  int64_t num_hidden;
  int64_t steps;
  int solver;          // 0 ddim, 1 dpm1, 2 dpm2
  float clip;
  DType dtype;
  int64_t cached_layers;  // hidden layers held in shared memory per model (set by the launcher)
};

// Rows per block for a batch of B rows: 16, 4 or 1.
int sample_sequential_rows(int64_t B);

// Dynamic shared memory of one block of `rows` rows with `cached_layers` hidden layers in
// shared memory.
int64_t sample_sequential_shared_bytes(const SampleSequentialParams& p, int64_t cached_layers, int rows);

// Launches on `stream` (a cudaStream_t): picks cached_layers (as many of the hidden [W, W]
// weights as fit next to the activations under max_shared_bytes), then one block per row tile.
// Returns nullptr on success, else the CUDA error string (the caller raises).
const char* sample_sequential_cuda(SampleSequentialParams p, int64_t max_shared_bytes, void* stream);

}  // namespace scoredec
