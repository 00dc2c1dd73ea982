// CUDA kernels for scoredec.ops.score_eval_resnet: the forward pass of all m stacked resnet
// score networks (scoredec/nets.py ResNetScoreNet, eval mode) as a sequence of launches, every
// launch over all models (grid z). tests/test_ops_score_resnet.py checks parity on a GPU.
//
// stem: one block per (kStemRows rows, model). The block stages its rows' inputs [x, cond] and
//   Fourier features in shared memory, runs the time MLP and the input embedding there (the
//   concatenations exist only in shared memory) and writes the trunk input layer's output h
//   (float32) to global memory: thread j owns output column j (+ blockDim, ...) of all rows.
// gemm: a grouped GEMM, one block per (kBM x kBN output tile, model), with the role's prologue
//   applied while the A tile is staged in shared memory (LayerNorm: each warp first computes the
//   mean and centred variance of 8 of the block's rows, two passes; ReLU) and its epilogue
//   applied on the accumulators (bias, ReLU, or the residual add into h in place: each output
//   element is read and written by one thread only). 16-bit element types run on the tensor
//   cores (WMMA 16 x 16 x 16, float32 accumulators); float32 runs a SIMT GEMM on the FMA units,
//   4 x 4 outputs per thread (torch's default fp32 matmul uses no TF32 either).
// Accumulation is float32. Operands are rounded to the element type where the torch reference
// holds them in it (Fourier features, the time MLP and embedding outputs, the LayerNorm / ReLU
// outputs fed to a GEMM); h stays float32; outputs are rounded once. Simple tiles without
// asynchronous copies or TMA: the triton backend (wgmma, pipelined loads) is the tuned one.
#include "score_resnet.h"
#include "score_device.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <type_traits>

