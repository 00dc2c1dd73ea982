// CUDA kernel for scoredec.ops.sample_sequential: the sequential ancestral sampler of m stacked
// compact score networks in one persistent launch. Block b owns rows [R b, R b + R) of the
// batch (R = 16, 4 or 1 by batch size) and walks the chain itself: model after model, solver
// step after step, so no block ever waits on another (model k's condition holds rows this
// block stored for models < k).
//
// On chip for a whole model's T steps: the sample x (float32, shared memory), the condition's
// share of the first layer c W_0[cond rows] + b_0 [R, W] (computed once per model), the
// activations (two [R, W] float32 buffers), and as many hidden [W, W] weights as fit in shared
// memory next to them (16-bit: one 256x256 layer of the production net; fp32: none at width
// 256), copied once per model and reused 2T times; the others stream from L2. The solver
// update is fused into the head: the thread that computes eps[r, c] updates x[r, c]. The time
// features of one step are shared by all rows, so their share of layer 0 is a per-column
// scalar. Coefficients come from the host table (scoredec/ops/sampler.py coefficient_table).
// Arithmetic and accumulation are float32; 16-bit values are converted on load and rounded on
// the final store (which later models then read, as the reference's conditions are rounded).
#include "sample_sequential.h"
#include "score_device.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace scoredec {
namespace {

using namespace device;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Rows per block: 16 at large batch (each weight read feeds 16 rows), fewer at small batch,
// where the chain's latency, not the weight traffic, bounds the time (choose_rows).
constexpr int kMaxRows = 16;
constexpr int kCoefCols = 8;

// out[r, c] = mish(sum_k in[r, k] w[k, c] + b[c]) for the block's R rows; in, out in shared
// memory (row strides K, N); w [K, N] in shared or global memory (generic addressing), b global.
// Thread c owns column c; S partial sums per row break the FMA dependency chain at small R.
template <typename T, int R>
__device__ void dense_mish(const float* in, int K, const T* w, const T* __restrict__ b, float* out, int N) {
  constexpr int S = R >= 4 ? 1 : 4 / R;
  for (int c = threadIdx.x; c < N; c += blockDim.x) {
    float acc[R][S];
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int q = 0; q < S; ++q) acc[r][q] = 0.0f;
    }
    int k = 0;
    for (; k + S <= K; k += S) {
#pragma unroll
      for (int q = 0; q < S; ++q) {
        const float wk = to_float(w[static_cast<int64_t>(k + q) * N + c]);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r][q] = fmaf(in[r * K + k + q], wk, acc[r][q]);
      }
    }
    for (; k < K; ++k) {
      const float wk = to_float(w[static_cast<int64_t>(k) * N + c]);
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r][0] = fmaf(in[r * K + k], wk, acc[r][0]);
    }
    const float bias = to_float(b[c]);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      float sum = bias;
#pragma unroll
      for (int q = 0; q < S; ++q) sum += acc[r][q];
      out[r * N + c] = mish(sum);
    }
  }
}

struct Smem {
  float* cpart;  // [R, W]
  float* h_a;    // [R, W]
  float* h_b;    // [R, W]
  float* cin;    // [R, DC] staged condition
  float* xs;     // [R, dx] the sample
  float* us;     // [R, dx] dpm2 midpoint
  float* e1;     // [R, dx] eps at (x, t) for dpm2
  float* feat;   // [2F]
};

// One network evaluation at (in [R, dx], t); the head's (r, c) pair goes to `update` (called by
// lane 0 of the warp that reduced it).
template <typename T, int R, typename Update>
__device__ void evaluate(const SampleSequentialParams& p, const Smem& s, const float* in, float t, const T* w0,
                         const T* b0, const T* const* hidden, const T* bh, const T* wo, const T* bo,
                         int64_t row0, Update update) {
  const int W = static_cast<int>(p.W), dx = static_cast<int>(p.dx), F = static_cast<int>(p.F);
  const int DC = static_cast<int>(p.obs_w + (p.m - 1) * p.dx);
  for (int f = threadIdx.x; f < 2 * F; f += blockDim.x) {
    // sde.py fourier_features: same rounding order as the reference, (2 pi t) * f.
    const float proj = (kTwoPi * t) * p.freqs[f < F ? f : f - F];
    s.feat[f] = f < F ? sinf(proj) : cosf(proj);
  }
  __syncthreads();
  for (int c = threadIdx.x; c < W; c += blockDim.x) {
    float fv = 0.0f;
    for (int f = 0; f < 2 * F; ++f) fv = fmaf(s.feat[f], to_float(w0[static_cast<int64_t>(dx + DC + f) * W + c]), fv);
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r] = s.cpart[r * W + c] + fv;
    for (int k = 0; k < dx; ++k) {
      const float wk = to_float(w0[static_cast<int64_t>(k) * W + c]);
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r] = fmaf(in[r * dx + k], wk, acc[r]);
    }
