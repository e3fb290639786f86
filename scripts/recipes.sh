# The strategy recipes the README's tables train (sourced by run_results.sh and run_poison.sh,
# so a row of either table means the same flags): ARGS[name] is the row's Hydra overrides,
# check_names fails with exit 2 on a name that has none.
declare -A ARGS=(
  [baseline]=""
  [ngame]="+sampler=ngame"
  [dense_static]="+miner=dense_static miner.num_negatives=1 miner.range_min=10 miner.range_max=50 miner.relative_margin=0.05"
  # the starting model as GIST's guide, as measured (+negatives=gist alone refuses to start:
  # it needs a guide); single quotes keep ${encoder} for Hydra
  [gist]='+negatives=gist negatives.gist.guide=${encoder}'
  [tas_balanced]="+sampler=tas_balanced"
  # the recommended recipe (conf/experiment/recommended.yaml; chosen on dev by recipe_search.py)
  [recommended]="experiment=recommended"
  # one mined negative per pair, as the dense_static recipe: with the default 5, a CPU step
  # reads 32 + 192 texts (and AR2's ranker 192 pairs) and one run takes over half an hour here
  [ance]="+miner=ance miner.num_negatives=1"
  # AR2 with a fresh ranker head, as measured (+miner=ar2 alone refuses to start: it needs a
  # ranker)
  [ar2]="+miner=ar2 miner.ranker.model=fresh miner.num_negatives=1"
  # AR2's alternation leaves the retriever half of the optimizer steps (the others train the
  # ranker); joint training gives it all of them, the baseline's exposure
  [ar2_joint]="+miner=ar2 miner.ranker.model=fresh miner.num_negatives=1 miner.alternate=false"
)
# the tables were measured in float32: runs that add to them keep it whatever the defaults
# (auto picks bf16 on a CPU with bf16 hardware); INFERENCE= PRECISION= to use the defaults
INFERENCE=${INFERENCE-encoder.inference=torch}
PRECISION=${PRECISION-trainer.precision=32-true}
# rows whose recipe chooses its own training precision (experiment=recommended trains
# bf16-mixed where the hardware has it): PRECISION is not added to them
declare -A OWN_PRECISION=([recommended]=1)
precision_for() {  # precision_for NAME: the PRECISION override for that row ("" if its own)
  [ -n "${OWN_PRECISION[$1]+set}" ] || echo "$PRECISION"
}
check_names() {  # check_names SCRIPT NAME...
  local script=$1 name; shift
  for name in "$@"; do
    [ -n "${ARGS[$name]+set}" ] || { echo "$script: unknown name '$name'; expected one of: ${!ARGS[*]}" >&2; exit 2; }
  done
}
