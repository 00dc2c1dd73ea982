#!/usr/bin/env bash
# Creates (or refreshes) the project venv at .venv and installs scoredec into it, editable.
# Idempotent: a second run on a ready venv only checks a stamp and that scoredec._C imports.
#   bash scripts/setup.sh && .venv/bin/python -m pytest -q tests
# Environment: SCOREDEC_CUDA=OFF|AUTO|ON (default AUTO), SCOREDEC_CUDA_ARCHS (default 90).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
CONSTRAINTS="$ROOT/scripts/constraints.txt"
STAMP="$VENV/.scoredec-setup-stamp"
PIP=("$PY" -m pip install --quiet --disable-pip-version-check -c "$CONSTRAINTS")

log() { printf '[setup] %s\n' "$*" >&2; }
# pip -q still warns about find-links/index folders of the machine's pip config that do not
# exist; drop those lines, keep every other message (errors included) and pip's exit status.
pip_install() {
  "${PIP[@]}" "$@" 2>&1 | { grep -v "^WARNING: Location 'file:.*is ignored" || true; }
}

if [[ ! -x "$PY" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi

# What the installed build depends on: the build inputs, this script and the build switches.
stamp_now() {
  {
    cat pyproject.toml CMakeLists.txt "$CONSTRAINTS" scripts/setup.sh
    find csrc -type f | LC_ALL=C sort | xargs cat
    printf 'SCOREDEC_CUDA=%s SCOREDEC_CUDA_ARCHS=%s\n' "${SCOREDEC_CUDA:-AUTO}" "${SCOREDEC_CUDA_ARCHS:-90}"
  } | sha256sum | cut -d' ' -f1
}
STAMP_NOW="$(stamp_now)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STAMP_NOW" ]] \
   && "$PY" -c "import scoredec._C, scoredec.kernels" 2>/dev/null; then
  log "venv ready ($VENV)"
  exit 0
fi

log "installing torch, triton and build tools (quiet; errors are shown)"
pip_install --upgrade pip
pip_install torch==2.13.0 triton==3.7.1 "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja

# --no-build-isolation: an isolated build env cannot see torch and re-downloads cmake.
log "building scoredec (SCOREDEC_CUDA=${SCOREDEC_CUDA:-AUTO})"
pip_install --no-build-isolation -e ".[test,mujoco]"

"$PY" - <<'PY'
import scoredec._C as C, scoredec.kernels  # noqa: F401
info = C.build_info()
print(f"[setup] scoredec._C {info['version']}: has_cuda={info['has_cuda']} "
      f"archs={info['cuda_archs']} cuda={info['cuda_version']}", flush=True)
PY
echo "$STAMP_NOW" > "$STAMP"
log "done"
