#!/usr/bin/env bash
# The one command for a lent GPU machine (H100/H200; torch 2.11 + triton 3.6 preinstalled, no
# network, no venv): build _C with CUDA for sm_90, run the op tests on the GPU (fp32/fp16/bf16,
# triton and cuda backends, opcheck, torch.compile), compile the Triton kernels ahead of time,
# run the benchmarks. Everything lands in the output directory:
#   bash scripts/gpu_check.sh [OUTDIR]        (default: $OUT)
# OUTDIR gets gpu_check.log, env.txt, build_info.json, tests.xml, aot.json, bench.json,
# bench_score_compact.json, RESULTS_gpu.md and RESULTS_gpu_score_compact.md (rows for
# benchmarks/RESULTS.md). Exits non-zero if any phase failed.
# PYTHON selects the interpreter (default python3).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUTDIR="${1:-${OUT:-}}"
if [[ -z "$OUTDIR" ]]; then
  echo "usage: bash scripts/gpu_check.sh OUTDIR (or set OUT)" >&2
  exit 2
fi
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
PY="${PYTHON:-python3}"
exec > >(tee "$OUTDIR/gpu_check.log") 2>&1

# The interpreter must be off: these runs are on the GPU.
unset TRITON_INTERPRET SCOREDEC_BACKEND
export SCOREDEC_CUDA=ON SCOREDEC_CUDA_ARCHS="${SCOREDEC_CUDA_ARCHS:-90}"
# System Python of the image: no venv, no index (nothing outside is reachable).
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1

FAILED=()
phase() {
  local name="$1"; shift
  local start=$SECONDS
  echo "=== $name"
  if "$@"; then
    echo "=== $name: ok ($((SECONDS - start)) s)"
  else
    echo "=== $name: FAILED rc=$? ($((SECONDS - start)) s)"
    FAILED+=("$name")
  fi
}

environment() {
  { nvidia-smi || true
    "$PY" -c "import sys, torch; print('python', sys.version.split()[0]); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'device', torch.cuda.get_device_name() if torch.cuda.is_available() else None)"
    "$PY" -c "import triton; print('triton', triton.__version__)"
    nvcc --version | tail -2
  } 2>&1 | tee "$OUTDIR/env.txt"
}

build() {
  "$PY" -m pip install --no-build-isolation --no-deps -e . \
    && (cd "$OUTDIR" && "$PY" - <<'PY'
import json, torch
from scoredec import _C
info = _C.build_info()
json.dump(info, open("build_info.json", "w"), indent=2)
print(info)
assert info["has_cuda"], "scoredec._C was built without CUDA"
assert torch.cuda.is_available(), "torch sees no CUDA device"
PY
)
}

tests() {
  "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_ops_noise_embed.py tests/test_ops_registry.py \
    tests/test_ops_build.py tests/test_ops_score_compact.py --junitxml="$OUTDIR/tests.xml"
}

aot() {
  "$PY" scripts/aot_compile.py --json "$OUTDIR/aot.json"
}

bench() {
  "$PY" -m pytest -q -p no:cacheprovider benchmarks/bench_noise_embed.py -rs \
      --benchmark-json="$OUTDIR/bench.json" --benchmark-columns=min,median,max,rounds \
    && "$PY" benchmarks/results_md.py "$OUTDIR/bench.json" | tee "$OUTDIR/RESULTS_gpu.md"
}

bench_score_compact() {
  "$PY" -m pytest -q -p no:cacheprovider benchmarks/bench_score_compact.py -rs \
      --benchmark-json="$OUTDIR/bench_score_compact.json" --benchmark-columns=min,median,max,rounds \
    && "$PY" benchmarks/bench_score_compact.py "$OUTDIR/bench_score_compact.json" \
      | tee "$OUTDIR/RESULTS_gpu_score_compact.md"
}

phase environment environment
phase build build
phase tests tests
phase aot aot
phase bench bench
phase bench_score_compact bench_score_compact

if ((${#FAILED[@]})); then
  echo "gpu_check: FAILED phases: ${FAILED[*]}"
  exit 1
fi
echo "gpu_check: all phases passed; results in $OUTDIR"
