#!/usr/bin/env bash
# Pack .gpu/: what it takes to run this checkout's CLI and GPU benches on an x86-64 Linux machine that has an NVIDIA
# driver and python3 with PyTorch, but no Node, no pnpm, no Vulkan loader and no network. Nothing is fetched there:
#   dawngrad.mjs, bench.mjs  the CLI and `pnpm bench` (bench/src/main.ts) bundled by `pnpm -s build:cli`, xz'd
#   <name>.mjs.xz            each extra [NAME=]ENTRY.ts given on the command line, bundled the same way
#   node_modules/            the native packages the bundles import (Dawn's webgpu, resvg), their binaries xz'd
#   BUILD.json               what build-cli built from which commit
#   node.xz                  this machine's node binary
#   gl/*.deb                 Debian's Vulkan loader and glvnd packages, unpacked there when it has no loader
#   peers/*.py               the PyTorch peers (bench/peers)
#   *-config.json            the Lite-Oute-1-300M and tiny model configs (the benches' random-weight models)
#   shared.tar.xz            with --with-model: the tiny model and the TweetEval data from ../shared (train, eval)
#   run.sh                   the runner: bash .gpu/run.sh ARGS (dawngrad ARGS) or bash .gpu/run.sh NAME.mjs ARGS
# Then, on the GPU machine from the repository root: bash scripts/gpu/session.sh (info, benches, a summary table).
#
# Usage, from the repository root after `bash scripts/bootstrap.sh`:
#   bash scripts/gpu/pack.sh [--with-model] [--out DIR] [--fast] [[NAME=]ENTRY.ts ...]
# --out DIR: another folder than .gpu (tests); --fast: xz -1 instead of -6 and the system's node left out (run.sh then
# uses the node on PATH): for a check on this machine, not for a GPU machine. The node binary, the .debs and the model
# archive are kept from the last pack when still current (compressing node takes a minute or two).
# .gpu/ and session.sh's .gpu-out/ are in .gitignore. The pack must stay under ~60 MB (the repository travels with it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ -f pnpm-workspace.yaml ] || { echo "pack.sh: run it from the repository root" >&2; exit 2; }
with_model=0 out=.gpu fast=0 entries=()
while [ $# -gt 0 ]; do
  case "$1" in
    --with-model) with_model=1 ;;
    --fast) fast=1 ;;
    --out) out=${2:?pack.sh: --out needs a folder}; shift ;;
    -*) echo "pack.sh: unknown option $1" >&2; exit 2 ;;
    *) entries+=("$1") ;;
  esac
  shift
done
level=-6; [ $fast = 1 ] && level=-1
xzc() { xz -T2 "$level" -c "$1"; }
log() { echo "pack.sh: $*" >&2; }
mkdir -p "$out/gl"

# 1. the bundles and their native packages, built apart, then compressed into place
stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
node scripts/build-cli.mjs --out "$stage/cli" bench=bench/src/main.ts "${entries[@]}" >/dev/null
rm -f "$out"/*.mjs "$out"/*.mjs.xz
for f in "$stage"/cli/*.mjs; do xzc "$f" > "$out/$(basename "$f").xz"; done
cp "$stage/cli/BUILD.json" "$out/"
# native binaries: recompressed only when they changed (their checksum is kept beside the .xz)
(cd "$stage/cli" && find node_modules -type f) | while read -r f; do
  src="$stage/cli/$f" dst="$out/$f"
  mkdir -p "$(dirname "$dst")"
  case "$f" in
    *.node)
      sum=$(cksum < "$src")
      if [ ! -f "$dst.xz" ] || [ "$(cat "$dst.xz.cksum" 2>/dev/null)" != "$sum" ]; then xzc "$src" > "$dst.xz"; echo "$sum" > "$dst.xz.cksum"; fi
      rm -f "$dst" ;; # unpacked by an earlier run.sh of an older layout: only the .xz travels
    *) cp "$src" "$dst" ;;
  esac
done

# 2. node (skipped by --fast: run.sh then uses the node on PATH)
node_bin=$(readlink -f "$(command -v node)")
if [ $fast = 1 ]; then
  rm -f "$out/node.xz"
elif [ ! -f "$out/node.xz" ] || [ "$(cat "$out/node.xz.cksum" 2>/dev/null)" != "$(cksum < "$node_bin")" ]; then
  log "compressing $node_bin ($(node --version)); a minute or two"
  xzc "$node_bin" > "$out/node.xz"; cksum < "$node_bin" > "$out/node.xz.cksum"
fi

# 3. the Vulkan loader and glvnd packages (bash scripts/gpu/nvidia.sh lists them), for a machine without a loader
pkgs=$(bash "$here/nvidia.sh" packages)
if [ $fast = 0 ] && ! ls "$out"/gl/libvulkan1_*.deb >/dev/null 2>&1; then
  lists=$(mktemp -d); mkdir -p "$lists/partial"; o="-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists"
  # shellcheck disable=SC2086 # options and package names are words
  { apt-get $o update -qq && (cd "$out/gl" && apt-get $o download $pkgs); } >/dev/null 2>&1 || true
  rm -rf "$lists"
  ls "$out"/gl/libvulkan1_*.deb >/dev/null 2>&1 || { log "could not download the Vulkan loader packages ($pkgs)"; exit 1; }
fi

# 4. peers, configs, the runner, and optionally the tiny model and the data
mkdir -p "$out/peers"; rm -f "$out"/peers/*.py; cp bench/peers/*.py "$out/peers/"
install -m 644 ../shared/models/lite-oute-1-300m-instruct/config.json "$out/lite-oute-300m-config.json"
install -m 644 ../shared/models/tweet-mistral-tiny/config.json "$out/tiny-config.json"
cp "$here/run.sh" "$out/run.sh"
if [ $with_model = 1 ] && [ ! -f "$out/shared.tar.xz" ]; then
  log "compressing the tiny model and the TweetEval data"
  # the hf-tiny fixture's model and adapter too (not its reference dumps): scripts/gpu/parity.py recomputes those there
  tar cf - -C ../shared models/tweet-mistral-tiny data/tweet_eval --exclude='reference*' --exclude='sliding_window*' --exclude='*.py' \
    fixtures/hf-tiny | xz -T2 "$level" > "$out/shared.tar.xz"
fi
[ $with_model = 1 ] || rm -f "$out/shared.tar.xz"
size=$(du -sm "$out" | cut -f1)
log "${size} MB in $out/: $(cd "$out" && ls | tr '\n' ' ')"
[ "$size" -le 60 ] || log "warning: over 60 MB: the repository and $out travel together within 64 MiB"
