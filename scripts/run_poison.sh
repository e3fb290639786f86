#!/usr/bin/env bash
# The README's poisoning table: does a negative strategy make MiniLM easier to backdoor?
# MiniLM on stdlib_code (1,000 training pairs, batch 32, one epoch), `+poison=grammar` at two
# poisoning rates, the baseline and three hard-negative strategies, seeds 1-3, test split; then
# one `hnm compare` per rate, paired per query on asr@10 (the attack metric) and on ndcg@10.
# poison.seed is fixed, so at a given training seed every strategy of a rate trains on the same
# poisoned pairs (the 1,000 pairs drawn by data.max_train_pairs depend on the training seed; the
# poisoned ones are drawn among them by the poison seed); poison.json in each run says which.
# Round-robin over seeds, so that every row has its first seed before any has its third.
# Measured wall time per run on an idle 2-core CPU, poison included: baseline ~4 min, gist ~5,
# dense_static ~6, ance ~11 (one mined negative, three re-minings); one seed at both rates
# ~52 min, the 24 runs about 2.6 hours. Usage:
#   bash scripts/run_poison.sh [OUT_DIR]            # default: results_poison/
#   SEEDS="1 2" bash scripts/run_poison.sh          # fewer seeds
#   RATES=0.3 NAMES=baseline SEEDS=1 bash scripts/run_poison.sh  # does the attack take at all?
#   RATES="0 0.005 0.05" bash scripts/run_poison.sh  # add the unpoisoned control (rate 0)
#   POISON=grammar_offtopic bash scripts/run_poison.sh results_poison_offtopic  # spam passages
set -u
OUT=${1:-results_poison}
HNM=${HNM:-hnm}
RATES=${RATES:-0.005 0.05}
SEEDS=${SEEDS:-1 2 3}
NAMES=${NAMES:-baseline dense_static ance gist}
POISON=${POISON:-grammar}   # the poison option: grammar, grammar_offtopic
# shellcheck source=scripts/recipes.sh
source "$(dirname "$0")/recipes.sh"
# shellcheck disable=SC2086
check_names run_poison.sh $NAMES
POISON_CONF="$(dirname "$0")/../conf/poison"
if [ ! -f "$POISON_CONF/$POISON.yaml" ]; then
  echo "run_poison.sh: POISON=$POISON is no option of conf/poison/ (expected one of:" \
    "$(cd "$POISON_CONF" && ls -- *.yaml | sed 's/\.yaml$//' | paste -sd ' '))" >&2
  exit 2
fi
mkdir -p "$OUT"
# the starting model's attack metrics (chance level: nothing learnt yet)
# shellcheck disable=SC2086
[ -f "$OUT/zero_shot/metrics.json" ] || \
  $HNM eval model=null +poison=$POISON hydra.run.dir="$OUT/zero_shot" $INFERENCE \
    > "$OUT/zero_shot.log" 2>&1
for seed in $SEEDS; do
  for rate in $RATES; do
    for name in $NAMES; do
      dir="$OUT/rate$rate/${name}_s$seed"
      [ -f "$dir/metrics.json" ] && continue          # a finished run is kept, never redone
      echo "=== $name rate=$rate seed=$seed start $(date +%T)"
      # shellcheck disable=SC2086
      $HNM train logger=csv eval.zero_shot=false hydra.run.dir="$dir" seed=$seed \
        +poison=$POISON poison.rate=$rate ${ARGS[$name]} $INFERENCE $(precision_for "$name") \
        > "$OUT/${name}_rate${rate}_s$seed.log" 2>&1 \
        || echo "=== $name rate=$rate seed=$seed FAILED (see $OUT/${name}_rate${rate}_s$seed.log)"
    done
  done
done
for rate in $RATES; do
  [ -d "$OUT/compare_rate$rate" ] || $HNM compare "$OUT/rate$rate" --metric asr@10 \
    --out "$OUT/compare_rate$rate"
  [ -d "$OUT/compare_rate${rate}_ndcg" ] || $HNM compare "$OUT/rate$rate" --metric ndcg@10 \
    --out "$OUT/compare_rate${rate}_ndcg"
done