namespace scoredec {
namespace {

using namespace device;

constexpr int kStemThreads = 256;
constexpr int kStemRows = 16;
constexpr int kBM = 64;
constexpr int kBN = 64;
constexpr int kBK = 16;
constexpr int kThreads = 256;       // 16 x 16 threads, 4 x 4 outputs each
constexpr int kTM = kBM / 16;       // 4: one float4 of a row-contiguous A slice per k
constexpr int kTN = kBN / 16;       // 4: one float4 of W per k
static_assert(kTM == 4 && kTN == 4, "the inner loop reads A and W as float4");

// out[r * ld_out + c] = round_to<T>(act(sum_k in[r * K + k] w[k * N + c] + b[c])) for the
// block's kStemRows rows; in, out in shared memory.
template <typename T, bool kRelu>
__device__ void stem_dense(const float* in, int K, const T* __restrict__ w, const T* __restrict__ b, int N,
                           float* out, int ld_out) {
  for (int c = threadIdx.x; c < N; c += blockDim.x) {
    float acc[kStemRows];
    const float bias = to_float(b[c]);
#pragma unroll
    for (int r = 0; r < kStemRows; ++r) acc[r] = bias;
    for (int k = 0; k < K; ++k) {
      const float wk = to_float(w[static_cast<int64_t>(k) * N + c]);
#pragma unroll
      for (int r = 0; r < kStemRows; ++r) acc[r] = fmaf(in[r * K + k], wk, acc[r]);
    }
#pragma unroll
    for (int r = 0; r < kStemRows; ++r) out[r * ld_out + c] = round_to<T>(kRelu ? fmaxf(acc[r], 0.0f) : acc[r]);
  }
}

template <typename T>
__global__ void __launch_bounds__(kStemThreads) score_resnet_stem_kernel(ScoreResnetStemParams p) {
  extern __shared__ float smem[];
  const int64_t model = blockIdx.y;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kStemRows;
  const int dx = static_cast<int>(p.dx), dc = static_cast<int>(p.dc), F = static_cast<int>(p.F);
  const int T_ = static_cast<int>(p.T), E = static_cast<int>(p.E), H = static_cast<int>(p.H);
  const int DI = dx + dc;
  float* in_s = smem;                       // [kStemRows, dx + dc]
  float* four_s = in_s + kStemRows * DI;    // [kStemRows, 2F]
  float* a1_s = four_s + kStemRows * 2 * F; // [kStemRows, T]
  float* z_s = a1_s + kStemRows * T_;       // [kStemRows, T + E]: [temb, embedding]

  const T* x = static_cast<const T*>(p.x) + model * p.B * p.dx;
  const T* cond = static_cast<const T*>(p.cond) + model * p.B * p.dc;
  for (int i = threadIdx.x; i < kStemRows * DI; i += blockDim.x) {
    const int r = i / DI, k = i - r * DI;
    const int64_t row = row0 + r;
    float v = 0.0f;
    if (row < p.B) v = k < dx ? to_float(x[row * dx + k]) : to_float(cond[row * dc + (k - dx)]);
    in_s[i] = v;
  }
  for (int i = threadIdx.x; i < kStemRows * 2 * F; i += blockDim.x) {
    const int r = i / (2 * F), k = i - r * 2 * F;
    const int64_t row = row0 + r;
    float v = 0.0f;
    if (row < p.B) {
      // sde.py fourier_features: same rounding order as the reference, (2 pi t) * f.
      const float proj = (kTwoPi * load_either<T>(p.t, model * p.B + row, p.t_is_f32)) *
                         load_either<T>(p.freqs, k % F, p.freqs_is_f32);
      v = round_to<T>(k < F ? sinf(proj) : cosf(proj));
    }
    four_s[i] = v;
  }
  __syncthreads();

  stem_dense<T, true>(four_s, 2 * F, static_cast<const T*>(p.wt1) + model * 2 * F * T_,
                      static_cast<const T*>(p.bt1) + model * T_, T_, a1_s, T_);
  stem_dense<T, false>(in_s, DI, static_cast<const T*>(p.we) + model * DI * E,
                       static_cast<const T*>(p.be) + model * E, E, z_s + T_, T_ + E);
  __syncthreads();
  stem_dense<T, false>(a1_s, T_, static_cast<const T*>(p.wt2) + model * T_ * T_,
                       static_cast<const T*>(p.bt2) + model * T_, T_, z_s, T_ + E);
  __syncthreads();

  // Trunk input layer straight to global memory (rows past B are not stored).
  const int K = T_ + E;
  const T* wtr = static_cast<const T*>(p.wtr) + model * K * H;
  const T* btr = static_cast<const T*>(p.btr) + model * H;
  float* h = p.h + model * p.B * p.H;
  for (int c = threadIdx.x; c < H; c += blockDim.x) {
    float acc[kStemRows];
    const float bias = to_float(btr[c]);
#pragma unroll
    for (int r = 0; r < kStemRows; ++r) acc[r] = bias;
    for (int k = 0; k < K; ++k) {
      const float wk = to_float(wtr[static_cast<int64_t>(k) * H + c]);
#pragma unroll
      for (int r = 0; r < kStemRows; ++r) acc[r] = fmaf(z_s[r * K + k], wk, acc[r]);
    }
#pragma unroll
    for (int r = 0; r < kStemRows; ++r) {
      if (row0 + r < p.B) h[(row0 + r) * p.H + c] = acc[r];
    }
  }
}

// Prologue / epilogue of each role (csrc/score_resnet.h ResnetGemmRole).
template <ResnetGemmRole kRole> constexpr bool kLayerNormIn = kRole == ResnetGemmRole::kUp;
template <ResnetGemmRole kRole> constexpr bool kReluIn = kRole == ResnetGemmRole::kHead;
template <ResnetGemmRole kRole> constexpr bool kReluOut = kRole == ResnetGemmRole::kUp;
template <ResnetGemmRole kRole> constexpr bool kResidualOut = kRole == ResnetGemmRole::kDown;

// F.layer_norm statistics (biased variance) of rows row0 .. row0 + kBM - 1 of a [B, K]: warp
// `warp` takes rows warp, warp + 8, ...; two passes (mean, then the centred sum of squares).
// Rows past B get mean 0, rstd 0. Ends with __syncthreads().
template <typename TA>
__device__ void layernorm_stats(const TA* a, int64_t row0, int64_t B, int64_t K, float eps, float* mean_s,
                                float* rstd_s) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int r = warp; r < kBM; r += kThreads / 32) {
    const int64_t row = row0 + r;
    float mean = 0.0f, rstd = 0.0f;
    if (row < B) {  // warp-uniform: the shuffles below see all 32 lanes
      const TA* ar = a + row * K;
      float s = 0.0f;
      for (int64_t k = lane; k < K; k += 32) s += to_float(ar[k]);
      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      mean = s / static_cast<float>(K);
      float q = 0.0f;
      for (int64_t k = lane; k < K; k += 32) {
        const float d = to_float(ar[k]) - mean;
        q = fmaf(d, d, q);
      }
      for (int o = 16; o > 0; o >>= 1) q += __shfl_xor_sync(0xffffffffu, q, o);
      rstd = 1.0f / sqrtf(q / static_cast<float>(K) + eps);
    }
    if (lane == 0) {
      mean_s[r] = mean;
      rstd_s[r] = rstd;
    }
  }
  __syncthreads();
}

