#!/usr/bin/env bash
# The CUDA path, checked and timed in one prepared run (≤ 8 minutes on one H200).
#
#   OUT=out/gpu bash scripts/gpu_check.sh               # on the GPU machine, from the repo root
#   SKIP_WHEELS=1 PY=.venv/bin/python bash scripts/gpu_check.sh --device cpu --quick
#                                                       # here: the same steps, CPU-sized
#
# Steps, each under its own time limit (seconds, overridable):
#   1. the CUDA tests (tests/test_gpu.py)                                      TEST_LIMIT=110
#   2. per-call overhead, resnet18/50 at 224² (benchmarks/bench_overhead.py)   OVERHEAD_LIMIT=45
#   3. precision modes' errors against fp32 and their times (bench_precision)  PRECISION_LIMIT=45
#   4. every method, ours / peers / floor at batch 1 and 32 on resnet18/50 and
#      the ViT methods on vit_b_16, fp32 (bench_methods; items that no longer
#      fit the budget are listed as not measured, batch 1 first)               METHODS_LIMIT=210
#   5. the targets in TF32 too: IG-50, SmoothGrad-50, occlusion 16/8 on
#      resnet50 at batch 1 (bench_methods --precision tf32)                    TARGETS_LIMIT=45
# Worst case 455 s of steps plus the wheels' install (~15 s): under 8 minutes. A step cut
# by its limit keeps what it measured (each script writes after every item).
#   6. the goals' verdicts from those files (benchmarks/summarize.py --gpu)
# Outputs (at most 8 files come back from $OUT): gpu_check.log, gpu_check.md (every step's
# report and the verdicts), and one JSON per step.
#
# Peers and the widget's pure-Python dependencies travel as wheels in .whl/ (made here by
# scripts/gpu_wheels.sh; the device image has torch, numpy, scipy, scikit-image, matplotlib).
# The device image's torch is not the project's pinned build: the log and every report say
# which torch ran.
set -uo pipefail
DEVICE=cuda
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
PY=${PY:-python3}
LOG="$OUT/gpu_check.log"
: > "$LOG"
START=$(date +%s)
say() { echo "[$(( $(date +%s) - START )) s] $*" | tee -a "$LOG"; }

if [ "${SKIP_WHEELS:-0}" != 1 ] && [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >>"$LOG" 2>&1 || { say "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1

if [ "$DEVICE" = cuda ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$LOG" 2>&1
  MODELS=resnet18,resnet50
  SIZE=224
  BATCHES=1,32
  METHODS_ARGS="--rounds 5 --slow-rounds 2 --floor-batches 1,4,16,32,64,128"
  VIT=vit_b_16
else
  MODELS=resnet18
  SIZE=64
  BATCHES=1,2
  METHODS_ARGS="--quick --threads 2"
  VIT=""
fi
if [ "$QUICK" = 1 ]; then
  MODELS=resnet18
  SIZE=64
fi
$PY -c "import torch, torchvision, saliency_widgets; print('torch', torch.__version__, \
'torchvision', torchvision.__version__, 'cuda', torch.version.cuda, 'available', \
torch.cuda.is_available())" 2>&1 | tee -a "$LOG"

run() {  # run LIMIT NAME command...: one step, its output in the log
  local limit=$1 name=$2; shift 2
  say "step $name (limit ${limit} s): $*"
  timeout "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  say "step $name: exit $rc$([ $rc = 124 ] && echo ' (time limit)')"
}

if [ "$DEVICE" = cuda ]; then
  run "${TEST_LIMIT:-110}" tests $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py
else
  say "step tests: skipped (no CUDA; tests/test_gpu.py skips itself without a GPU)"
fi
run "${OVERHEAD_LIMIT:-45}" overhead $PY benchmarks/bench_overhead.py --device "$DEVICE" \
  $([ "$QUICK" = 1 ] && echo "--quick --models tiny" || echo "--models $MODELS --rounds 5") \
  --size "$SIZE" \
  --out "$OUT/overhead.md" --json "$OUT/overhead.json"
run "${PRECISION_LIMIT:-45}" precision $PY benchmarks/bench_precision.py --device "$DEVICE" \
  --models "${MODELS##*,}" --size "$SIZE" --rounds 3 $([ "$QUICK" = 1 ] && echo --quick) \
  --out "$OUT/precision.md" --json "$OUT/precision.json"
run "${METHODS_LIMIT:-210}" methods $PY benchmarks/bench_methods.py --device "$DEVICE" \
  --models "$MODELS${VIT:+,$VIT}" --size "$SIZE" --batches "$BATCHES" --precision fp32 \
  --budget "$(( ${METHODS_LIMIT:-210} - 30 ))" --calib-time 0.3 $METHODS_ARGS \
  --out "$OUT/methods.md" --json "$OUT/methods.json"
run "${TARGETS_LIMIT:-45}" targets $PY benchmarks/bench_methods.py --device "$DEVICE" \
  --models "${MODELS##*,}" --size "$SIZE" --batches 1 --precision tf32 --rounds 3 \
  --methods integrated_gradients,smoothgrad,occlusion --calib-time 0.3 \
  --budget "$(( ${TARGETS_LIMIT:-45} - 10 ))" \
  --out "$OUT/targets_tf32.md" --json "$OUT/targets_tf32.json"
# the verdicts, then every report in one markdown file (8 files at most come back)
$PY benchmarks/summarize.py --gpu "$OUT" --out "$OUT/gpu_check.md" >>"$LOG" 2>&1
for f in overhead precision methods targets_tf32; do
  [ -f "$OUT/$f.md" ] && { echo; cat "$OUT/$f.md"; } >>"$OUT/gpu_check.md" && rm "$OUT/$f.md"
done
say "done in $(( $(date +%s) - START )) s; outputs: $(ls "$OUT" | tr '\n' ' ')"
tail -40 "$OUT/gpu_check.md"
