#!/usr/bin/env bash
# The whole GPU session of the issues in two calls of the device tool (carry [".gpu"]; pack first with
# `bash scripts/gpu/quality-pack.sh`: the pack with the tiny model, data and token exporter, and the proxy's token file):
#
#   bash scripts/gpu/device.sh start    # ≤ 580 s: info; HF parity on the GPU (f32 and mixed); the GPU benches (matmul
#                                       # tiles tuned per shape, squares and the 300M step's products vs cuBLAS f32/f16;
#                                       # the 300M and tiny steps in f32 and mixed vs PyTorch f32 and bf16 autocast);
#                                       # then, in the background (setsid, so they outlive the call), the training runs:
#                                       # the full recipe alone (seed 0, its solo wall time), then side by side the full
#                                       # recipe seeds 1-4, the full recipe in mixed precision (seed 0) and the proxy's
#                                       # recipe search; the searched `best` recipe × 3 seeds once the search has chosen.
#   bash scripts/gpu/device.sh finish   # waits for the background work (≤ its limit), snapshotting what is done into
#                                       # $OUT/finish.tar.gz every 20 s, so a call cut short still brings results back.
#
# Everything lands under $STATE (default /tmp/dg-session) on the GPU machine, which lives between the two calls while
# the machine stays warm; $OUT gets at most a summary text and one archive per call (the tool brings back 8 files).
# --smoke: tiny sizes on a CPU adapter (lavapipe), to test this script itself.
set -uo pipefail
[ -f pnpm-workspace.yaml ] || { echo "device.sh: run it from the repository root" >&2; exit 2; }
phase=${1:-}; shift || true
smoke=0; [ "${1:-}" = --smoke ] && smoke=1
S=${STATE:-/tmp/dg-session}
OUT=${OUT:-$S/out}
mkdir -p "$S" "$OUT"
export DAWNGRAD_DAWN_TOGGLES=${DAWNGRAD_DAWN_TOGGLES-allow_unsafe_apis,vulkan_enable_f16_on_nvidia} # f16 + subgroup matrices on NVIDIA
export DAWNGRAD_TUNE_DIR=$S/tune # one table of measured tiles for every process of the session
py=${PYTHON:-python3}
r=.gpu/run.sh
stamp() { # seconds since `start` began, whichever process writes
  [ -f "$S/t0" ] || date +%s > "$S/t0"
  echo "[$(($(date +%s) - $(cat "$S/t0"))) s] $*" | tee -a "$S/timeline.txt"
}

# part NAME LIMIT CMD...: output in $S/NAME.log, the tail shown, exit code and seconds in the summary
part() {
  local name=$1 limit=$2; shift 2
  local s=$SECONDS
  stamp "$name (limit ${limit} s)"
  timeout -k 10 "$limit" "$@" > "$S/$name.log" 2>&1
  local rc=$?
  grep -v '^Warning: ' "$S/$name.log" | tail -n 12 | sed 's/^/    /'
  echo "$name exit $rc $((SECONDS - s)) s" >> "$S/parts.txt"
}

# the training runs (phase `train`, started by `start` in a session of its own): seed 0 alone, then the rest side by
# side, then the searched recipe
train() {
  local q=$S/quality extra=() deadline=200 scale=full device=cuda
  if [ $smoke = 1 ]; then extra=(--extra "--max-train 24 --max-eval 12 --max-steps 2 --eval-batch-size 12"); deadline=60; scale=tiny; device=cpu; fi
  # a held-out model first (seconds; outside `start`'s budget): a random Llama + rsLoRA adapter built by transformers here
  [ $smoke = 1 ] || part parity-llama 120 $py scripts/gpu/parity.py --build-llama "$S/llama" --out "$S/parity-llama" --run "bash .gpu/run.sh"
  OUT=$q/solo bash scripts/gpu/quality.sh seeds --only full --full-seeds 0 --limit 300 "${extra[@]}" > "$S/solo.log" 2>&1
  stamp "solo: the full recipe, seed 0, alone on the GPU: done"
  OUT=$q/mixed bash scripts/gpu/quality.sh seeds --only full --full-seeds 0 --limit 400 --extra "--precision mixed ${extra[*]:1}" > "$S/mixed.log" 2>&1 &
  local mixed=$!
  OUT=$q/rest bash scripts/gpu/quality.sh seeds --only full --full-seeds "1 2 3 4" --limit 400 "${extra[@]}" > "$S/rest.log" 2>&1 &
  local rest=$!
  OUT=$q bash scripts/gpu/quality.sh search --deadline $deadline --scale $scale --device $device > "$S/search.log" 2>&1
  stamp "search done"
  local best
  best=$($py -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["best"]["dawngrad_flags"]))' "$q/search/choice.json" 2>/dev/null)
  if [ -n "$best" ]; then
    OUT=$q/best bash scripts/gpu/quality.sh seeds --only best --best "$best" --best-seeds "0 1 2" --limit 400 "${extra[@]}" > "$S/best.log" 2>&1
    stamp "best recipe × 3 seeds done: $best"
  else
    stamp "the search chose nothing (see search.log)"
  fi
  wait $mixed $rest
  stamp "training done"
  touch "$S/train.done"
}