#pragma unroll
    for (int r = 0; r < R; ++r) s.h_a[r * W + c] = mish(acc[r]);
  }
  __syncthreads();
  float* h_in = s.h_a;
  float* h_out = s.h_b;
  for (int64_t l = 0; l < p.num_hidden; ++l) {
    dense_mish<T, R>(h_in, W, hidden[l], bh + l * W, h_out, W);
    __syncthreads();
    float* tmp = h_in;
    h_in = h_out;
    h_out = tmp;
  }
  // Head: one warp per (row, column) pair, the lanes split the width and reduce by shuffles.
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int i = warp; i < R * dx; i += kWarps) {
    const int r = i / dx;
    const int c = i - r * dx;
    float acc = 0.0f;
    for (int k = lane; k < W; k += 32) acc = fmaf(h_in[r * W + k], to_float(wo[static_cast<int64_t>(k) * dx + c]), acc);
#pragma unroll
    for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) update(r, c, i, row0 + r, acc + to_float(bo[c]));
  }
  __syncthreads();
}

template <typename T, int R>
__global__ void __launch_bounds__(kThreads)
sample_sequential_kernel(SampleSequentialParams p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * R;
  const int W = static_cast<int>(p.W), dx = static_cast<int>(p.dx), F = static_cast<int>(p.F);
  const int DO = static_cast<int>(p.obs_w);
  const int DC = static_cast<int>(p.obs_w + (p.m - 1) * p.dx);
  const int64_t K0 = dx + DC + 2 * F;
  const int64_t WW = static_cast<int64_t>(W) * W;

  // Layout: cached weights first (16-byte aligned), then the float32 buffers.
  T* wcache = reinterpret_cast<T*>(smem_raw);
  float* fbase = reinterpret_cast<float*>(smem_raw + ((p.cached_layers * WW * sizeof(T) + 15) / 16) * 16);
  Smem s;
  s.cpart = fbase;
  s.h_a = s.cpart + R * W;
  s.h_b = s.h_a + R * W;
  s.cin = s.h_b + R * W;
  s.xs = s.cin + R * DC;
  s.us = s.xs + R * dx;
  s.e1 = s.us + R * dx;
  s.feat = s.e1 + R * dx;

  const T* obs_all = static_cast<const T*>(p.obs);
  const T* xT_all = static_cast<const T*>(p.x_T);
  const T* noise_all = static_cast<const T*>(p.noise);
  T* out_all = static_cast<T*>(p.out);
  constexpr int kMaxHidden = 16;
  const T* hidden[kMaxHidden];

  for (int64_t k = 0; k < p.m; ++k) {
    const T* w0 = static_cast<const T*>(p.w0) + k * K0 * W;
    const T* b0 = static_cast<const T*>(p.b0) + k * W;
    const T* wh = static_cast<const T*>(p.wh) + k * p.num_hidden * WW;
    const T* bh = static_cast<const T*>(p.bh) + k * p.num_hidden * W;
    const T* wo = static_cast<const T*>(p.wo) + k * W * dx;
    const T* bo = static_cast<const T*>(p.bo) + k * dx;

    // Stage [obs_k, clip(x_0), ..., clip(x_{k-1}), 0, ...] and x_T; rows past B are zeros.
    for (int i = threadIdx.x; i < R * DC; i += blockDim.x) {
      const int r = i / DC;
      const int c = i - r * DC;
      const int64_t row = row0 + r;
      float v = 0.0f;
      if (row < p.B) {
        if (c < DO) {
          v = to_float(obs_all[(k * p.B + row) * DO + c]);
        } else {
          const int64_t j = (c - DO) / dx;
          if (j < k) v = to_float(out_all[(j * p.B + row) * dx + (c - DO - j * dx)]);
        }
      }
      s.cin[i] = v;
    }
    for (int i = threadIdx.x; i < R * dx; i += blockDim.x) {
      const int64_t row = row0 + i / dx;
      s.xs[i] = row < p.B ? to_float(xT_all[(k * p.B + row) * dx + i % dx]) : 0.0f;
    }
    // Hidden weights that fit stay in shared memory for all of this model's evaluations.
    for (int64_t l = 0; l < p.num_hidden && l < kMaxHidden; ++l) hidden[l] = wh + l * WW;
    for (int64_t i = threadIdx.x; i < p.cached_layers * WW; i += blockDim.x) wcache[i] = wh[i];
    for (int64_t l = 0; l < p.cached_layers; ++l) hidden[l] = wcache + l * WW;
    __syncthreads();
    // The condition's share of layer 0 (rows dx .. dx + DC of w0) plus the bias.
    for (int c = threadIdx.x; c < W; c += blockDim.x) {
      float acc[R];
      const float bias = to_float(b0[c]);
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r] = bias;
      for (int q = 0; q < DC; ++q) {
        const float wq = to_float(w0[static_cast<int64_t>(dx + q) * W + c]);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r] = fmaf(s.cin[r * DC + q], wq, acc[r]);
      }
#pragma unroll
      for (int r = 0; r < R; ++r) s.cpart[r * W + c] = acc[r];
    }
    __syncthreads();

    for (int64_t i = 0; i < p.steps; ++i) {
      const float* cf = p.coef + i * kCoefCols;
      const float t = cf[0], s1 = cf[1], u_x = cf[2], u_e = cf[3], c_x = cf[4], c_e = cf[5], c_2 = cf[6];
      if (p.solver == 2) {
        evaluate<T, R>(p, s, s.xs, t, w0, b0, hidden, bh, wo, bo, row0,
                    [&](int r, int c, int idx, int64_t row, float eps) {
                      s.e1[idx] = eps;
                      s.us[idx] = u_x * s.xs[idx] + u_e * eps;
                    });
        evaluate<T, R>(p, s, s.us, s1, w0, b0, hidden, bh, wo, bo, row0,
                    [&](int r, int c, int idx, int64_t row, float eps) {
                      s.xs[idx] = c_x * s.xs[idx] + c_e * s.e1[idx] + c_2 * eps;
                    });
      } else {
        evaluate<T, R>(p, s, s.xs, t, w0, b0, hidden, bh, wo, bo, row0,
                    [&](int r, int c, int idx, int64_t row, float eps) {
                      float z = 0.0f;
                      if (noise_all != nullptr && row < p.B) {
                        z = to_float(noise_all[((k * p.steps + i) * p.B + row) * dx + c]);
                      }
                      s.xs[idx] = c_x * s.xs[idx] + c_e * eps + c_2 * z;
                    });
      }
    }
    for (int i = threadIdx.x; i < R * dx; i += blockDim.x) {
      const int64_t row = row0 + i / dx;
      if (row < p.B) {
        const float v = fminf(fmaxf(s.xs[i], -p.clip), p.clip);
        out_all[(k * p.B + row) * dx + i % dx] = from_float<T>(v);
      }
    }
    // Later models read these rows back; the next model's staging also reuses the buffers.
    __syncthreads();
  }
}