// Element (row0 + r, k) of the A operand after the role's prologue, rounded to T as the GEMM
// operand (0 outside [B, K]).
template <typename T, typename TA, ResnetGemmRole kRole>
__device__ __forceinline__ float a_operand(const TA* a, const T* gamma, const T* beta, const float* mean_s,
                                           const float* rstd_s, int r, int64_t row, int64_t k, int64_t B,
                                           int64_t K) {
  if (row >= B || k >= K) return 0.0f;
  float v = to_float(a[row * K + k]);
  if constexpr (kLayerNormIn<kRole>) {
    v = round_to<T>((v - mean_s[r]) * rstd_s[r] * to_float(gamma[k]) + to_float(beta[k]));
  } else if constexpr (kReluIn<kRole>) {
    v = round_to<T>(fmaxf(v, 0.0f));
  }
  return v;
}

// c[row, col] = epilogue(acc + bias[col]) for an in-bounds (row, col).
template <typename T, typename TC, ResnetGemmRole kRole>
__device__ __forceinline__ void store_output(TC* c, const T* bias, int64_t row, int64_t col, int64_t N, float acc) {
  float v = acc + to_float(bias[col]);
  if constexpr (kReluOut<kRole>) v = fmaxf(v, 0.0f);
  if constexpr (kResidualOut<kRole>) v += to_float(c[row * N + col]);  // c is h: read, then written, by this thread only
  c[row * N + col] = from_float<TC>(v);
}

