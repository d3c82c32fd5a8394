#!/usr/bin/env bash
# The robustness study's GPU preset in one call, for a machine with one H100/H200 and a
# 10-minute limit per command.
#
#   OUT=/path/to/results bash experiments/robustness_study_gpu.sh                    # preset gpu
#   PRESET=tiny OUT=/tmp/x DATA_DIR=/tmp/d bash experiments/robustness_study_gpu.sh  # rehearsal on a CPU
#
# Needs, besides jax/flax/optax/orbax/scipy/scikit-image (in the GPU image), the data extras
# (tensorflow-datasets, grain, array-record, ml-collections) and matplotlib, which the GPU image
# lacks: set WHEELS to a folder of wheels for them and their dependencies, made for that
# machine's Python (experiments/README.md says how); they are installed with pip --no-index.
# The data set (kadid_synthetic, 5,000 pairs) is built on the machine (about a minute).
#
# Resumable: STUDY (default experiments/results/robustness_study/<preset>, git-ignored caches)
# holds every finished fine-tuning run and evaluation entry; the harness stops at LIMIT seconds
# (default 540) and everything done so far is copied to $OUT/study. To finish in a second call,
# put that folder back at STUDY and carry it (it is a few tens of MB).
set -uo pipefail
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
PRESET=${PRESET:-gpu}
STUDY=${STUDY:-experiments/results/robustness_study/$PRESET}
LOG="$OUT/log.txt"
: >"$LOG"
{
  echo "=== $(date -u +%H:%M:%S) UTC, preset $PRESET"
  nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c 'import jax, flax, optax; print("jax", jax.__version__, "flax", flax.__version__, jax.devices())'
  if ! "$PY" -c 'import tensorflow_datasets, grain, ml_collections, matplotlib' 2>/dev/null; then
    if [ -n "${WHEELS:-}" ]; then
      "$PY" -m pip install -q --no-index --find-links "$WHEELS" tensorflow-datasets grain array-record \
        ml-collections matplotlib
    else
      echo "the data extras are missing and WHEELS is not set: the study cannot build its data set"
    fi
  fi
} 2>&1 | tee -a "$LOG"
t0=$SECONDS
timeout "${LIMIT:-540}" "$PY" -m experiments.robustness_study --preset "$PRESET" --out "$STUDY" \
  --data_dir "${DATA_DIR:-/tmp/birqa_data}" 2>&1 | grep -v "^WARNING:absl" | tee -a "$LOG"
rc=${PIPESTATUS[0]}
note=""
[ "$rc" -eq 124 ] && note=" (time limit reached: carry the study folder and rerun to resume)"
echo "=== study: exit $rc after $((SECONDS - t0)) s$note" | tee -a "$LOG"
mkdir -p "$OUT/study"
cp -r "$STUDY"/. "$OUT/study/"
exit "$rc"
