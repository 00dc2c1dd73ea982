#!/usr/bin/env bash
# The one command for a lent GPU machine (H100/H200; torch 2.11 + triton 3.6 preinstalled, no
# network, no venv): build _C with CUDA for sm_90, run the op tests on the GPU (fp32/fp16/bf16,
# triton and cuda backends, opcheck, torch.compile), compile the Triton kernels ahead of time,
# run the benchmarks. Everything lands in the output directory:
#   bash scripts/gpu_check.sh [OUTDIR]        (default: $OUT)
# OUTDIR gets gpu_check.log, env.txt, build_info.json, tests.xml and tests_captured.xml (the GPU
# op tests and the captured-step tests), and from `scoredec bench` RESULTS.md
# (benchmarks/RESULTS.md with this GPU's section put in), plots/ and bench_all/ (every bench
# file's JSON and log, roofline.json); aot.json when PHASES includes aot.
# PHASES="..." runs a subset (environment build tests captured_tests aot bench_all).
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
    tests/test_ops_build.py tests/test_ops_score_compact.py \
    tests/test_ops_score_resnet.py tests/test_ops_sampler.py --junitxml="$OUTDIR/tests.xml"
}

aot() {
  "$PY" scripts/aot_compile.py --json "$OUTDIR/aot.json"
}

captured_tests() {
  # Captured training steps (scoredec/captured.py): torch.compile and CUDA-graph capture of a
  # stage-1 and a stage-2 step against the eager step, plus the benchmark tooling.
  "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_captured.py tests/test_bench_tools.py \
    --junitxml="$OUTDIR/tests_captured.xml"
}

bench_all() {
  # `scoredec bench`: roofline inputs + every benchmarks/bench_*.py + rendered tables and plots.
  # OUTDIR/RESULTS.md is benchmarks/RESULTS.md with this GPU's section put in (plots in
  # OUTDIR/plots); OUTDIR/bench_all/ holds the JSON and logs. BENCH_ALL_ARGS narrows the run when
  # device time is short, e.g. BENCH_ALL_ARGS="--quick" or "--only steps".
  cp benchmarks/RESULTS.md "$OUTDIR/RESULTS.md" \
    && "$PY" -m scoredec.cli bench --out "$OUTDIR/bench_all" --results "$OUTDIR/RESULTS.md" ${BENCH_ALL_ARGS:-}
}

# Phases to run (PHASES="build tests" picks some). The default fits one lent device session
# (15 device-minutes including the machine's start, at most 10 minutes per command): bench_all
# runs every benchmarks/bench_*.py with --quick grids unless BENCH_ALL_ARGS says otherwise;
# aot (the sm_90 ahead-of-time compile) also runs in CI without a GPU, so it is not a default.
PHASES="${PHASES:-environment build tests captured_tests bench_all}"
BENCH_ALL_ARGS="${BENCH_ALL_ARGS---quick}"
for name in $PHASES; do
  phase "$name" "$name"
done

if ((${#FAILED[@]})); then
  echo "gpu_check: FAILED phases: ${FAILED[*]}"
  exit 1
fi
echo "gpu_check: all phases passed; results in $OUTDIR"
