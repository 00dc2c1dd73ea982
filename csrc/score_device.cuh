// Device helpers of the score kernels (score_compact.cu, score_resnet.cu, sample_sequential.cu):
// element-type conversions, the mixed-precision time inputs, and nets.mish in float32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace scoredec {
namespace device {

constexpr float kTwoPi = 6.283185307179586f;
// nets.mish: for x > 20, mish(x) = x in float32; clamping keeps e^x (e^x + 2) finite.
constexpr float kMishClamp = 20.0f;

template <typename T> __device__ __forceinline__ float to_float(T v);
template <> __device__ __forceinline__ float to_float<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// v rounded to the element type T and back (identity for float).
template <typename T> __device__ __forceinline__ float round_to(float v) { return to_float(from_float<T>(v)); }

// t and freqs are float32 or the element type.
template <typename T>
__device__ __forceinline__ float load_either(const void* p, int64_t i, bool is_f32) {
  return is_f32 ? static_cast<const float*>(p)[i] : to_float(static_cast<const T*>(p)[i]);
}

__device__ __forceinline__ float mish(float x) {
  // nets.mish: x tanh(softplus(x)) = x w / (w + 2) with w = e^x (e^x + 2).
  const float n = expf(fminf(x, kMishClamp));
  const float w = n * (n + 2.0f);
  return x * (w / (w + 2.0f));
}

}  // namespace device
}  // namespace scoredec
