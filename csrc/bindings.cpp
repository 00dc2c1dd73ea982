// pybind11 module scoredec._C. Never links libtorch: tensors cross as raw device pointers
// (uintptr_t) and a cudaStream_t handle (uintptr_t); shapes and dtypes are validated in
// scoredec/ops before any call lands here.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "noise_embed.h"
#include "sample_sequential.h"
#include "score_compact.h"
#include "score_resnet.h"

#ifdef SCOREDEC_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace py = pybind11;

namespace {

py::dict build_info() {
  py::dict info;
  info["version"] = SCOREDEC_VERSION;
  info["build_type"] = SCOREDEC_BUILD_TYPE;
  info["compiler"] = SCOREDEC_CXX_COMPILER;
#ifdef SCOREDEC_WITH_CUDA
  info["has_cuda"] = true;
  info["cuda_archs"] = SCOREDEC_CUDA_ARCHS;
  // CUDART_VERSION is 1000 * major + 10 * minor.
  info["cuda_version"] = std::to_string(CUDART_VERSION / 1000) + "." +
                         std::to_string((CUDART_VERSION % 1000) / 10);
  info["cuda_compiler"] = SCOREDEC_CUDA_COMPILER;
#else
  info["has_cuda"] = false;
  info["cuda_archs"] = py::none();
  info["cuda_version"] = py::none();
  info["cuda_compiler"] = py::none();
#endif
  return info;
}

#ifdef SCOREDEC_WITH_CUDA
// Largest dynamic shared memory one block may use on sm_90 (cudaDevAttrMaxSharedMemoryPerBlockOptin).
constexpr std::int64_t kMaxSharedBytes = 232448;

// The element dtype code of scoredec::DType, checked; op names the entry point in the message.
scoredec::DType dtype_code(const char* op, int dtype) {
  if (dtype < 0 || dtype > 2) {
    throw std::invalid_argument(std::string(op) + ": dtype code must be 0 (fp32), 1 (fp16) or 2 (bf16)");
  }
  return static_cast<scoredec::DType>(dtype);
}

// Refuses a launch whose block needs more shared memory than kMaxSharedBytes; what() says what
// needs it ("<op>: ..."), built only for the error.
template <typename What>
void check_shared_bytes(std::int64_t shared, What&& what) {
  if (shared > kMaxSharedBytes) {
    throw std::invalid_argument(what() + " need " + std::to_string(shared) +
                                " B of shared memory per block, more than " + std::to_string(kMaxSharedBytes) +
                                "; use backend='torch' or 'triton'");
  }
}

// Runs launch() (returning nullptr or a CUDA error string) without the GIL; a failure raises.
template <typename Launch>
void launch_or_throw(const char* op, Launch&& launch) {
  const char* err = nullptr;
  {
    py::gil_scoped_release release;
    err = launch();
  }
  if (err != nullptr) {
    throw std::runtime_error(std::string(op) + " CUDA launch failed: " + err);
  }
}

// The compact net's packed weights (scoredec/ops/score_compact.py pack_weights), which
// score_compact and sample_sequential both read: Params has the fields w0 .. bo.
template <typename Params>
void set_compact_weights(Params& p, std::uintptr_t w0, std::uintptr_t b0, std::uintptr_t wh, std::uintptr_t bh,
                         std::uintptr_t wo, std::uintptr_t bo) {
  p.w0 = reinterpret_cast<const void*>(w0);
  p.b0 = reinterpret_cast<const void*>(b0);
  p.wh = reinterpret_cast<const void*>(wh);
  p.bh = reinterpret_cast<const void*>(bh);
  p.wo = reinterpret_cast<const void*>(wo);
  p.bo = reinterpret_cast<const void*>(bo);
}

void noise_embed(std::uintptr_t a, std::uintptr_t z, std::uintptr_t t, std::uintptr_t freqs,
                 std::uintptr_t x_t, std::uintptr_t temb, std::int64_t B, std::int64_t d,
                 std::int64_t F, double la_t2, double la_t1, int dtype, std::uintptr_t stream) {
  if (B < 0 || d < 1 || F < 1) {
    throw std::invalid_argument("noise_embed: need B >= 0, d >= 1, F >= 1");
  }
  const scoredec::DType element = dtype_code("noise_embed", dtype);
  scoredec::NoiseEmbedParams p{};
  p.a = reinterpret_cast<const void*>(a);
  p.z = reinterpret_cast<const void*>(z);
  p.t = reinterpret_cast<const float*>(t);
  p.freqs = reinterpret_cast<const float*>(freqs);
  p.x_t = reinterpret_cast<void*>(x_t);
  p.temb = reinterpret_cast<void*>(temb);
  p.B = B;
  p.d = d;
  p.F = F;
  p.la_t2 = static_cast<float>(la_t2);
  p.la_t1 = static_cast<float>(la_t1);
  p.dtype = element;
  launch_or_throw("noise_embed", [&] { return scoredec::noise_embed_cuda(p, reinterpret_cast<void*>(stream)); });
}

void score_compact(std::uintptr_t x, std::uintptr_t t, std::uintptr_t cond, std::uintptr_t freqs,
                   std::uintptr_t w0, std::uintptr_t b0, std::uintptr_t wh, std::uintptr_t bh,
                   std::uintptr_t wo, std::uintptr_t bo, std::uintptr_t out, std::int64_t m,
                   std::int64_t B, std::int64_t dx, std::int64_t dc, std::int64_t F, std::int64_t W,
                   std::int64_t num_hidden, int dtype, bool t_is_f32, bool freqs_is_f32,
                   std::uintptr_t stream) {
  if (m < 0 || B < 0 || dx < 1 || dc < 0 || F < 1 || W < 1 || num_hidden < 0) {
    throw std::invalid_argument(
        "score_compact: need m >= 0, B >= 0, dx >= 1, dc >= 0, F >= 1, W >= 1, num_hidden >= 0");
  }
  if (m > 65535) {
    throw std::invalid_argument("score_compact: at most 65535 models (grid y)");
  }
  const scoredec::DType element = dtype_code("score_compact", dtype);
  scoredec::ScoreCompactParams p{};
  p.x = reinterpret_cast<const void*>(x);
  p.t = reinterpret_cast<const void*>(t);
  p.cond = reinterpret_cast<const void*>(cond);
  p.freqs = reinterpret_cast<const void*>(freqs);
  set_compact_weights(p, w0, b0, wh, bh, wo, bo);
  p.out = reinterpret_cast<void*>(out);
  p.m = m;
  p.B = B;
  p.dx = dx;
  p.dc = dc;
  p.F = F;
  p.W = W;
  p.num_hidden = num_hidden;
  p.dtype = element;
  p.t_is_f32 = t_is_f32;
  p.freqs_is_f32 = freqs_is_f32;
  check_shared_bytes(scoredec::score_compact_shared_bytes(p), [&] {
    return "score_compact: x_dim + cond_dim + 2F + 2 width = " + std::to_string(dx + dc + 2 * F + 2 * W) +
           " floats per row";
  });
  launch_or_throw("score_compact", [&] { return scoredec::score_compact_cuda(p, reinterpret_cast<void*>(stream)); });
}

void score_resnet_stem(std::uintptr_t x, std::uintptr_t t, std::uintptr_t cond, std::uintptr_t freqs,
                       std::uintptr_t wt1, std::uintptr_t bt1, std::uintptr_t wt2, std::uintptr_t bt2,
                       std::uintptr_t we, std::uintptr_t be, std::uintptr_t wtr, std::uintptr_t btr,
                       std::uintptr_t h, std::int64_t m, std::int64_t B, std::int64_t dx, std::int64_t dc,
                       std::int64_t F, std::int64_t T, std::int64_t E, std::int64_t H, int dtype,
                       bool t_is_f32, bool freqs_is_f32, std::uintptr_t stream) {
  if (m < 0 || B < 0 || dx < 1 || dc < 0 || F < 1 || T < 1 || E < 1 || H < 1) {
    throw std::invalid_argument(
        "score_resnet_stem: need m >= 0, B >= 0, dx >= 1, dc >= 0, F >= 1, T >= 1, E >= 1, H >= 1");
  }
  if (m > 65535) {
    throw std::invalid_argument("score_resnet_stem: at most 65535 models (grid y)");
  }
  const scoredec::DType element = dtype_code("score_resnet_stem", dtype);
  scoredec::ScoreResnetStemParams p{};
  p.x = reinterpret_cast<const void*>(x);
  p.t = reinterpret_cast<const void*>(t);
  p.cond = reinterpret_cast<const void*>(cond);
  p.freqs = reinterpret_cast<const void*>(freqs);
  p.wt1 = reinterpret_cast<const void*>(wt1);
  p.bt1 = reinterpret_cast<const void*>(bt1);
  p.wt2 = reinterpret_cast<const void*>(wt2);
  p.bt2 = reinterpret_cast<const void*>(bt2);
  p.we = reinterpret_cast<const void*>(we);
  p.be = reinterpret_cast<const void*>(be);
  p.wtr = reinterpret_cast<const void*>(wtr);
  p.btr = reinterpret_cast<const void*>(btr);
  p.h = reinterpret_cast<float*>(h);
  p.m = m;
  p.B = B;
  p.dx = dx;
  p.dc = dc;
  p.F = F;
  p.T = T;
  p.E = E;
  p.H = H;
  p.dtype = element;
  p.t_is_f32 = t_is_f32;
  p.freqs_is_f32 = freqs_is_f32;
  check_shared_bytes(scoredec::score_resnet_stem_shared_bytes(p), [&] {
    return "score_resnet_stem: x_dim + cond_dim = " + std::to_string(dx + dc) + " input columns";
  });
  launch_or_throw("score_resnet_stem",
                  [&] { return scoredec::score_resnet_stem_cuda(p, reinterpret_cast<void*>(stream)); });
}

void score_resnet_gemm(std::uintptr_t a, std::uintptr_t w, std::uintptr_t bias, std::uintptr_t gamma,
                       std::uintptr_t beta, std::uintptr_t c, std::int64_t m, std::int64_t B, std::int64_t K,
                       std::int64_t N, double ln_eps, int role, int dtype, std::uintptr_t stream) {
  if (m < 0 || B < 0 || K < 1 || N < 1) {
    throw std::invalid_argument("score_resnet_gemm: need m >= 0, B >= 0, K >= 1, N >= 1");
  }
  if (m > 65535 || (N + 63) / 64 > 65535) {
    throw std::invalid_argument("score_resnet_gemm: at most 65535 models (grid z) and column blocks (grid y)");
  }
  if (role < 0 || role > 2) {
    throw std::invalid_argument("score_resnet_gemm: role must be 0 (up), 1 (down) or 2 (head)");
  }
  const scoredec::DType element = dtype_code("score_resnet_gemm", dtype);
  scoredec::ScoreResnetGemmParams p{};
  p.a = reinterpret_cast<const void*>(a);
  p.w = reinterpret_cast<const void*>(w);
  p.bias = reinterpret_cast<const void*>(bias);
  p.gamma = reinterpret_cast<const void*>(gamma);
  p.beta = reinterpret_cast<const void*>(beta);
  p.c = reinterpret_cast<void*>(c);
  p.m = m;
  p.B = B;
  p.K = K;
  p.N = N;
  p.ln_eps = static_cast<float>(ln_eps);
  p.role = static_cast<scoredec::ResnetGemmRole>(role);
  p.dtype = element;
  launch_or_throw("score_resnet_gemm",
                  [&] { return scoredec::score_resnet_gemm_cuda(p, reinterpret_cast<void*>(stream)); });
}

void sample_sequential(std::uintptr_t obs, std::uintptr_t x_T, std::uintptr_t noise, std::uintptr_t coef,
                       std::uintptr_t freqs, std::uintptr_t w0, std::uintptr_t b0, std::uintptr_t wh,
                       std::uintptr_t bh, std::uintptr_t wo, std::uintptr_t bo, std::uintptr_t out,
                       std::int64_t m, std::int64_t B, std::int64_t dx, std::int64_t obs_w, std::int64_t F,
                       std::int64_t W, std::int64_t num_hidden, std::int64_t steps, int solver, double clip,
                       int dtype, std::uintptr_t stream) {
  if (m < 0 || B < 0 || dx < 1 || obs_w < 0 || F < 1 || W < 1 || num_hidden < 0 || steps < 1) {
    throw std::invalid_argument(
        "sample_sequential: need m >= 0, B >= 0, dx >= 1, obs_w >= 0, F >= 1, W >= 1, num_hidden >= 0, "
        "steps >= 1");
  }
  if (num_hidden > 16) {
    throw std::invalid_argument("sample_sequential: at most 16 hidden layers");
  }
  if (solver < 0 || solver > 2) {
    throw std::invalid_argument("sample_sequential: solver code must be 0 (ddim), 1 (dpm1) or 2 (dpm2)");
  }
  const scoredec::DType element = dtype_code("sample_sequential", dtype);
  if (!(clip > 0)) {
    throw std::invalid_argument("sample_sequential: clip must be > 0");
  }
  if ((B + 15) / 16 > 2147483647LL) {
    throw std::invalid_argument("sample_sequential: batch too large for the grid");
  }
  scoredec::SampleSequentialParams p{};
  p.obs = reinterpret_cast<const void*>(obs);
  p.x_T = reinterpret_cast<const void*>(x_T);
  p.noise = noise == 0 ? nullptr : reinterpret_cast<const void*>(noise);
  p.coef = reinterpret_cast<const float*>(coef);
  p.freqs = reinterpret_cast<const float*>(freqs);
  set_compact_weights(p, w0, b0, wh, bh, wo, bo);
  p.out = reinterpret_cast<void*>(out);
  p.m = m;
  p.B = B;
  p.dx = dx;
  p.obs_w = obs_w;
  p.F = F;
  p.W = W;
  p.num_hidden = num_hidden;
  p.steps = steps;
  p.solver = solver;
  p.clip = static_cast<float>(clip);
  p.dtype = element;
  check_shared_bytes(scoredec::sample_sequential_shared_bytes(p, 0, scoredec::sample_sequential_rows(B)), [&] {
    return "sample_sequential: width " + std::to_string(W) + " and condition width " +
           std::to_string(obs_w + (m - 1) * dx);
  });
  launch_or_throw("sample_sequential", [&] {
    return scoredec::sample_sequential_cuda(p, kMaxSharedBytes, reinterpret_cast<void*>(stream));
  });
}
#endif

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "scoredec native kernels (raw device pointers, no libtorch)";
  m.def("build_info", &build_info, "How this module was built: has_cuda, cuda_archs, ...");
#ifdef SCOREDEC_WITH_CUDA
  m.def("noise_embed", &noise_embed, py::arg("a"), py::arg("z"), py::arg("t"), py::arg("freqs"),
        py::arg("x_t"), py::arg("temb"), py::arg("B"), py::arg("d"), py::arg("F"),
        py::arg("la_t2"), py::arg("la_t1"), py::arg("dtype"), py::arg("stream"),
        "Fused x_t = alpha_t a + sigma_t z and temb = [sin, cos](2 pi t freqs) on `stream`.");
  m.def("score_compact", &score_compact, py::arg("x"), py::arg("t"), py::arg("cond"), py::arg("freqs"),
        py::arg("w0"), py::arg("b0"), py::arg("wh"), py::arg("bh"), py::arg("wo"), py::arg("bo"),
        py::arg("out"), py::arg("m"), py::arg("B"), py::arg("dx"), py::arg("dc"), py::arg("F"),
        py::arg("W"), py::arg("num_hidden"), py::arg("dtype"), py::arg("t_is_f32"),
        py::arg("freqs_is_f32"), py::arg("stream"),
        "Forward of m stacked compact score nets (packed weights) in one launch on `stream`.");
  m.def("score_resnet_stem", &score_resnet_stem, py::arg("x"), py::arg("t"), py::arg("cond"),
        py::arg("freqs"), py::arg("wt1"), py::arg("bt1"), py::arg("wt2"), py::arg("bt2"), py::arg("we"),
        py::arg("be"), py::arg("wtr"), py::arg("btr"), py::arg("h"), py::arg("m"), py::arg("B"),
        py::arg("dx"), py::arg("dc"), py::arg("F"), py::arg("T"), py::arg("E"), py::arg("H"),
        py::arg("dtype"), py::arg("t_is_f32"), py::arg("freqs_is_f32"), py::arg("stream"),
        "Resnet score nets' stem (time MLP, input embedding, trunk input layer) -> h float32 on `stream`.");
  m.def("score_resnet_gemm", &score_resnet_gemm, py::arg("a"), py::arg("w"), py::arg("bias"),
        py::arg("gamma"), py::arg("beta"), py::arg("c"), py::arg("m"), py::arg("B"), py::arg("K"),
        py::arg("N"), py::arg("ln_eps"), py::arg("role"), py::arg("dtype"), py::arg("stream"),
        "One grouped GEMM of the resnet score nets (role 0 up, 1 down, 2 head) on `stream`.");
  m.def("sample_sequential", &sample_sequential, py::arg("obs"), py::arg("x_T"), py::arg("noise"),
        py::arg("coef"), py::arg("freqs"), py::arg("w0"), py::arg("b0"), py::arg("wh"), py::arg("bh"),
        py::arg("wo"), py::arg("bo"), py::arg("out"), py::arg("m"), py::arg("B"), py::arg("dx"),
        py::arg("obs_w"), py::arg("F"), py::arg("W"), py::arg("num_hidden"), py::arg("steps"),
        py::arg("solver"), py::arg("clip"), py::arg("dtype"), py::arg("stream"),
        "Sequential sampler of m stacked compact score nets (packed weights) in one launch on `stream`.");
#endif
}
