#!/usr/bin/env bash
# The README's results tables: MiniLM on stdlib_code (1,000 training pairs, batch 32, one epoch),
# the baseline and the strategies named in NAMES, seeds 1-3, test split; then `hnm compare`.
# Round-robin over seeds, so that every row has its first seed before any has its third.
# About 4 minutes per baseline run on an idle 2-core CPU; the default five rows take about
# 75 minutes; `NAMES="baseline ance ar2"` (the literature table) about 90. Usage:
#   bash scripts/run_results.sh [OUT_DIR]          # default: results/
#   NAMES="baseline ance ar2 ar2_joint" SEEDS="1 2 3" bash scripts/run_results.sh results_lit
set -u
OUT=${1:-results}
HNM=${HNM:-hnm}
NAMES=${NAMES:-baseline ngame dense_static gist tas_balanced}
SEEDS=${SEEDS:-1 2 3}
mkdir -p "$OUT"
declare -A ARGS=(
  [baseline]=""
  [ngame]="+sampler=ngame"
  [dense_static]="+miner=dense_static miner.num_negatives=1 miner.range_min=10 miner.range_max=50 miner.relative_margin=0.05"
  [gist]="+negatives=gist"
  [tas_balanced]="+sampler=tas_balanced"
  # one mined negative per pair, as the dense_static recipe: with the default 5, a CPU step
  # reads 32 + 192 texts (and AR2's ranker 192 pairs) and one run takes over an hour here
  [ance]="+miner=ance miner.num_negatives=1"
  [ar2]="+miner=ar2 miner.num_negatives=1"
  # AR2's alternation leaves the retriever half of the optimizer steps (the others train the
  # ranker); joint training gives it all of them, the baseline's exposure
  [ar2_joint]="+miner=ar2 miner.num_negatives=1 miner.alternate=false"
)
for name in $NAMES; do
  [ -n "${ARGS[$name]+set}" ] || { echo "run_results.sh: unknown name '$name'; expected one of: ${!ARGS[*]}" >&2; exit 2; }
done
[ -f "$OUT/zero_shot/metrics.json" ] || $HNM eval model=null hydra.run.dir="$OUT/zero_shot" > "$OUT/zero_shot.log" 2>&1
for seed in $SEEDS; do
  for name in $NAMES; do
    dir="$OUT/runs/${name}_s$seed"
    [ -f "$dir/metrics.json" ] && continue          # a finished run is kept, never redone
    echo "=== $name seed=$seed start $(date +%T)"
    # shellcheck disable=SC2086
    $HNM train logger=csv eval.zero_shot=false hydra.run.dir="$dir" seed=$seed ${ARGS[$name]} \
      > "$OUT/${name}_s$seed.log" 2>&1 || echo "=== $name seed=$seed FAILED (see $OUT/${name}_s$seed.log)"
    echo "=== $name seed=$seed end $(date +%T)"
  done
done
$HNM compare "$OUT/runs" --out "$OUT/compare"
