#!/bin/sh
# Run search.py configurations one after another: each argument is one quoted set of `search.py run` options.
#   sh scripts/recipe/queue.sh "--lr 3e-3 --examples 4800 --tag a" "--lr 5e-3 --examples 4800 --tag b"
cd "$(dirname "$0")/../.." || exit 1
for cfg in "$@"; do
  # shellcheck disable=SC2086
  /usr/bin/python3 scripts/recipe/search.py run $cfg || echo "failed: $cfg" >&2
done
