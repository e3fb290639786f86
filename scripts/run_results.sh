#!/usr/bin/env bash
# The README's results table: MiniLM on stdlib_code (1,000 training pairs, batch 32, one epoch),
# the baseline and four strategies, seeds 1-3, test split; then `hnm compare`.
# Round-robin over seeds, so that every row has its first seed before any has its third.
# About 5 minutes per run on an idle 2-core CPU (75 minutes in all). Usage:
#   bash scripts/run_results.sh [OUT_DIR]          # default: results/
set -u
OUT=${1:-results}
HNM=${HNM:-hnm}
mkdir -p "$OUT"
declare -A ARGS=(
  [baseline]=""
  [ngame]="+sampler=ngame"
  [dense_static]="+miner=dense_static miner.num_negatives=1 miner.range_min=10 miner.range_max=50 miner.relative_margin=0.05"
  [gist]="+negatives=gist"
  [tas_balanced]="+sampler=tas_balanced"
)
$HNM eval model=null hydra.run.dir="$OUT/zero_shot" > "$OUT/zero_shot.log" 2>&1
for seed in 1 2 3; do
  for name in baseline ngame dense_static gist tas_balanced; do
    dir="$OUT/runs/${name}_s$seed"
    [ -f "$dir/metrics.json" ] && continue          # a finished run is kept, never redone
    echo "=== $name seed=$seed start $(date +%T)"
    # shellcheck disable=SC2086
    $HNM train logger=csv eval.zero_shot=false hydra.run.dir="$dir" seed=$seed ${ARGS[$name]} \
      > "$OUT/${name}_s$seed.log" 2>&1 || echo "=== $name seed=$seed FAILED (see $OUT/${name}_s$seed.log)"
  done
done
$HNM compare "$OUT/runs" --out "$OUT/compare"