template <typename T, int R>
const char* launch_rows(SampleSequentialParams p, int64_t max_shared, cudaStream_t stream) {
  int device = 0;
  int optin = 0;
  cudaError_t err = cudaGetDevice(&device);
  if (err == cudaSuccess) err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (err != cudaSuccess) return cudaGetErrorString(err);
  if (optin < max_shared) max_shared = optin;
  int64_t cached = 0;
  while (cached < p.num_hidden && sample_sequential_shared_bytes(p, cached + 1, R) <= max_shared) ++cached;
  p.cached_layers = cached;
  const int64_t shared = sample_sequential_shared_bytes(p, cached, R);
  if (shared > max_shared) return "sample_sequential_cuda: activations exceed the shared memory of one block";
  err = cudaFuncSetAttribute(sample_sequential_kernel<T, R>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(shared));
  if (err != cudaSuccess) return cudaGetErrorString(err);
  const dim3 grid(static_cast<unsigned>((p.B + R - 1) / R));
  sample_sequential_kernel<T, R><<<grid, kThreads, shared, stream>>>(p);
  err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

template <typename T>
const char* launch(SampleSequentialParams p, int64_t max_shared, cudaStream_t stream) {
  if (p.m == 0 || p.B == 0) return nullptr;
  if (p.num_hidden > 16) return "sample_sequential_cuda: at most 16 hidden layers";
  switch (sample_sequential_rows(p.B)) {
    case 1: return launch_rows<T, 1>(p, max_shared, stream);
    case 4: return launch_rows<T, 4>(p, max_shared, stream);
    default: return launch_rows<T, kMaxRows>(p, max_shared, stream);
  }
}

}  // namespace

int sample_sequential_rows(int64_t B) {
  // Blocks of 16 rows once they fill ~132 SMs; below that more, smaller blocks shorten the chain.
  if (B >= 16 * 128) return kMaxRows;
  if (B >= 4 * 128) return 4;
  return B >= 64 ? 4 : 1;
}

int64_t sample_sequential_shared_bytes(const SampleSequentialParams& p, int64_t cached_layers, int rows) {
  const int64_t elem = p.dtype == DType::kFloat32 ? 4 : 2;
  const int64_t weights = ((cached_layers * p.W * p.W * elem + 15) / 16) * 16;
  const int64_t dc = p.obs_w + (p.m - 1) * p.dx;
  const int64_t floats = rows * (3 * p.W + dc + 3 * p.dx) + 2 * p.F;
  return weights + 4 * floats;
}

const char* sample_sequential_cuda(SampleSequentialParams p, int64_t max_shared_bytes, void* stream_handle) {
  auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (p.dtype) {
    case DType::kFloat32: return launch<float>(p, max_shared_bytes, stream);
    case DType::kFloat16: return launch<__half>(p, max_shared_bytes, stream);
    case DType::kBFloat16: return launch<__nv_bfloat16>(p, max_shared_bytes, stream);
    default: return "sample_sequential_cuda: unknown dtype code";
  }
}

}  // namespace scoredec
