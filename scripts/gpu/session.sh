#!/usr/bin/env bash
# One GPU session in one command, on the GPU machine from the repository root once .gpu/ is there (scripts/gpu/pack.sh):
#   1. dawngrad info --json, plain and with DAWNGRAD_DAWN_TOGGLES=allow_unsafe_apis,vulkan_enable_f16_on_nvidia
#      (what the toggles unlock: shader-f16, subgroup matrices and their configurations);
#   2. the matmul bench (gpu-matmul: squares 256²-8192², the 300M step's shapes, each kernel variant vs cuBLAS);
#   3. the step bench (gpu-step: 300M B16×T96, tiny B16/B8×T80, profiles, vs PyTorch f32 and bf16 autocast);
#   4. with --train: `dawngrad train --recipe full --seed 1` (needs pack.sh --with-model; ~4 min more on an H200);
# each part under its own time limit, its output in $OUT/<part>.log, its results in $OUT; then a short table.
# Parts 1-3 take ≤ 4 min on an H200 (their limits add up to 235 s).
#
#   bash scripts/gpu/session.sh [--smoke] [--train] [-- FLAGS FOR bench-model ...]
# --smoke: tiny sizes and the full limits ×4 (a check of the machinery on lavapipe); after `--`: flags passed to every
# `dawngrad bench-model` of the step bench (e.g. -- --no-tune; not --precision: the bench runs f32 and mixed itself).
# OUT defaults to ./.gpu-out; DAWNGRAD_GPU_DIR (default .gpu) names the pack.
set -uo pipefail
g=${DAWNGRAD_GPU_DIR:-.gpu}
[ -f "$g/run.sh" ] || { echo "session.sh: no $g/run.sh here: run from the repository root after scripts/gpu/pack.sh" >&2; exit 2; }
smoke=() train=0 extra=() scale=1
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=(--smoke); scale=4 ;;
    --train) train=1 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "session.sh: unknown argument $1 (usage: session.sh [--smoke] [--train] [-- FLAGS])" >&2; exit 2 ;;
  esac
  shift
done
out=${OUT:-$PWD/.gpu-out}
mkdir -p "$out"
parts=()

# part NAME LIMIT_S COMMAND...: run it with its output in $OUT/NAME.log (the last $show lines printed); remember exit
# code and seconds
show=4
part() {
  local name=$1 limit=$(($2 * scale)); shift 2
  local t0=$SECONDS rc
  echo "== $name (limit ${limit} s): $*"
  timeout -k 10 "$limit" "$@" > "$out/$name.log" 2>&1; rc=$?
  grep -v '^Warning: ' "$out/$name.log" | tail -n "$show" | sed 's/^/   /'
  [ $rc = 124 ] || [ $rc = 137 ] && echo "   ($name stopped at its limit of ${limit} s)"
  parts+=("$(printf '%-14s exit %-4s %4d s' "$name" "$rc" $((SECONDS - t0)))")
  [ $rc = 0 ] || failed=$((failed + 1))
}
failed=0

toggles=allow_unsafe_apis,vulkan_enable_f16_on_nvidia
show=30 part info 30 bash "$g/run.sh" info
part info-json 15 sh -c "bash '$g/run.sh' info --json > '$out/info.json'"
part info-toggles 15 sh -c "DAWNGRAD_DAWN_TOGGLES=$toggles bash '$g/run.sh' info --json > '$out/info-toggles.json'"
part gpu-matmul 75 bash "$g/run.sh" bench.mjs gpu-matmul --out "$out" "${smoke[@]}"
part gpu-step 100 bash "$g/run.sh" bench.mjs gpu-step --out "$out" "${smoke[@]}" "--step-flags=${extra[*]:-}"
if [ $train = 1 ]; then
  if [ ${#smoke[@]} = 1 ]; then
    part train 30 bash "$g/run.sh" train --max-steps 2 --max-train 32 --max-eval 8 --eval-batch-size 8 --eval-mode first-token \
      --no-eval-before --checkpoint-every 0 --out "$out/train-smoke"
  else
    part train 420 bash "$g/run.sh" train --recipe full --seed 1 --out "$out/full"
  fi
fi

echo
bash "$g/run.sh" bench.mjs --summary --out "$out" 2>/dev/null
echo
echo "== parts (logs and results in $out)"
printf '%s\n' "${parts[@]}"
[ $failed = 0 ] || { echo "session.sh: $failed part(s) failed: see their logs"; exit 1; }
