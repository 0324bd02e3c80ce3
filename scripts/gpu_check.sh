#!/usr/bin/env bash
# One prepared run on a lent GPU machine: the CUDA tests, then the CUDA benchmark.
# Expects the peers' wheels in .whl/ (captum, grad-cam, ttach) and writes logs to $OUT.
set -uo pipefail
OUT=${OUT:-out/gpu}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/env.txt"
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$OUT/env.txt"
timeout "${TEST_LIMIT:-200}" python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
timeout "${BENCH_LIMIT:-300}" python3 benchmarks/bench_methods.py --device cuda ${BENCH_ARGS:-} \
  --out "$OUT/bench_cuda.md" --json "$OUT/bench_cuda.json" 2>&1 | tee "$OUT/bench_cuda.log" | tail -60
