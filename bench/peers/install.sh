#!/bin/sh
# The PyTorch peer's runtime: Debian's python3-torch (1.13, for /usr/bin/python3 — not pyenv's python) and OpenBLAS
# (without libopenblas0-pthread, Debian's torch falls back to the reference BLAS and the comparison is meaningless).
# Idempotent; needs root and apt. Anything else: prints why it skipped and exits 0, and bench/src/step.ts skips the peer.
set -eu

skip() {
  echo "bench/peers/install.sh: skipped: $1" >&2
  exit 0
}

if /usr/bin/python3 -c 'import torch' 2>/dev/null && ls /usr/lib/*/openblas-pthread/libopenblas*.so* >/dev/null 2>&1; then
  echo "bench/peers/install.sh: already installed: $(/usr/bin/python3 -c 'import torch; print("torch", torch.__version__)')"
  exit 0
fi
[ "$(id -u)" = 0 ] || skip "not root (run as root to apt-get install python3-torch libopenblas0-pthread)"
command -v apt-get >/dev/null 2>&1 || skip "no apt-get (install PyTorch for /usr/bin/python3 by other means)"

export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends python3-torch libopenblas0-pthread || {
  apt-get update && apt-get install -y --no-install-recommends python3-torch libopenblas0-pthread
}
/usr/bin/python3 -c 'import torch; print("bench/peers/install.sh: torch", torch.__version__, "for /usr/bin/python3")'
