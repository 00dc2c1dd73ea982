#!/usr/bin/env bash
# SIGKILLs a tiny `scoredec train all` at seeded random moments, resumes it after each kill,
# and checks that the run it ends with equals an uninterrupted run bit for bit:
#   bash scripts/kill_resume.sh [KILLS] [SEED]     # default 20 kills, seed 0
# Each kill lands a random time (uniform in [0, 2 T / KILLS], T the uninterrupted run's time
# from taking the run's lock to exiting) after the resumed process took the lock, so kills
# hit every part of the run: steps, checkpoint writes, product saves. Checks: every product
# (behavior, critic, actors .safetensors and .json) has the same SHA-256 as the uninterrupted
# run's; metrics.jsonl logs each (stage, step) once and the same ones; no temporary file is
# left. Prints one line per attempt and "identical" at the end; exit 1 on any difference.
# tests/test_kill_resume.py runs it with 3 kills.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${SCOREDEC_BIN:-$ROOT/.venv/bin}"
kills="${1:-20}"
RANDOM="${2:-0}"           # seeds bash's generator: the same kill moments for the same T
export OMP_NUM_THREADS=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$BIN/scoredec" -q data make spread random --episodes 20 --seed 1 --out "$work/d.h5" >/dev/null
tiny=(--device cpu --seed 2 --log_every 4 --checkpoint_every 6
      --behavior.arch compact --behavior.hidden 16 --behavior.compact_layers 1
      --behavior.steps 30 --behavior.batch_size 16
      --critic.hidden 8 --critic.steps 30 --critic.batch_size 16
      --policy.hidden 8 --policy.steps 30 --policy.batch_size 16)

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Start `train all` into run $1 (extra flags after it); return once it holds the run's lock
# (or has exited). Sets $pid.
start_training() {
  local run="$1"; shift
  "$BIN/scoredec" -q train all --data "$work/d.h5" --run "$run" "${tiny[@]}" "$@" \
    >/dev/null 2>"$work/stderr" &
  pid=$!
  until grep -qs "\"pid\": $pid," "$run/run.lock" || ! kill -0 "$pid" 2>/dev/null; do
    sleep 0.01
  done
}

start_training "$work/straight"
t0=$(now_ms)
wait "$pid" 2>/dev/null
span=$(( $(now_ms) - t0 ))
echo "uninterrupted run: ${span} ms after taking the lock"

landed=0
for ((i = 1; i <= kills; i++)); do
  delay=$(( RANDOM * 2 * span / kills / 32767 ))
  start_training "$work/killed" --resume
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  if kill -KILL "$pid" 2>/dev/null; then
    rc=0; wait "$pid" 2>/dev/null || rc=$?
    if [[ $rc -eq 137 ]]; then landed=$((landed + 1)); fi
    echo "attempt $i: SIGKILL after ${delay} ms (exit $rc)"
  else
    rc=0; wait "$pid" 2>/dev/null || rc=$?
    echo "attempt $i: finished before the kill at ${delay} ms (exit $rc)"
  fi
  if [[ $rc -ne 0 && $rc -ne 137 ]]; then
    echo "attempt $i failed:" >&2; cat "$work/stderr" >&2; exit 1
  fi
done
start_training "$work/killed" --resume
rc=0; wait "$pid" || rc=$?
if [[ $rc -ne 0 ]]; then echo "final resume failed:" >&2; cat "$work/stderr" >&2; exit 1; fi
echo "kills that landed while training: $landed of $kills"

"$BIN/python" - "$work/straight" "$work/killed" <<'PY'
import hashlib, json, sys
from pathlib import Path

straight, killed = map(Path, sys.argv[1:])
bad = []
for name in ("behavior", "critic", "actors"):
    for ext in (".safetensors", ".json"):
        a, b = (hashlib.sha256((run / f"{name}{ext}").read_bytes()).hexdigest() for run in (straight, killed))
        if a != b:
            bad.append(f"{name}{ext} differs ({a[:12]} vs {b[:12]})")
def logged(run):
    return [(r["stage"], r["step"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]
steps = logged(killed)
if len(steps) != len(set(steps)):
    bad.append("metrics.jsonl repeats steps: " + str(sorted({s for s in steps if steps.count(s) > 1})))
if set(steps) != set(logged(straight)):
    bad.append("metrics.jsonl logs other steps than the uninterrupted run")
left = [str(p.relative_to(killed)) for p in killed.rglob("*.tmp")]
if left:
    bad.append("temporary files left: " + ", ".join(left))
if bad:
    print("\n".join(bad))
    sys.exit(1)
print("identical")
PY
