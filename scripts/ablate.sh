#!/usr/bin/env bash
# One row of an ablation table in results/README.md: train the OMSD cell of a config with some
# flags changed, evaluate its actors (decentralized) and its behaviour model (centralized), and
# append one JSON line to the table's file.
#   bash scripts/ablate.sh TABLE.jsonl NAME DATA.h5 CONFIG.yaml [--behavior.X v ...]
# Run directories go to ${ABLATION_RUNS:-/tmp/scoredec-ablation}/NAME (not committed).
# ABLATION_STAGE=stage1 trains and judges the behaviour model only (no critic, no actors);
# ABLATION_STAGE=stage2 with SNAPSHOT=DIR copies DIR's finished behaviour model and critic into
# the run and trains and judges the actors only (e.g. a learning-curve snapshot,
# R/curve/step-000030000).
set -euo pipefail
table="$1" name="$2" data="$3" config="$4"; shift 4
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.venv/bin"
run="${ABLATION_RUNS:-/tmp/scoredec-ablation}/$name"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
start=$SECONDS
stage="${ABLATION_STAGE:-all}"
if [[ "$stage" == stage2 ]]; then
  [[ -n "${SNAPSHOT:-}" ]] || { echo "ABLATION_STAGE=stage2 needs SNAPSHOT=DIR" >&2; exit 2; }
  mkdir -p "$run"
  cp "$SNAPSHOT"/behavior.json "$SNAPSHOT"/behavior.safetensors "$SNAPSHOT"/critic.json \
     "$SNAPSHOT"/critic.safetensors "$run"/
fi
"$BIN/scoredec" -q train "$stage" --data "$data" --run "$run" --config "$config" --resume "$@"
if [[ "$stage" != stage1 ]]; then
  "$BIN/scoredec" -q evaluate "$run" --episodes 100 --envs 100 --seed 1000 >/dev/null
fi
if [[ "$stage" != stage2 && -f "$run/behavior.safetensors" ]]; then   # BC has no behaviour model
  "$BIN/scoredec" -q evaluate "$run" --behaviour --seed 1000 >/dev/null
fi
"$BIN/python" - "$table" "$name" "$run" "$((SECONDS - start))" "$*" <<'PY'
import json, sys
from pathlib import Path
table, name, run, seconds, flags = sys.argv[1:]
def load(name):
    path = Path(run) / name
    return json.loads(path.read_text()) if path.is_file() else {}
ev, closed = load("evaluation.json"), load("behaviour_report.json").get("closed_loop", {})
row = {"name": name, "flags": flags, "seconds": int(seconds),
       "actors_normalized": [ev.get("normalized_mean"), ev.get("normalized_std")],
       "behaviour_normalized": [closed.get("normalized_mean"), closed.get("normalized_std")]}
with open(table, "a", encoding="utf-8") as f:
    f.write(json.dumps(row) + "\n")
print(json.dumps(row))
PY
