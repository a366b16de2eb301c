#!/usr/bin/env bash
# Is an NVIDIA GPU visible here, and does Dawn have what it needs to reach it through Vulkan?
#
# Dawn talks to an NVIDIA GPU through NVIDIA's own Vulkan driver (libGLX_nvidia, named by an ICD file nvidia_icd.json)
# loaded by the Khronos Vulkan loader (libvulkan1) — and NVIDIA's driver needs the glvnd libraries beside it. Container
# images of the driver often ship the ICD file under the driver's own prefix (/usr/local/nvidia/...), where the loader
# does not look: then VK_DRIVER_FILES must name it (@dawngrad/tensor does that before Dawn starts).
#
#   bash scripts/gpu/nvidia.sh probe [ROOT]     exit 0 and print what shows the GPU (and `icd PATH`) when one is visible
#   bash scripts/gpu/nvidia.sh missing          print the loader packages that are not installed (one line, may be empty)
#   bash scripts/gpu/nvidia.sh install          install those packages with apt-get (root); never lavapipe
#   bash scripts/gpu/nvidia.sh packages         print the loader packages' names (scripts/gpu/pack.sh downloads them)
#
# ROOT (default /) prefixes every path probed, so that tests can build a fake machine in a temp folder. The commands
# found on PATH (nvidia-smi, dpkg-query, apt-get) are looked up as usual: tests put fakes first on PATH.
set -euo pipefail

# Debian's Vulkan loader and the glvnd libraries NVIDIA's Vulkan driver links against
NVIDIA_LOADER_PACKAGES=(libvulkan1 libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2)

# Where an ICD file may sit: the loader's standard folders, then the prefixes NVIDIA's container toolkit uses
NVIDIA_ICD_DIRS=(
  /etc/vulkan/icd.d
  /usr/local/share/vulkan/icd.d
  /usr/share/vulkan/icd.d
  /usr/local/nvidia/share/vulkan/icd.d
  /usr/local/nvidia/etc/vulkan/icd.d
)

# probe ROOT: prints `found ...` lines and `icd PATH` (the first ICD file) and returns 0 when an NVIDIA GPU is visible
nvidia_probe() {
  local root=${1:-/} seen=1 icd='' d f
  root=${root%/}
  if [ -z "$root" ] && command -v nvidia-smi >/dev/null 2>&1; then
    echo "found nvidia-smi at $(command -v nvidia-smi)"; seen=0
  elif [ -n "$root" ]; then
    for d in /usr/bin /usr/local/bin /usr/local/nvidia/bin /bin; do
      if [ -x "$root$d/nvidia-smi" ]; then echo "found nvidia-smi at $root$d/nvidia-smi"; seen=0; break; fi
    done
  fi
  for f in "$root"/dev/nvidiactl "$root"/dev/nvidia[0-9]*; do
    if [ -e "$f" ]; then echo "found device node $f"; seen=0; break; fi
  done
  for d in "${NVIDIA_ICD_DIRS[@]}"; do
    for f in "$root$d"/nvidia_icd*.json; do
      if [ -f "$f" ]; then icd=$f; break 2; fi
    done
  done
  if [ -n "$icd" ]; then echo "found ICD file $icd"; echo "icd $icd"; seen=0; fi
  return $seen
}

# missing: the loader packages dpkg does not list as installed
nvidia_missing_packages() {
  local p out=()
  for p in "${NVIDIA_LOADER_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || out+=("$p")
  done
  echo "${out[*]:-}"
}

nvidia_install() {
  local missing
  missing=$(nvidia_missing_packages)
  if [ -z "$missing" ]; then echo "nvidia.sh: the Vulkan loader packages are installed" >&2; return 0; fi
  if [ "$(id -u)" != 0 ]; then
    echo "nvidia.sh: an NVIDIA GPU is visible but the Vulkan loader is missing; as root: apt-get install $missing" >&2
    return 1
  fi
  echo "nvidia.sh: NVIDIA GPU visible: installing the Vulkan loader and glvnd libraries ($missing)" >&2
  # shellcheck disable=SC2086 # one word per package
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  case "${1:-}" in
    probe) nvidia_probe "${2:-/}" ;;
    missing) nvidia_missing_packages ;;
    install) nvidia_install ;;
    packages) echo "${NVIDIA_LOADER_PACKAGES[*]}" ;;
    *) echo "usage: bash scripts/gpu/nvidia.sh probe [ROOT] | missing | install | packages" >&2; exit 2 ;;
  esac
fi
