// pybind11 module scoredec._C. Never links libtorch: tensors cross as raw device pointers
// (uintptr_t) and a cudaStream_t handle (uintptr_t); shapes and dtypes are validated in
// scoredec/ops before any call lands here.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "noise_embed.h"
#include "score_compact.h"

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
void noise_embed(std::uintptr_t a, std::uintptr_t z, std::uintptr_t t, std::uintptr_t freqs,
                 std::uintptr_t x_t, std::uintptr_t temb, std::int64_t B, std::int64_t d,
                 std::int64_t F, double beta_0, double beta_1, int dtype, std::uintptr_t stream) {
  if (B < 0 || d < 1 || F < 1) {
    throw std::invalid_argument("noise_embed: need B >= 0, d >= 1, F >= 1");
  }
  if (dtype < 0 || dtype > 2) {
    throw std::invalid_argument("noise_embed: dtype code must be 0 (fp32), 1 (fp16) or 2 (bf16)");
  }
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
  p.beta_0 = static_cast<float>(beta_0);
  p.beta_1 = static_cast<float>(beta_1);
  p.dtype = static_cast<scoredec::DType>(dtype);
  const char* err = nullptr;
  {
    py::gil_scoped_release release;
    err = scoredec::noise_embed_cuda(p, reinterpret_cast<void*>(stream));
  }
  if (err != nullptr) {
    throw std::runtime_error(std::string("noise_embed CUDA launch failed: ") + err);
  }
}

// Largest dynamic shared memory one block may use on sm_90 (cudaDevAttrMaxSharedMemoryPerBlockOptin).
constexpr std::int64_t kMaxSharedBytes = 232448;

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
  if (dtype < 0 || dtype > 2) {
    throw std::invalid_argument("score_compact: dtype code must be 0 (fp32), 1 (fp16) or 2 (bf16)");
  }
  scoredec::ScoreCompactParams p{};
  p.x = reinterpret_cast<const void*>(x);
  p.t = reinterpret_cast<const void*>(t);
  p.cond = reinterpret_cast<const void*>(cond);
  p.freqs = reinterpret_cast<const void*>(freqs);
  p.w0 = reinterpret_cast<const void*>(w0);
  p.b0 = reinterpret_cast<const void*>(b0);
  p.wh = reinterpret_cast<const void*>(wh);
  p.bh = reinterpret_cast<const void*>(bh);
  p.wo = reinterpret_cast<const void*>(wo);
  p.bo = reinterpret_cast<const void*>(bo);
  p.out = reinterpret_cast<void*>(out);
  p.m = m;
  p.B = B;
  p.dx = dx;
  p.dc = dc;
  p.F = F;
  p.W = W;
  p.num_hidden = num_hidden;
  p.dtype = static_cast<scoredec::DType>(dtype);
  p.t_is_f32 = t_is_f32;
  p.freqs_is_f32 = freqs_is_f32;
  const std::int64_t shared = scoredec::score_compact_shared_bytes(p);
  if (shared > kMaxSharedBytes) {
    throw std::invalid_argument("score_compact: x_dim + cond_dim + 2F + 2 width = " +
                                std::to_string(dx + dc + 2 * F + 2 * W) +
                                " floats per row need " + std::to_string(shared) +
                                " B of shared memory per block, more than " +
                                std::to_string(kMaxSharedBytes) + "; use backend='torch' or 'triton'");
  }
  const char* err = nullptr;
  {
    py::gil_scoped_release release;
    err = scoredec::score_compact_cuda(p, reinterpret_cast<void*>(stream));
  }
  if (err != nullptr) {
    throw std::runtime_error(std::string("score_compact CUDA launch failed: ") + err);
  }
}
#endif

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "scoredec native kernels (raw device pointers, no libtorch)";
  m.def("build_info", &build_info, "How this module was built: has_cuda, cuda_archs, ...");
#ifdef SCOREDEC_WITH_CUDA
  m.def("noise_embed", &noise_embed, py::arg("a"), py::arg("z"), py::arg("t"), py::arg("freqs"),
        py::arg("x_t"), py::arg("temb"), py::arg("B"), py::arg("d"), py::arg("F"),
        py::arg("beta_0"), py::arg("beta_1"), py::arg("dtype"), py::arg("stream"),
        "Fused x_t = alpha_t a + sigma_t z and temb = [sin, cos](2 pi t freqs) on `stream`.");
  m.def("score_compact", &score_compact, py::arg("x"), py::arg("t"), py::arg("cond"), py::arg("freqs"),
        py::arg("w0"), py::arg("b0"), py::arg("wh"), py::arg("bh"), py::arg("wo"), py::arg("bo"),
        py::arg("out"), py::arg("m"), py::arg("B"), py::arg("dx"), py::arg("dc"), py::arg("F"),
        py::arg("W"), py::arg("num_hidden"), py::arg("dtype"), py::arg("t_is_f32"),
        py::arg("freqs_is_f32"), py::arg("stream"),
        "Forward of m stacked compact score nets (packed weights) in one launch on `stream`.");
#endif
}
