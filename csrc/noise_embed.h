// Fused VP-SDE noising + Fourier time features (scoredec.ops.noise_and_embed).
//
// Plain data only: no torch, no CUDA headers, so bindings.cpp compiles with the host compiler
// and the .cu file with nvcc. Pointers are raw device addresses handed over from Python.
#pragma once

#include <cstdint>

namespace scoredec {

// Element type of a, z, x_t and temb. t and freqs are always float32; arithmetic is float32.
enum class DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

struct NoiseEmbedParams {
  const void* a;       // [B, d] row-major, contiguous, dtype
  const void* z;       // [B, d] row-major, contiguous, dtype
  const float* t;      // [B]
  const float* freqs;  // [F]
  void* x_t;           // [B, d] out, dtype
  void* temb;          // [B, 2F] out, dtype: [sin | cos]
  int64_t B;
  int64_t d;
  int64_t F;
  float la_t2;  // log alpha_t = la_t2 t^2 + la_t1 t (scoredec/sde.py VPSDE.log_alpha_coefficients)
  float la_t1;
  DType dtype;
};

// Launches on `stream` (a cudaStream_t). Returns nullptr on success, else the CUDA error
// string of the launch (the caller raises).
const char* noise_embed_cuda(const NoiseEmbedParams& p, void* stream);

}  // namespace scoredec
