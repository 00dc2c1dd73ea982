// CUDA kernel for scoredec.ops.score_eval_compact: the forward pass of all m stacked compact
// score networks (scoredec/nets.py CompactScoreNet) in one launch, one block per (row tile,
// model). The network, the Fourier features (sde.py fourier_features) and Mish (nets.mish) are
// those of the torch reference; tests/test_ops_score_compact.py checks parity against it.
//
// A block stages its kRows input rows [x, cond, sin(2 pi t f), cos(2 pi t f)] in shared memory
// (the concatenation exists only there), then runs layer after layer between two shared-memory
// activation buffers [kRows, W] in float32: the activations never leave the chip. Weights stream
// from global memory (L2: the whole stack of a width-256 net is ~0.5 MB in fp16) with coalesced
// loads; each weight element is read once per block and used for all kRows rows. Thread j owns
// output column j (and j + blockDim, ...) of all rows, kRows float32 accumulators in registers;
// narrow layers (the head, dx columns) give each thread one (row, column) pair instead.
// Arithmetic and accumulation are float32; 16-bit values are converted on load and rounded
// once, on the final store.
#include "score_compact.h"
#include "score_device.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace scoredec {
namespace {

using namespace device;

constexpr int kThreads = 256;
constexpr int kRows = 16;  // rows per block: accumulators per thread

// out[r, c] = act(sum_k in[r, k] w[k, c] + b[c]) for the block's kRows rows; in, out in shared
// memory with row strides K and N; w [K, N] and b [N] in global memory.
template <typename T, bool kMish>
__device__ void dense_columns(const float* in, int K, const T* __restrict__ w, const T* __restrict__ b,
                              float* out, int N) {
  for (int c = threadIdx.x; c < N; c += blockDim.x) {
    float acc[kRows];
    const float bias = to_float(b[c]);
#pragma unroll
    for (int r = 0; r < kRows; ++r) acc[r] = bias;
    for (int k = 0; k < K; ++k) {
      const float wk = to_float(w[static_cast<int64_t>(k) * N + c]);
#pragma unroll
      for (int r = 0; r < kRows; ++r) acc[r] = fmaf(in[r * K + k], wk, acc[r]);
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) out[r * N + c] = kMish ? mish(acc[r]) : acc[r];
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
score_compact_kernel(ScoreCompactParams p) {
  extern __shared__ float smem[];
  const int64_t model = blockIdx.y;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const int K0 = static_cast<int>(p.dx + p.dc + 2 * p.F);
  const int W = static_cast<int>(p.W);
  const int dx = static_cast<int>(p.dx);
  const int dc = static_cast<int>(p.dc);
  const int F = static_cast<int>(p.F);
  float* in_s = smem;                 // [kRows, K0]
  float* h_a = in_s + kRows * K0;     // [kRows, W]
  float* h_b = h_a + kRows * W;       // [kRows, W]

  // Stage the input rows; rows past B are zeros (computed on, never stored).
  const T* x = static_cast<const T*>(p.x) + model * p.B * p.dx;
  const T* cond = static_cast<const T*>(p.cond) + model * p.B * p.dc;
  for (int i = threadIdx.x; i < kRows * K0; i += blockDim.x) {
    const int r = i / K0;
    const int k = i - r * K0;
    const int64_t row = row0 + r;
    float v = 0.0f;
    if (row < p.B) {
      if (k < dx) {
        v = to_float(x[row * dx + k]);
      } else if (k < dx + dc) {
        v = to_float(cond[row * dc + (k - dx)]);
      } else {
        const int f = (k - dx - dc) % F;
        // sde.py fourier_features: same rounding order as the reference, (2 pi t) * f.
        const float proj = (kTwoPi * load_either<T>(p.t, model * p.B + row, p.t_is_f32)) *
                           load_either<T>(p.freqs, f, p.freqs_is_f32);
        v = (k - dx - dc < F) ? sinf(proj) : cosf(proj);
      }
    }
    in_s[i] = v;
  }
  __syncthreads();

  const int64_t WW = static_cast<int64_t>(W) * W;
  dense_columns<T, true>(in_s, K0, static_cast<const T*>(p.w0) + model * K0 * W,
                         static_cast<const T*>(p.b0) + model * W, h_a, W);
  __syncthreads();
  const T* wh = static_cast<const T*>(p.wh) + model * p.num_hidden * WW;
  const T* bh = static_cast<const T*>(p.bh) + model * p.num_hidden * W;
  for (int64_t l = 0; l < p.num_hidden; ++l) {
    dense_columns<T, true>(h_a, W, wh + l * WW, bh + l * W, h_b, W);
    __syncthreads();
    float* tmp = h_a;
    h_a = h_b;
    h_b = tmp;
  }

  // Head: dx columns only, so one (row, column) pair per thread.
  const T* wo = static_cast<const T*>(p.wo) + model * W * dx;
  const T* bo = static_cast<const T*>(p.bo) + model * dx;
  T* out = static_cast<T*>(p.out) + model * p.B * p.dx;
  for (int i = threadIdx.x; i < kRows * dx; i += blockDim.x) {
    const int r = i / dx;
    const int c = i - r * dx;
    const int64_t row = row0 + r;
    if (row >= p.B) continue;
    float acc = to_float(bo[c]);
    for (int k = 0; k < W; ++k) acc = fmaf(h_a[r * W + k], to_float(wo[static_cast<int64_t>(k) * dx + c]), acc);
    out[row * dx + c] = from_float<T>(acc);
  }
}

template <typename T>
const char* launch(const ScoreCompactParams& p, cudaStream_t stream) {
  if (p.m == 0 || p.B == 0) return nullptr;
  const int64_t shared = score_compact_shared_bytes(p);
  cudaError_t err = cudaFuncSetAttribute(score_compact_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(shared));
  if (err != cudaSuccess) return cudaGetErrorString(err);
  const dim3 grid(static_cast<unsigned>((p.B + kRows - 1) / kRows), static_cast<unsigned>(p.m));
  score_compact_kernel<T><<<grid, kThreads, shared, stream>>>(p);
  err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace

int64_t score_compact_shared_bytes(const ScoreCompactParams& p) {
  return static_cast<int64_t>(sizeof(float)) * kRows * (p.dx + p.dc + 2 * p.F + 2 * p.W);
}

const char* score_compact_cuda(const ScoreCompactParams& p, void* stream_handle) {
  auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (p.dtype) {
    case DType::kFloat32: return launch<float>(p, stream);
    case DType::kFloat16: return launch<__half>(p, stream);
    case DType::kBFloat16: return launch<__nv_bfloat16>(p, stream);
    default: return "score_compact_cuda: unknown dtype code";
  }
}

}  // namespace scoredec
