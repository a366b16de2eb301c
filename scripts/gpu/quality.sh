#!/usr/bin/env bash
# Issue 16's GPU work, unattended, in two phases with their own time limits. Run from the repository root on the GPU
# machine after packing .gpu/ here (scripts/gpu/quality-pack.sh); everything lands under $OUT (default /tmp/quality).
#
#   bash scripts/gpu/quality.sh search [--deadline 270] [--workers 16] [--scale full|tiny] [--device cuda|cpu]
#       The PyTorch proxy (scripts/recipe/search.py) on CUDA over the grid of scripts/recipe/quality.py, scored on the
#       validation split only; picks the `best` and the `demo` recipe by the rule written in quality.py before any
#       result exists, and writes $OUT/search/{results.jsonl,choice.json,search-table.md}. Then read choice.json.
#
#   bash scripts/gpu/quality.sh seeds --best "FLAGS" [--full-seeds "0 1 2 3 4"] [--best-seeds "0 1 2"] [--limit 540]
#        [--only full|best] [--demo "FLAGS" [--demo-seeds "0 1 2"]] [--extra "FLAGS"]
#       dawngrad itself (bash .gpu/run.sh train), every run a process of its own, side by side: the full recipe with
#       each full seed and the chosen recipe (FLAGS = choice.json's dawngrad_flags, joined by spaces) with each best
#       seed, each scored on the test split; with --demo also the CPU demo's recipe on its 400-tweet test subset (its
#       confusion matrices; its wall time means something only on a CPU). Keeps each run's summary.json, metrics.jsonl
#       and adapter-best/, prints the seed table and writes $OUT/quality.json (bench/results/quality.json's format).
#       --extra goes to every run (the tiny test here: --extra "--max-train 24 --max-eval 12 --max-steps 2").
set -euo pipefail
[ -f pnpm-workspace.yaml ] || { echo "quality.sh: run it from the repository root" >&2; exit 2; }
OUT=${OUT:-/tmp/quality}
phase=${1:-}; shift || true
py=${PYTHON:-python3} # the GPU machine's python3 has torch; here: PYTHON=/usr/bin/python3
die() { echo "quality.sh: $*" >&2; exit 2; }

# the tiny model for the proxy: ../shared beside a checkout, else the copy pack.sh --with-model put in .gpu/
model_dir() {
  if [ -d ../shared/models/tweet-mistral-tiny ]; then echo ../shared/models/tweet-mistral-tiny; return; fi
  [ -f .gpu/shared.tar.xz ] || die "no ../shared and no .gpu/shared.tar.xz (pack with scripts/gpu/quality-pack.sh)"
  [ -d /tmp/gpu-shared/models ] || { mkdir -p /tmp/gpu-shared && xz -dc .gpu/shared.tar.xz | tar xf - -C /tmp/gpu-shared; }
  echo /tmp/gpu-shared/models/tweet-mistral-tiny
}

search() {
  local deadline=270 workers=16 scale=full device=cuda
  while [ $# -gt 0 ]; do case "$1" in
    --deadline) deadline=$2; shift 2 ;; --workers) workers=$2; shift 2 ;; --scale) scale=$2; shift 2 ;;
    --device) device=$2; shift 2 ;; *) die "search: unknown option $1" ;; esac; done
  local dir=$OUT/search tokens=.gpu/recipe-tokens.json.xz t0=$SECONDS
  mkdir -p "$dir"
  export RECIPE_MODEL_DIR; RECIPE_MODEL_DIR=$(model_dir)
  if [ ! -f "$tokens" ]; then # not packed: tokenise here with the bundled exporter (~1 min of CPU)
    [ -f .gpu/export_tokens.mjs.xz ] || [ -f .gpu/export_tokens.mjs ] || die "no $tokens and no .gpu/export_tokens.mjs.xz (pack with scripts/gpu/quality-pack.sh)"
    tokens=/tmp/recipe-tokens.json.gz
    [ -f "$tokens" ] || bash .gpu/run.sh export_tokens.mjs --train all --out "$tokens" --shared "$(dirname "$(dirname "$RECIPE_MODEL_DIR")")"
  fi
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "no cuda", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
  "$py" scripts/recipe/quality.py plan --out "$dir" --scale "$scale"
  # grid.py stops its workers at the deadline; the outer timeout is a backstop for a hung CUDA start
  timeout $((deadline + 60)) "$py" scripts/recipe/grid.py --tokens "$tokens" --out "$dir" --plan-file "$dir/plan.json" \
    --workers "$workers" --deadline "$deadline" --device "$device" --eval full > "$dir/grid.log" 2>&1 || echo "quality.sh: grid.py exited $? (see $dir/grid.log)"
  tail -n 5 "$dir/grid.log"
  "$py" scripts/recipe/quality.py choose --dir "$dir"
  echo "quality.sh search: $((SECONDS - t0)) s; results in $dir (results.jsonl, choice.json, search-table.md, grid.log)"
}

