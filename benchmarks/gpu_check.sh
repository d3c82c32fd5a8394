#!/usr/bin/env bash
# Every GPU benchmark and check in one call, for a machine with one GPU and a 10-minute limit.
#
#   OUT=/path/to/results bash benchmarks/gpu_check.sh             # full sizes (1080p, 384x384, ...)
#   QUICK=1 OUT=/tmp/x bash benchmarks/gpu_check.sh               # reduced sizes: a rehearsal on a CPU
#
# Run from anywhere; it works in the repository root. Writes under $OUT: log.txt (everything
# printed), <device>.json and <device>.md (benchmarks/report.py), speed_grid.json (fp32/bf16 x
# batch 1..16 at 1080p, default widths) and speed_grid_small.json (the widths of the packaged
# default weights). Each step has its own time limit; a failing step does not stop the others,
# and the exit status is 1 if any failed. PYTHON picks the interpreter (default python3).
set -uo pipefail
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)  # absolute, before leaving the caller's folder
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
# JAX would take 75% of the GPU's memory at start-up, leaving too little to torch (peers).
export XLA_PYTHON_CLIENT_PREALLOCATE=false
PY=${PYTHON:-python3}
LOG="$OUT/log.txt"
QUICK=${QUICK:-0}
failed=()

step() {  # step NAME SECONDS COMMAND...: run under a time limit, log it, remember a failure
  local name=$1 limit=$2
  shift 2
  echo "=== $name (limit ${limit} s, $(date -u +%H:%M:%S) UTC): $*" | tee -a "$LOG"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$LOG"
  [ "$rc" -eq 0 ] || failed+=("$name")
}

if [ "$QUICK" = 1 ]; then
  report_args=(--quick)
  grid_args=(--size 64x96 --batches 1 2 --iters 2 --warmup 1)
  small_args=(--size 64x96 --batches 1 --iters 2 --warmup 1)
else
  report_args=()
  grid_args=(--size 1080x1920 --batches 1 2 4 8 16 --iters 20 --warmup 3)
  small_args=(--size 1080x1920 --batches 1 8 --iters 20 --warmup 3)
fi

: >"$LOG"
step environment 30 bash -c "nvidia-smi || echo 'no nvidia-smi'; $PY -c '
import jax, jaxlib, flax, optax
print(\"jax\", jax.__version__, \"jaxlib\", jaxlib.__version__, \"flax\", flax.__version__, \"optax\", optax.__version__)
print(jax.devices())
try:
    import torch
    print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.is_available())
except ImportError as e:
    print(\"no torch:\", e)
'"
step report 330 "$PY" -m benchmarks.report "${report_args[@]}" --out-dir "$OUT"
step speed_grid 110 "$PY" -m benchmarks.speed "${grid_args[@]}" --dtypes float32 bfloat16 --out "$OUT/speed_grid.json"
step speed_grid_small 40 "$PY" -m benchmarks.speed "${small_args[@]}" --dtypes float32 bfloat16 \
  --widths 16 24 32 48 --out "$OUT/speed_grid_small.json"
# reference_mode.to_8bit relies on XLA's float-to-uint8 conversion saturating (NaN -> 0), which
# the suite checks on the CPU only: check it on this device too.
step to_8bit_saturates 30 "$PY" -c '
import jax, jax.numpy as jnp, numpy as np
from birqa_jax.classical.reference_mode import to_8bit
x = jnp.array([-3.0, 1.4 / 255, 1.0 + 0.4 / 255, 300 / 255, float("nan"), float("inf"), -float("inf")])
got = np.asarray(jax.jit(to_8bit)(x)).tolist()
print(jax.devices()[0].platform, got)
assert got == [0, 1, 255, 255, 0, 255, 0], got
'
# The peer networks against torchvision's layouts (torchvision is on the GPU image), on the CPU.
step peer_checks 45 "$PY" -m pytest -q -p no:cacheprovider tests/test_benchmarks.py -k "peer_distances or peer_tap or l2_pool or torchvision_layouts"

if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED steps: ${failed[*]}" | tee -a "$LOG"
  exit 1
fi
echo "all steps passed" | tee -a "$LOG"
