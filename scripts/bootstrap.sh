#!/usr/bin/env bash
# Bootstrap a fresh Debian bookworm machine (Node 20, root) for dawngrad. Idempotent and quiet when already done:
#   1. pnpm at the exact version the workspace pins, then the workspace's packages (Dawn comes with them);
#   2. on a machine with an NVIDIA GPU (nvidia-smi, /dev/nvidia*, or an nvidia_icd.json: scripts/gpu/nvidia.sh), Debian's
#      Vulkan loader and the glvnd libraries NVIDIA's Vulkan driver needs, then a check that Dawn sees the GPU; never
#      lavapipe there (a software adapter beside the GPU would hide a broken GPU setup);
#   3. elsewhere, when Dawn finds no adapter, a Vulkan driver for it: bookworm's Mesa 22.3 lavapipe is rejected by Dawn, so libvulkan1 + mesa-vulkan-drivers
#      come from bookworm-backports (Mesa 25) when no adapter is found;
#   4. Debian's chromium when missing (the browser tests drive it headless through playwright-core; no browser download).
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/dawngrad-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
PNPM_VERSION=$(node -p "require('./package.json').packageManager.split('@')[1]")
log() { echo "bootstrap: $*" >&2; }

if [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  log "installing pnpm $PNPM_VERSION"
  npm install -g --silent "pnpm@$PNPM_VERSION" >/dev/null 2>&1
fi

if [ ! -f node_modules/.modules.yaml ] || [ pnpm-lock.yaml -nt node_modules/.modules.yaml ]; then
  log "installing the workspace"
  pnpm install --frozen-lockfile --reporter=silent --config.confirmModulesPurge=false
fi

# An NVIDIA GPU: the loader packages, then Dawn must name the GPU. DAWNGRAD_NVIDIA_ROOT (tests) probes a fake machine.
if probe=$(bash scripts/gpu/nvidia.sh probe "${DAWNGRAD_NVIDIA_ROOT:-/}"); then
  log "NVIDIA GPU visible ($(echo "$probe" | sed -n 's/^found //p' | head -1))"
  bash scripts/gpu/nvidia.sh install || exit 1
  icd=$(echo "$probe" | sed -n 's/^icd //p')
  # for the check below; @dawngrad/tensor does the same for the CLI and the tests when VK_DRIVER_FILES is unset
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -n "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
  if ! adapter=$(node scripts/check-adapter.mjs --describe 2>/dev/null); then
    if [ -n "$icd" ]; then why="the ICD file $icd did not load"
    else why="no nvidia_icd.json: the driver's Vulkan part is missing; in a container set NVIDIA_DRIVER_CAPABILITIES=all"; fi
    echo "bootstrap: an NVIDIA GPU is visible but Dawn finds no Vulkan adapter ($why). Lavapipe is not installed on a GPU" \
      "machine; to run on the CPU anyway: apt-get install -t bookworm-backports libvulkan1 mesa-vulkan-drivers" >&2
    exit 1
  fi
  case "$adapter" in
    software*) log "warning: Dawn picked a software adapter (${adapter#software }) although an NVIDIA GPU is visible: check that" \
      "VK_DRIVER_FILES names nvidia_icd.json and that \`dawngrad info\` names the GPU" ;;
    *) log "Dawn sees ${adapter#gpu }" ;;
  esac
# Ask Dawn itself: an adapter it accepts is the only test that counts (bookworm's own Mesa 22.3 has one Dawn rejects).
elif ! node scripts/check-adapter.mjs 2>/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "bootstrap: no WebGPU adapter; as root, install libvulkan1 + mesa-vulkan-drivers from bookworm-backports" >&2; exit 1; }
  log "no WebGPU adapter: installing Mesa lavapipe (Vulkan on the CPU) from bookworm-backports"
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=$(grep -rhs '^URIs:.*debian/*$' /etc/apt/sources.list.d/*.sources | head -1 | awk '{print $2}')
    key=$(grep -rhs '^Signed-By:' /etc/apt/sources.list.d/*.sources | head -1 | awk '{print $2}')
    if [ -n "$uri" ]; then
      printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' "$uri" \
        "${key:-/usr/share/keyrings/debian-archive-keyring.gpg}" > /etc/apt/sources.list.d/bookworm-backports.sources
    else
      uri=$(grep -hs '^deb ' /etc/apt/sources.list | grep -m1 debian | awk '{print $2}')
      echo "deb ${uri:-http://deb.debian.org/debian} bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
    fi
  fi
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports libvulkan1 mesa-vulkan-drivers >/dev/null
  node scripts/check-adapter.mjs || { echo "bootstrap: Dawn still finds no adapter after installing lavapipe" >&2; exit 1; }
fi

# Chromium for test/browser: Debian's own package (playwright's browser downloads cannot be used here).
if [ ! -x "${DAWNGRAD_CHROMIUM:-/usr/bin/chromium}" ]; then
  [ "$(id -u)" = 0 ] || { echo "bootstrap: no chromium for the browser tests; as root, apt-get install chromium" >&2; exit 1; }
  log "installing Debian's chromium (for the browser tests)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