seeds() {
  local best="" full_seeds="0 1 2 3 4" best_seeds="0 1 2" limit=540 only="" extra="" demo="" demo_seeds="0 1 2"
  while [ $# -gt 0 ]; do case "$1" in
    --best) best=$2; shift 2 ;; --full-seeds) full_seeds=$2; shift 2 ;; --best-seeds) best_seeds=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;; --only) only=$2; shift 2 ;; --extra) extra=$2; shift 2 ;;
    --demo) demo=$2; shift 2 ;; --demo-seeds) demo_seeds=$2; shift 2 ;;
    *) die "seeds: unknown option $1" ;; esac; done
  [ "$only" = full ] || [ -n "$best" ] || die "seeds: --best \"FLAGS\" (choice.json's best.dawngrad_flags) is required unless --only full"
  [ -f .gpu/run.sh ] || die "no .gpu/run.sh (pack with scripts/gpu/quality-pack.sh)"
  local dir=$OUT/seeds t0=$SECONDS; mkdir -p "$dir"
  bash .gpu/run.sh info > "$dir/info.log" 2>&1 || { cat "$dir/info.log"; die "dawngrad info failed"; } # unpacks node, Dawn, the model once, before the runs race
  grep -m1 -i "adapter\|device" "$dir/info.log" || true
  local pids=() names=() first=1
  launch() { # NAME SEED FLAGS...
    local name=$1 seed=$2; shift 2
    local before=--no-eval-before; [ $first = 1 ] && before="" && first=0 # the base model's score is the same for every run: once
    # shellcheck disable=SC2086
    timeout "$limit" bash .gpu/run.sh train "$@" --seed "$seed" --checkpoint-every 0 $before $extra --out "$dir/$name-s$seed" > "$dir/$name-s$seed.log" 2>&1 &
    pids+=($!); names+=("$name-s$seed")
  }
  if [ "$only" != best ]; then
    # the reference recipe, calibrated as well: with one epoch the adapter is the same, and the summary gets both scores
    for s in $full_seeds; do launch full "$s" --recipe full --calibrate validation; done
  fi
  if [ "$only" != full ]; then
    # shellcheck disable=SC2086
    for s in $best_seeds; do launch best "$s" $best; done
  fi
  if [ -n "$demo" ]; then
    # shellcheck disable=SC2086
    for s in $demo_seeds; do launch demo "$s" $demo; done
  fi
  echo "quality.sh seeds: ${#pids[@]} runs side by side: ${names[*]}"
  for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then echo "  ${names[$i]}: done ($((SECONDS - t0)) s)"; else echo "  ${names[$i]}: exit $? ($((SECONDS - t0)) s): $(tail -n 2 "$dir/${names[$i]}.log" | tr '\n' ' ')"; fi
  done
  for r in "$dir"/*/; do rm -rf "$r/checkpoint" "$r/adapter-last" "$r"/*.png; done # what comes back: summaries, metrics, the best adapters
  "$py" scripts/recipe/quality.py collect "$dir" --out "$OUT/quality.json"
  echo "quality.sh seeds: $((SECONDS - t0)) s; $OUT/quality.json and $dir/*/summary.json"
}

case "$phase" in
  search) search "$@" ;;
  seeds) seeds "$@" ;;
  *) die "usage: bash scripts/gpu/quality.sh search|seeds [options]  (see the header)" ;;
esac
