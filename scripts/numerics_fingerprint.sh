#!/usr/bin/env bash
# Prints one hash per product of a tiny fixed-seed pipeline (dataset, behaviour models, critic,
# actors of OMSD and of one marginal ablation, BC, and the baselines' actors) so that a refactor
# can show it changed no number:
#   bash scripts/numerics_fingerprint.sh > before.txt   # on the old code
#   bash scripts/numerics_fingerprint.sh > after.txt    # on the new code
#   diff before.txt after.txt                           # must print nothing
# Hashes are over tensor bytes in name order (safetensors metadata order may vary) and over the
# dataset's arrays; single-threaded, on the CPU. About a minute.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${SCOREDEC_BIN:-$ROOT/.venv/bin}"
export OMP_NUM_THREADS=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$BIN/scoredec" -q data make spread medium --episodes 40 --seed 3 --out "$work/d.h5" >/dev/null
small=(--device cpu --seed 5 --log_every 50 --checkpoint_every 100
       --behavior.arch compact --behavior.hidden 32 --behavior.compact_layers 2
       --behavior.steps 120 --behavior.batch_size 64
       --critic.hidden 32 --critic.steps 60 --critic.batch_size 64
       --policy.hidden 32 --policy.steps 80 --policy.batch_size 64)
for method in omsd brpo-ind brpo-jal bc; do
  "$BIN/scoredec" -q train all --data "$work/d.h5" --run "$work/$method" --method "$method" \
    "${small[@]}" >/dev/null
  "$BIN/scoredec" -q sample "$work/$method" --count 16 --seed 1 --out "$work/$method.sample.txt" \
    >/dev/null 2>&1 || true
done
# The baselines through the method registry (the suite's entry), tiny.
"$BIN/python" - "$work" <<'PY'
import sys
from pathlib import Path
from scoredec.methods import get_method, method_names
work = Path(sys.argv[1])
for name in ("matd3bc", "macql", "omar", "iql"):
    assert name in method_names(), name
    get_method(name).train(work / "d.h5", work / name, seed=5, progress=False, overrides={
        "device": "cpu", "steps": 60, "batch_size": 64, "critic_hidden": 32, "actor_hidden": 32, "log_every": 50,
        "checkpoint_every": 100})
PY
"$BIN/python" - "$work" <<'PY'
import hashlib, sys
from pathlib import Path
import h5py
from safetensors.torch import load_file

work = Path(sys.argv[1])
def digest(chunks):
    h = hashlib.sha256()
    for name, data in chunks:
        h.update(name.encode()); h.update(data)
    return h.hexdigest()[:16]
with h5py.File(work / "d.h5", "r") as f:
    arrays = []
    f.visititems(lambda n, o: arrays.append((n, o[()].tobytes())) if isinstance(o, h5py.Dataset) else None)
print("dataset", digest(sorted(arrays)))
for run in sorted(p for p in work.iterdir() if p.is_dir()):
    for st in sorted(run.glob("*.safetensors")):
        tensors = load_file(st)
        print(run.name, st.stem, digest((k, tensors[k].contiguous().numpy().tobytes()) for k in sorted(tensors)))
    sample = work / f"{run.name}.sample.txt"
    if sample.is_file() and sample.stat().st_size:
        print(run.name, "sample", hashlib.sha256(sample.read_bytes()).hexdigest()[:16])
PY