pack_results() { # NAME: everything worth keeping from $S into $OUT/NAME.tar.gz (atomically)
  (cd "$S" && tar czf "$OUT/.$1.tmp" --exclude='*/checkpoint' --exclude='*/adapter-last' --exclude='*.png' \
    --exclude='tune' --exclude='out' --exclude='*.safetensors' . 2>/dev/null) && mv "$OUT/.$1.tmp" "$OUT/$1.tar.gz"
}

case "$phase" in
  start)
    rm -rf "${S:?}"/*; mkdir -p "$OUT"
    stamp "start"
    part info 45 bash $r info
    part info-json 20 sh -c "bash $r info --json > '$S/info.json'"
    shared=${DAWNGRAD_GPU_RUN:-/tmp/dawngrad-gpu}/shared
    [ -d "$shared/fixtures" ] || shared=../shared
    part parity-hf-tiny 60 $py scripts/gpu/parity.py --model "$shared/fixtures/hf-tiny" --adapter "$shared/fixtures/hf-tiny/adapter" --out "$S/parity-hf" --run "bash .gpu/run.sh"
    part parity-tiny 60 $py scripts/gpu/parity.py --model "$shared/models/tweet-mistral-tiny" --out "$S/parity-tiny" --run "bash .gpu/run.sh"
    if [ $smoke = 1 ]; then
      part bench 900 bash $r bench.mjs gpu-matmul gpu-step --smoke --out "$S/bench"
    else
      part bench-matmul 170 bash $r bench.mjs gpu-matmul --out "$S/bench"
      part bench-step 220 bash $r bench.mjs gpu-step --out "$S/bench"
    fi
    bash $r bench.mjs --summary --out "$S/bench" > "$S/bench-summary.txt" 2>&1
    stamp "benches done; the training runs go on in the background"
    setsid bash scripts/gpu/device.sh train $([ $smoke = 1 ] && echo --smoke) > "$S/train.log" 2>&1 < /dev/null &
    sleep 2
    pack_results start
    { cat "$S/parts.txt"; echo; cat "$S/bench-summary.txt"; echo; grep -h "parity\|f32 \|mixed " "$S"/parity-*.log; } > "$OUT/start.txt"
    cat "$OUT/start.txt"
    ;;
  train) train ;;
  finish)
    limit=${1:-420}
    [ "${1:-}" = --smoke ] && limit=900
    while [ ! -f "$S/train.done" ] && [ $SECONDS -lt "$limit" ]; do
      sleep 20
      pack_results finish
      tail -n 1 "$S/timeline.txt"
    done
    [ -f "$S/train.done" ] || stamp "finish: stopped waiting at ${limit} s"
    pack_results finish
    { cat "$S/timeline.txt"; echo; for f in "$S"/quality/*/quality.json; do [ -f "$f" ] && echo "$(basename "$(dirname "$f")"):" && $py -c '
import json, sys
for r in json.load(open(sys.argv[1]))["runs"]:
    print("{:14s} test {} (generate {}, calibrated {}) val {}  wall {} s, training {} s, {} steps".format(
        r["run"], r["test_f1"], r["test_f1_generate"], r["test_f1_calibrated"], r["validation_f1"], r["wall_s"], r["train_s"], r["steps"]))' "$f"; done
      grep -h "choice\|best\b" "$S"/quality/search/choice.json 2>/dev/null | head -5; } > "$OUT/finish.txt" 2>&1
    cat "$OUT/finish.txt"
    ;;
  *) echo "usage: bash scripts/gpu/device.sh start|finish [--smoke | LIMIT_S]  (train: started by start)" >&2; exit 2 ;;
esac
