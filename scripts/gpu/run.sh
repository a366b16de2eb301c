#!/usr/bin/env bash
# Run what scripts/gpu/pack.sh packed into .gpu/, on a machine without Node or a Vulkan loader. From the repository root:
#   bash .gpu/run.sh info                          # dawngrad info: should name the GPU (class discrete-gpu), not llvmpipe
#   bash .gpu/run.sh bench.mjs [--out DIR] [...]   # pnpm bench: the GPU benches on a GPU (bench/README.md)
#   bash .gpu/run.sh train --recipe full --out DIR # needs pack.sh --with-model
#   bash .gpu/run.sh NAME.mjs ARGS                 # another bundle packed beside them
# The first call unpacks node, the bundles and the native modules into $DAWNGRAD_GPU_RUN (default /tmp/dawngrad-gpu),
# once per pack; .gpu/ itself stays as packed. It also installs the packed Vulkan loader when the machine has none, and
# points the loader at NVIDIA's ICD file when it sits outside the loader's folders (VK_DRIVER_FILES, unless set).
set -euo pipefail
g=$(cd "$(dirname "$0")" && pwd)
run=${DAWNGRAD_GPU_RUN:-/tmp/dawngrad-gpu}
[ -f "$g/BUILD.json" ] || { echo "run.sh: $g holds no pack (no BUILD.json): run scripts/gpu/pack.sh" >&2; exit 1; }

# (grep reads all of ldconfig's output: `grep -q` would stop early, and pipefail would count ldconfig's SIGPIPE)
if ! ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null; then
  ls "$g"/gl/*.deb >/dev/null 2>&1 || { echo "run.sh: no Vulkan loader here and none packed (pack.sh without --fast packs it)" >&2; exit 1; }
  echo "run.sh: installing the packed Vulkan loader and glvnd libraries" >&2
  for f in "$g"/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  for d in /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d /usr/share/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d /usr/local/nvidia/etc/vulkan/icd.d; do
    if [ -f "$d/nvidia_icd.json" ]; then export VK_DRIVER_FILES="$d/nvidia_icd.json"; break; fi
  done
fi
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
if [ -f "$egl" ] && [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ]; then export __EGL_VENDOR_LIBRARY_FILENAMES="$egl"; fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/dawngrad-gpu-xdg}"; mkdir -p -m 700 "$XDG_RUNTIME_DIR"

# the bundles, peers, configs and native modules of this pack, unpacked once (keyed by BUILD.json, new at each pack)
dir="$run/$(cksum < "$g/BUILD.json" | cut -d' ' -f1)"
if [ ! -f "$dir/.ready" ]; then
  rm -rf "$dir"; mkdir -p "$dir"
  for f in "$g"/*.mjs.xz; do [ -f "$f" ] && xz -dc "$f" > "$dir/$(basename "${f%.xz}")"; done
  for f in "$g"/*.mjs; do [ -f "$f" ] && cp "$f" "$dir/"; done # bundles packed uncompressed (another packer's)
  (cd "$g" && find node_modules -type f) | while read -r f; do
    mkdir -p "$dir/$(dirname "$f")"
    case "$f" in
      *.xz) xz -dc "$g/$f" > "$dir/${f%.xz}" ;;
      *.cksum) ;;
      *) cp "$g/$f" "$dir/$f" ;;
    esac
  done
  cp -r "$g/peers" "$g/BUILD.json" "$dir/"
  cp "$g"/*-config.json "$dir/"
  touch "$dir/.ready"
fi
if [ -f "$g/node.xz" ]; then
  node="$run/node-$(cut -d' ' -f1 "$g/node.xz.cksum")"
  [ -x "$node" ] || { xz -dc "$g/node.xz" > "$node.tmp" && chmod +x "$node.tmp" && mv "$node.tmp" "$node"; }
else
  node=$(command -v node) || { echo "run.sh: no node packed (pack.sh --fast) and none on PATH" >&2; exit 1; }
fi
if [ -f "$g/shared.tar.xz" ]; then
  [ -d "$run/shared/models" ] || { mkdir -p "$run/shared" && xz -dc "$g/shared.tar.xz" | tar xf - -C "$run/shared"; }
  export DAWNGRAD_SHARED="$run/shared"
elif [ -z "${DAWNGRAD_SHARED:-}" ] && [ -d "$PWD/../shared/models" ]; then
  export DAWNGRAD_SHARED="$PWD/../shared" # a checkout with shared/ beside it (this pack carries no model)
fi
case "${1:-}" in
  *.mjs) script="$dir/$1"; shift; [ -f "$script" ] || { echo "run.sh: no bundle $(basename "$script") in this pack" >&2; exit 2; } ;;
  *) script="$dir/dawngrad.mjs" ;;
esac
exec "$node" "$script" "$@"
