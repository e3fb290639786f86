#!/usr/bin/env bash
# The README's results tables: MiniLM on stdlib_code (1,000 training pairs, batch 32, one epoch),
# the baseline and the strategies named in NAMES, seeds 1-3, test split, with a learning curve
# on dev every 8 steps (EXTRA: more overrides for every run); then `hnm compare`.
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
EXTRA=${EXTRA:-eval.every_n_steps=8 eval.val_corpus=1000}
mkdir -p "$OUT"
# shellcheck source=scripts/recipes.sh
source "$(dirname "$0")/recipes.sh"
# shellcheck disable=SC2086
check_names run_results.sh $NAMES
# shellcheck disable=SC2086
[ -f "$OUT/zero_shot/metrics.json" ] || $HNM eval model=null hydra.run.dir="$OUT/zero_shot" \
  $INFERENCE > "$OUT/zero_shot.log" 2>&1
for seed in $SEEDS; do
  for name in $NAMES; do
    dir="$OUT/runs/${name}_s$seed"
    [ -f "$dir/metrics.json" ] && continue          # a finished run is kept, never redone
    echo "=== $name seed=$seed start $(date +%T)"
    # shellcheck disable=SC2086
    $HNM train group="$(basename "$OUT")" hydra.run.dir="$dir" seed=$seed ${ARGS[$name]} $INFERENCE $(precision_for "$name") $EXTRA \
      > "$OUT/${name}_s$seed.log" 2>&1 || echo "=== $name seed=$seed FAILED (see $OUT/${name}_s$seed.log)"
    echo "=== $name seed=$seed end $(date +%T)"
  done
done
$HNM compare "$OUT/runs" --out "$OUT/compare"