// float32: SIMT GEMM on the FMA units (torch's default fp32 matmul uses no TF32 either).
// TA, TC: element types of a and c (float32 for h, T otherwise).
template <typename T, typename TA, typename TC, ResnetGemmRole kRole>
__global__ void __launch_bounds__(kThreads, 2) score_resnet_gemm_kernel(ScoreResnetGemmParams p) {
  // A tile k-major (row stride kBM + 4: fewer bank conflicts on the transposing store, and still
  // a multiple of 16 B so the float4 reads stay aligned); W tile as in memory.
  __shared__ __align__(16) float a_s[kBK][kBM + 4];
  __shared__ __align__(16) float w_s[kBK][kBN];
  __shared__ float mean_s[kBM];
  __shared__ float rstd_s[kBM];

  const int64_t model = blockIdx.z;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kBM;
  const int64_t col0 = static_cast<int64_t>(blockIdx.y) * kBN;
  const int64_t B = p.B, K = p.K, N = p.N;
  const TA* a = static_cast<const TA*>(p.a) + model * B * K;
  const T* w = static_cast<const T*>(p.w) + model * K * N;
  const T* gamma = static_cast<const T*>(p.gamma) + model * K;
  const T* beta = static_cast<const T*>(p.beta) + model * K;
  const int tid = threadIdx.x;
  const int tx = tid % 16, ty = tid / 16;
  if constexpr (kLayerNormIn<kRole>) layernorm_stats(a, row0, B, K, p.ln_eps, mean_s, rstd_s);

  float acc[kTM][kTN];
#pragma unroll
  for (int i = 0; i < kTM; ++i)
#pragma unroll
    for (int j = 0; j < kTN; ++j) acc[i][j] = 0.0f;

  for (int64_t k0 = 0; k0 < K; k0 += kBK) {
    for (int e = tid; e < kBM * kBK; e += kThreads) {
      const int r = e / kBK, kk = e % kBK;
      a_s[kk][r] = a_operand<T, TA, kRole>(a, gamma, beta, mean_s, rstd_s, r, row0 + r, k0 + kk, B, K);
    }
    for (int e = tid; e < kBK * kBN; e += kThreads) {
      const int kk = e / kBN, c = e % kBN;
      const int64_t k = k0 + kk, col = col0 + c;
      w_s[kk][c] = (k < K && col < N) ? to_float(w[k * N + col]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      // Thread (ty, tx) owns rows 4 ty .. 4 ty + 3 and columns 4 tx .. 4 tx + 3.
      const float4 a4 = *reinterpret_cast<const float4*>(&a_s[kk][kTM * ty]);
      const float4 w4 = *reinterpret_cast<const float4*>(&w_s[kk][kTN * tx]);
      const float av[kTM] = {a4.x, a4.y, a4.z, a4.w};
      const float wv[kTN] = {w4.x, w4.y, w4.z, w4.w};
#pragma unroll
      for (int i = 0; i < kTM; ++i)
#pragma unroll
        for (int j = 0; j < kTN; ++j) acc[i][j] = fmaf(av[i], wv[j], acc[i][j]);
    }
    __syncthreads();
  }

  const T* bias = static_cast<const T*>(p.bias) + model * N;
  TC* c = static_cast<TC*>(p.c) + model * B * N;
#pragma unroll
  for (int i = 0; i < kTM; ++i) {
    const int64_t row = row0 + kTM * ty + i;
    if (row >= B) continue;
#pragma unroll
    for (int j = 0; j < kTN; ++j) {
      const int64_t col = col0 + kTN * tx + j;
      if (col < N) store_output<T, TC, kRole>(c, bias, row, col, N, acc[i][j]);
    }
  }
}

// 16-bit: tensor cores through WMMA (16 x 16 x 16 fragments, float32 accumulators). The block
// stages kBM x kWK of A (prologue applied) and kWK x kBN of W in shared memory as T; warp w
// computes rows 16 (w % 4) .. + 15 and columns 32 (w / 4) .. + 31 (two accumulator fragments);
// the accumulators go through shared memory (c_s) so the epilogue can address single elements.
// Leading dimensions keep every fragment pointer 32-byte aligned (WMMA's requirement) and are
// padded off multiples of 128 B against bank conflicts.
constexpr int kWK = 32;
constexpr int kALd = kWK + 8;   // T elements: 80 B rows
constexpr int kWLd = kBN + 8;   // T elements: 144 B rows
constexpr int kCLd = kBN + 4;   // floats: 272 B rows
static_assert(kBM == 4 * 16 && kBN == 2 * 32 && kThreads == 8 * 32, "8 warps as 4 x 2 warp tiles of 16 x 32");

template <typename T, typename TA, typename TC, ResnetGemmRole kRole>
__global__ void __launch_bounds__(kThreads, 2) score_resnet_gemm_wmma_kernel(ScoreResnetGemmParams p) {
  namespace wmma = nvcuda::wmma;
  __shared__ __align__(32) T a_s[kBM * kALd];
  __shared__ __align__(32) T w_s[kWK * kWLd];
  __shared__ __align__(32) float c_s[kBM * kCLd];
  __shared__ float mean_s[kBM];
  __shared__ float rstd_s[kBM];

  const int64_t model = blockIdx.z;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kBM;
  const int64_t col0 = static_cast<int64_t>(blockIdx.y) * kBN;
  const int64_t B = p.B, K = p.K, N = p.N;
  const TA* a = static_cast<const TA*>(p.a) + model * B * K;
  const T* w = static_cast<const T*>(p.w) + model * K * N;
  const T* gamma = static_cast<const T*>(p.gamma) + model * K;
  const T* beta = static_cast<const T*>(p.beta) + model * K;
  const int tid = threadIdx.x;
  const int warp = tid / 32;
  const int warp_m = warp % 4, warp_n = warp / 4;
  if constexpr (kLayerNormIn<kRole>) layernorm_stats(a, row0, B, K, p.ln_eps, mean_s, rstd_s);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2];
  wmma::fill_fragment(acc[0], 0.0f);
  wmma::fill_fragment(acc[1], 0.0f);
  const T zero = from_float<T>(0.0f);

  for (int64_t k0 = 0; k0 < K; k0 += kWK) {
    for (int e = tid; e < kBM * kWK; e += kThreads) {
      const int r = e / kWK, kk = e % kWK;
      a_s[r * kALd + kk] = from_float<T>(a_operand<T, TA, kRole>(a, gamma, beta, mean_s, rstd_s, r, row0 + r,
                                                                 k0 + kk, B, K));
    }
    for (int e = tid; e < kWK * kBN; e += kThreads) {
      const int kk = e / kBN, c = e % kBN;
      const int64_t k = k0 + kk, col = col0 + c;
      w_s[kk * kWLd + c] = (k < K && col < N) ? w[k * N + col] : zero;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kWK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a_frag;
      wmma::load_matrix_sync(a_frag, a_s + warp_m * 16 * kALd + kk, kALd);
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b_frag;
        wmma::load_matrix_sync(b_frag, w_s + kk * kWLd + warp_n * 32 + j * 16, kWLd);
        wmma::mma_sync(acc[j], a_frag, b_frag, acc[j]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    wmma::store_matrix_sync(c_s + warp_m * 16 * kCLd + warp_n * 32 + j * 16, acc[j], kCLd, wmma::mem_row_major);
  }
  __syncthreads();

  const T* bias = static_cast<const T*>(p.bias) + model * N;
  TC* c = static_cast<TC*>(p.c) + model * B * N;
  for (int e = tid; e < kBM * kBN; e += kThreads) {
    const int r = e / kBN, cc = e % kBN;
    const int64_t row = row0 + r, col = col0 + cc;
    if (row < B && col < N) store_output<T, TC, kRole>(c, bias, row, col, N, c_s[r * kCLd + cc]);
  }
}

const char* last_error() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

template <typename T>
const char* launch_stem(const ScoreResnetStemParams& p, cudaStream_t stream) {
  if (p.m == 0 || p.B == 0) return nullptr;
  const int64_t shared = score_resnet_stem_shared_bytes(p);
  const cudaError_t err = cudaFuncSetAttribute(score_resnet_stem_kernel<T>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
  if (err != cudaSuccess) return cudaGetErrorString(err);
  const dim3 grid(static_cast<unsigned>((p.B + kStemRows - 1) / kStemRows), static_cast<unsigned>(p.m));
  score_resnet_stem_kernel<T><<<grid, kStemThreads, shared, stream>>>(p);
  return last_error();
}

template <typename T, typename TA, typename TC, ResnetGemmRole kRole>
void launch_role(const ScoreResnetGemmParams& p, dim3 grid, cudaStream_t stream) {
  if constexpr (std::is_same_v<T, float>) {
    score_resnet_gemm_kernel<T, TA, TC, kRole><<<grid, kThreads, 0, stream>>>(p);
  } else {
    score_resnet_gemm_wmma_kernel<T, TA, TC, kRole><<<grid, kThreads, 0, stream>>>(p);
  }
}

template <typename T>
const char* launch_gemm(const ScoreResnetGemmParams& p, cudaStream_t stream) {
  if (p.m == 0 || p.B == 0) return nullptr;
  const dim3 grid(static_cast<unsigned>((p.B + kBM - 1) / kBM), static_cast<unsigned>((p.N + kBN - 1) / kBN),
                  static_cast<unsigned>(p.m));
  switch (p.role) {
    case ResnetGemmRole::kUp:
      launch_role<T, float, T, ResnetGemmRole::kUp>(p, grid, stream);
      break;
    case ResnetGemmRole::kDown:
      launch_role<T, T, float, ResnetGemmRole::kDown>(p, grid, stream);
      break;
    case ResnetGemmRole::kHead:
      launch_role<T, float, T, ResnetGemmRole::kHead>(p, grid, stream);
      break;
    default:
      return "score_resnet_gemm_cuda: unknown role";
  }
  return last_error();
}

}  // namespace

int64_t score_resnet_stem_shared_bytes(const ScoreResnetStemParams& p) {
  return static_cast<int64_t>(sizeof(float)) * kStemRows * (p.dx + p.dc + 2 * p.F + 2 * p.T + p.E);
}

const char* score_resnet_stem_cuda(const ScoreResnetStemParams& p, void* stream_handle) {
  auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (p.dtype) {
    case DType::kFloat32: return launch_stem<float>(p, stream);
    case DType::kFloat16: return launch_stem<__half>(p, stream);
    case DType::kBFloat16: return launch_stem<__nv_bfloat16>(p, stream);
    default: return "score_resnet_stem_cuda: unknown dtype code";
  }
}

const char* score_resnet_gemm_cuda(const ScoreResnetGemmParams& p, void* stream_handle) {
  auto stream = static_cast<cudaStream_t>(stream_handle);
  switch (p.dtype) {
    case DType::kFloat32: return launch_gemm<float>(p, stream);
    case DType::kFloat16: return launch_gemm<__half>(p, stream);
    case DType::kBFloat16: return launch_gemm<__nv_bfloat16>(p, stream);
    default: return "score_resnet_gemm_cuda: unknown dtype code";
  }
}

}  // namespace scoredec
