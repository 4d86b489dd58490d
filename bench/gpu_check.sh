#!/usr/bin/env bash
# The real-shape checks that only a GPU shows, in one call (about 8 minutes on one H200):
#   bench/bench_realshape.py at Qwen3-30B-A3B's published shape in bf16 (scoring, generation, extraction,
#   each against the plain forward of the same run) and bench/profile_generation.py (a decode step split
#   into kernels, launches and syncs). Results go to $OUT (or ./gpu-out).
# On a machine whose python3 lacks this project's pins, put the wheels ../shared/gpu/README.md lists in
# .gpu/ first; they are installed into a private site folder, nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
PY="${PY:-python3}"
if compgen -G ".gpu/*.whl" > /dev/null; then
    "$PY" -m pip install --quiet --no-index --no-deps --target /tmp/polyroute-site .gpu/*.whl
    export PYTHONPATH="/tmp/polyroute-site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 420 "$PY" bench/bench_realshape.py --device cuda --repeats 2 --items 400 --context-sentences 13 \
    --batch-size 128 --gen-batch 128 --new-tokens 64 --sequences 6000 --batch-tokens 32768 \
    --json "$OUT/realshape.json" 2>&1 | tee "$OUT/realshape.txt"
timeout 240 "$PY" bench/profile_generation.py --batch 128 --prompt 512 --new 32 --json "$OUT/profile.json" \
    2>&1 | grep -v "^USDT" | tee "$OUT/profile.txt"
